-- kms_keystore_update.lua: change a custom key store's name, token or sealed PIN: the name while it is DISCONNECTED
-- or CONNECTED, the token and the PIN only while it is DISCONNECTED (KMS's rule for CloudHSM key stores).
--
-- KEYS[1] the store's hash   KEYS[2] names (name -> store id)   KEYS[3] tokens (token label -> store id)
-- ARGV[1] store id   ARGV[2] new name ('' = unchanged)   ARGV[3] new token label ('' = unchanged)
-- ARGV[4] the new PIN, sealed ('' = unchanged)
-- Returns {1, state} when changed, {-1, ''} when there is no such store, {-2, state} when its state does not allow
-- the change, {-3, state} when the name is another store's, {-4, state} when the token is another store's.

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1, ''} end
local name_only = ARGV[3] == '' and ARGV[4] == ''
if state ~= 'DISCONNECTED' and not (name_only and state == 'CONNECTED') then return {-2, state} end
local owner = ARGV[2] ~= '' and redis.call('HGET', KEYS[2], ARGV[2])
if owner and owner ~= ARGV[1] then return {-3, state} end
owner = ARGV[3] ~= '' and redis.call('HGET', KEYS[3], ARGV[3])
if owner and owner ~= ARGV[1] then return {-4, state} end
if ARGV[2] ~= '' then
  redis.call('HDEL', KEYS[2], redis.call('HGET', KEYS[1], 'name'))
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'name', ARGV[2])
end
if ARGV[3] ~= '' then
  redis.call('HDEL', KEYS[3], redis.call('HGET', KEYS[1], 'token'))
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
  redis.call('HSET', KEYS[1], 'token', ARGV[3])
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'pin', ARGV[4]) end
return {1, state}
