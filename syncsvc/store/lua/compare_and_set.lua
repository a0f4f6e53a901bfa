-- compare_and_set.lua: replace a value only while it is still the one the caller read (a sealed secret or a
-- wrapped backing key moved to a new root key: never over a value changed or deleted meanwhile).
--
-- KEYS[1] a string, or a hash when ARGV[1] names a field
-- ARGV[1] the hash field, or "" for the string itself   ARGV[2] the value expected   ARGV[3] the new value
--
-- Returns 1 when replaced, 0 when the value is not ARGV[2] (nothing changes).

local current
if ARGV[1] == '' then current = redis.call('GET', KEYS[1]) else current = redis.call('HGET', KEYS[1], ARGV[1]) end
if current ~= ARGV[2] then return 0 end
if ARGV[1] == '' then redis.call('SET', KEYS[1], ARGV[3]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
