-- kms_create_grant.lua: add a grant to an existing master key (never to one deleted concurrently), within a quota.
--
-- KEYS[1] the key's hash (grants are its 'g:<grant id>' fields, counted in its 'grants' field)
-- ARGV[1] the grant's field ('g:<grant id>')   ARGV[2] the grant (JSON)   ARGV[3] the most grants a key may have
-- Returns 1 when added, 0 when the key has its quota of grants already, -1 when the key does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if tonumber(redis.call('HGET', KEYS[1], 'grants') or '0') >= tonumber(ARGV[3]) then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then redis.call('HINCRBY', KEYS[1], 'grants', 1) end
return 1
