-- create_identity.lua: register a new identity in its shard, with its first logins.
--
-- KEYS[1] the identity's profile hash   KEYS[2] the pool's member set in the identity's shard
-- ARGV[1] identity pool id   ARGV[2] identity id   ARGV[3] now (epoch ms)   ARGV[4] logins (JSON list of pairs)
--
-- Returns 1 when created, 0 when the identity already exists (nothing changed).

if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'pool', ARGV[1], 'created', ARGV[3], 'modified', ARGV[3], 'logins', ARGV[4], 'gen', 1)
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 1
