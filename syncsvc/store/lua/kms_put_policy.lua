-- kms_put_policy.lua: replace the key policy of an existing master key (never recreating one deleted concurrently).
--
-- KEYS[1] the key's hash   ARGV[1] the policy document (JSON text, as given)
-- Returns 1 when stored, -1 when the key does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'policy', ARGV[1])
return 1
