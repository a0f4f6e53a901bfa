-- kms_keystore_remove_key.lua: delete for good a KMS key whose material lives in a custom key store (its metadata and
-- its aliases, as kms_delete_key.lua does) and uncount it from the store, unless the key changed since it was read.
--
-- KEYS[1] the store's hash   KEYS[2] the KMS key's hash   KEYS[3] the index of every KMS key (sorted set)
-- KEYS[4] the aliases (name -> key id)
-- ARGV[1] key id   ARGV[2] the revision the decision was made on ('' = delete whatever the revision)
-- Returns 1 when deleted, 0 when the revision moved on (nothing deleted), -1 when the key does not exist.

if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
if ARGV[2] ~= '' and (redis.call('HGET', KEYS[2], 'rev') or '0') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
local aliases = redis.call('HGETALL', KEYS[4])
for i = 1, #aliases, 2 do
  if aliases[i + 1] == ARGV[1] then redis.call('HDEL', KEYS[4], aliases[i]) end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'keys', -1) end
return 1
