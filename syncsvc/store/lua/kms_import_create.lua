-- kms_import_create.lua: store a new master key for imported material (Origin EXTERNAL), within the deployment's
-- key quota: its metadata and its commitment secret ('v0', root-wrapped like a backing key), no backing key yet.
--
-- KEYS[1] the key's hash   KEYS[2] the index of every key (sorted set)
-- ARGV[1] key id   ARGV[2] metadata JSON   ARGV[3] the commitment secret, root-wrapped   ARGV[4] the quota
-- Returns 1 when stored, 0 when the quota is reached (nothing stored).

if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'v0', ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
