-- kms_keystore_delete.lua: remove a disconnected custom key store that holds no KMS keys.
--
-- KEYS[1] the store's hash   KEYS[2] names (name -> store id)   KEYS[3] tokens (token label -> store id)
-- KEYS[4] the store ids
-- ARGV[1] store id
-- Returns {1, state} when deleted, {-1, ''} when there is no such store, {-2, state} when it is not DISCONNECTED,
-- {-3, state} when KMS keys live in it (its 'keys' count, kept by the keys made in the store).

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1, ''} end
if state ~= 'DISCONNECTED' then return {-2, state} end
if tonumber(redis.call('HGET', KEYS[1], 'keys') or '0') > 0 then return {-3, state} end
redis.call('HDEL', KEYS[2], redis.call('HGET', KEYS[1], 'name'))
redis.call('HDEL', KEYS[3], redis.call('HGET', KEYS[1], 'token'))
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[1])
return {1, state}
