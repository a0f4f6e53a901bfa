-- wrk script: paced.lua at a rate past what the server can take, telling its answers apart.
-- Arguments after "--": TEMPLATE-FILE OFFSET RATE, as paced.lua (write templates: one record "k${seq}" each).
--
-- wrk measures the latency of every answer alike; under overload most answers are fast refusals, which would hide
-- the latency of the requests the server did take. So each request's send time is kept under its identity and
-- record key (the path names the identity, the body the key), and an admitted answer (200) finds it again by the
-- key and LastModifiedBy (the writing identity) it echoes. done() prints replay.lua's line, then one more:
-- {"overload": {"admitted", "shed" (429 or 503), "other" (any other status), "unmatched" (a 200 whose request was
-- not found: 0 unless the templates change), "admitted_us": {p50, p99, max}}}.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "paced.lua")

local ffi = require("ffi")
local now_buffer = ffi.new("bench_timespec") -- paced.lua declared it, with clock_gettime
local CLOCK_MONOTONIC = 1

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_buffer)
  return tonumber(now_buffer.tv_sec) * 1000000 + math.floor(tonumber(now_buffer.tv_nsec) / 1000)
end

-- Per thread (each wrk thread has its own Lua state; done() reads these through thread:get).
sent = {}
admitted_us = {}
shed = 0
other = 0
unmatched = 0

local paced_request = request
function request()
  local formatted = paced_request()
  local identity = formatted:match("/identities/([^/]+)/")
  local key = formatted:match('"Key":"([^"]*)"')
  if identity and key then
    sent[identity .. "\t" .. key] = now_us()
  end
  return formatted
end

function response(status, headers, body)
  if status == 200 then
    local key = body:match('"Key":"([^"]*)"')
    local by = body:match('"LastModifiedBy":"([^"]*)"')
    local started = key and by and sent[by .. "\t" .. key]
    if started then
      admitted_us[#admitted_us + 1] = now_us() - started
      sent[by .. "\t" .. key] = nil
    else
      unmatched = unmatched + 1
    end
  elseif status == 429 or status == 503 then
    shed = shed + 1
  else
    other = other + 1
  end
end

local threads = {}
local replay_setup = setup
function setup(thread)
  replay_setup(thread)
  threads[#threads + 1] = thread
end

local function percentile(sorted, p)
  if #sorted == 0 then
    return 0
  end
  return sorted[math.max(1, math.ceil(#sorted * p / 100))]
end

local replay_done = done
function done(summary, latency, requests)
  replay_done(summary, latency, requests)
  local all, counts = {}, { shed = 0, other = 0, unmatched = 0 }
  for _, thread in ipairs(threads) do
    for _, value in ipairs(thread:get("admitted_us")) do
      all[#all + 1] = value
    end
    for name in pairs(counts) do
      counts[name] = counts[name] + thread:get(name)
    end
  end
  table.sort(all)
  io.write(string.format(
    '{"overload":{"admitted":%d,"shed":%d,"other":%d,"unmatched":%d,"admitted_us":{"p50":%d,"p99":%d,"max":%d}}}\n',
    #all, counts.shed, counts.other, counts.unmatched, percentile(all, 50), percentile(all, 99), all[#all] or 0))
end
