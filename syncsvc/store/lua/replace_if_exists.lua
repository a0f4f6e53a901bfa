-- replace_if_exists.lua: set one field of a hash only when the hash exists (an update never re-creates a
-- resource that was deleted concurrently).
--
-- KEYS[1] the hash   ARGV[1] field   ARGV[2] value
-- Returns 1 when written, 0 when the hash does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
