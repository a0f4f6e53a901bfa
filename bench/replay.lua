-- wrk script: replays request templates round-robin (bench/load.py writes them, one per line:
-- METHOD <tab> PATH <tab> BODY { <tab> HEADER-NAME <tab> HEADER-VALUE }).
--
-- "${seq}" in a path or body becomes "<round>t<thread>", where round = offset + how many times this thread has
-- replayed the template before: every write names a record no earlier request (of this or an earlier run started
-- at a higher offset) wrote. Templates without "${seq}" are formatted once.
--
-- Arguments after "--": TEMPLATE-FILE [OFFSET]. done() prints one JSON line with the counts and latency
-- percentiles (microseconds) that bench/load.py reads.

local templates = {}
local counter = 0
local offset = 0

function setup(thread)
  thread:set("thread_id", (thread_count or 0))
  thread_count = (thread_count or 0) + 1
end

function init(args)
  offset = tonumber(args[2] or "0")
  for line in io.lines(args[1]) do
    local fields = {}
    for field in (line .. "\t"):gmatch("([^\t]*)\t") do
      fields[#fields + 1] = field
    end
    local headers = {}
    for i = 4, #fields - 1, 2 do
      headers[fields[i]] = fields[i + 1]
    end
    local template = { method = fields[1], path = fields[2], body = fields[3], headers = headers }
    if not (template.path:find("${seq}", 1, true) or template.body:find("${seq}", 1, true)) then
      template.request = wrk.format(template.method, template.path, headers, template.body ~= "" and template.body or nil)
    end
    templates[#templates + 1] = template
  end
end

function request()
  local template = templates[counter % #templates + 1]
  local round = offset + math.floor(counter / #templates)
  counter = counter + 1
  if template.request then
    return template.request
  end
  local seq = round .. "t" .. (thread_id or 0)
  local path = template.path:gsub("%${seq}", seq)
  local body = template.body:gsub("%${seq}", seq)
  return wrk.format(template.method, path, template.headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d},"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read, errors.write, errors.status,
    errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
