-- kms_keystore_create.lua: store a new custom key store, its name and its token unique among the stores.
--
-- KEYS[1] the store's hash   KEYS[2] names (name -> store id)   KEYS[3] tokens (token label -> store id)
-- KEYS[4] the store ids (sorted set, score 0: in id order)
-- ARGV[1] store id   ARGV[2] name   ARGV[3] token label (CloudHsmClusterId)   ARGV[4] how many stores may exist
-- ARGV[5..] the store's fields and values, in pairs
-- Returns 1 when created, -1 when the name is taken, -2 when the token is another store's, -3 at the quota.

if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return -1 end
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return -2 end
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[4]) then return -3 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
return 1
