-- userpool_note_failure.lua: count a failed sign-in of a user and lock the user out for a growing time.
--
-- KEYS[1] the user's failed-sign-in hash (fields n, first, until)
-- ARGV[1] now (epoch ms)   ARGV[2] the counting window (ms)   ARGV[3] failures before the first lockout
-- ARGV[4] the longest lockout (ms)
--
-- Failures older than the window are forgotten. From ARGV[3] failures on, each failure locks sign-in for
-- 1 s, 2 s, 4 s, … up to ARGV[4]. Returns the epoch ms until which sign-in is locked (0: not locked).

local key, now = KEYS[1], tonumber(ARGV[1])
local first = tonumber(redis.call('HGET', key, 'first') or '0')
if now - first > tonumber(ARGV[2]) then
  redis.call('DEL', key)
  redis.call('HSET', key, 'first', now)
end
local n = redis.call('HINCRBY', key, 'n', 1)
local locked = 0
if n >= tonumber(ARGV[3]) then
  locked = now + math.min(tonumber(ARGV[4]), 1000 * 2 ^ (n - tonumber(ARGV[3])))
  redis.call('HSET', key, 'until', locked)
end
redis.call('PEXPIRE', key, tonumber(ARGV[2]) + tonumber(ARGV[4]))
return locked
