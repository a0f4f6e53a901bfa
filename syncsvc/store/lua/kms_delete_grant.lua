-- kms_delete_grant.lua: remove one grant of a master key (RetireGrant, RevokeGrant).
--
-- KEYS[1] the key's hash   ARGV[1] the grant's field ('g:<grant id>')
-- Returns 1 when removed, 0 when the key has no such grant, -1 when the key does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'grants', -1)
return 1
