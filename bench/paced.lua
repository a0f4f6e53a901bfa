-- wrk script: replay.lua at a fixed request rate (an open-loop-like point under a closed-loop generator).
-- Arguments after "--": TEMPLATE-FILE OFFSET RATE (requests per second, this thread).
--
-- Every request takes the next slot of one schedule (start + n / RATE) and waits until it; wrk's delay() is in
-- whole milliseconds, so a request may leave up to 1 ms early, but the schedule itself never drifts: the rate
-- over the run is RATE as long as enough connections are free. Latency is measured from the send, as in wrk.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "replay.lua")

local ffi = require("ffi")
ffi.cdef([[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]])
local now_buffer = ffi.new("bench_timespec")
local CLOCK_MONOTONIC = 1

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_buffer)
  return tonumber(now_buffer.tv_sec) * 1000 + tonumber(now_buffer.tv_nsec) / 1e6
end

local replay_init = init
local interval_ms = 0
local next_slot = nil

function init(args)
  replay_init(args)
  interval_ms = 1000 / tonumber(args[3])
end

function delay()
  local now = now_ms()
  if next_slot == nil then
    next_slot = now
  end
  local wait = next_slot - now
  next_slot = next_slot + interval_ms
  if wait < 1 then
    return 0
  end
  return math.floor(wait)
end
