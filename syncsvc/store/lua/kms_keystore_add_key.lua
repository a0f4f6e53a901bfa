-- kms_keystore_add_key.lua: store a new KMS key whose material lives in a custom key store, counting it in the store,
-- only while the store is CONNECTED and within the deployment's key quota (one script: a store being disconnected or
-- deleted meanwhile never ends up holding an uncounted key).
--
-- KEYS[1] the store's hash   KEYS[2] the KMS key's hash   KEYS[3] the index of every KMS key (sorted set)
-- ARGV[1] key id   ARGV[2] the key's metadata JSON   ARGV[3] the quota of KMS keys
-- Returns {1, state} when stored, {-1, ''} when there is no such store, {0, state} when it is not CONNECTED,
-- {-3, state} when the quota is reached (nothing stored).

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1, ''} end
if state ~= 'CONNECTED' then return {0, state} end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return {-3, state} end
redis.call('HSET', KEYS[2], 'meta', ARGV[2])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('HINCRBY', KEYS[1], 'keys', 1)
return {1, state}
