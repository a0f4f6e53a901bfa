-- userpool_write_user.lua: create or change a user of a user pool, with its unique aliases, atomically.
--
-- KEYS[1] the user's hash   KEYS[2] the pool's user set (sorted set, scores 0)   KEYS[3] the pool's alias hash
-- (all in the pool's slot, hash tag {up:<poolId>})
-- ARGV[1] 'create' or 'update'   ARGV[2] username   ARGV[3] update: the version read ('' to skip the check)
-- ARGV[4] fields to set (JSON object of strings)   ARGV[5] alias keys to claim (JSON list, '<attr>:<value>')
-- ARGV[6] alias keys to release (JSON list)   ARGV[7] '1' to raise the user's generation
--
-- Returns {'ok', version, generation}; {'exists'} (create: the username is taken); {'missing'} (update: no such
-- user); {'stale'} (update: the user changed since it was read; read again and retry); {'alias', key} (another
-- user holds that alias). Nothing is changed unless the answer is 'ok'.

local user, users, aliases = KEYS[1], KEYS[2], KEYS[3]
local exists = redis.call('EXISTS', user) == 1
if ARGV[1] == 'create' and exists then return {'exists'} end
if ARGV[1] == 'update' then
  if not exists then return {'missing'} end
  if ARGV[3] ~= '' and redis.call('HGET', user, 'ver') ~= ARGV[3] then return {'stale'} end
end
local claims = cjson.decode(ARGV[5])
for _, key in ipairs(claims) do
  local owner = redis.call('HGET', aliases, key)
  if owner and owner ~= ARGV[2] then return {'alias', key} end
end
for _, key in ipairs(cjson.decode(ARGV[6])) do
  if redis.call('HGET', aliases, key) == ARGV[2] then redis.call('HDEL', aliases, key) end
end
for _, key in ipairs(claims) do redis.call('HSET', aliases, key, ARGV[2]) end
for name, value in pairs(cjson.decode(ARGV[4])) do redis.call('HSET', user, name, value) end
local version = redis.call('HINCRBY', user, 'ver', 1)
local generation = tonumber(redis.call('HGET', user, 'gen') or '0')
if ARGV[7] == '1' then generation = redis.call('HINCRBY', user, 'gen', 1) end
redis.call('ZADD', users, 0, ARGV[2])
return {'ok', version, generation}
