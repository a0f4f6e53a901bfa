-- userpool_delete_user.lua: delete a user of a user pool with its aliases and group memberships.
--
-- KEYS[1] the user's hash   KEYS[2] the pool's user set   KEYS[3] the pool's alias hash
-- KEYS[4] the user's group set   KEYS[5..4+ARGV[2]] the member sets of the user's groups   the remaining KEYS: the
-- user's other keys (codes, failed sign-ins), deleted as they are (all in the pool's slot)
-- ARGV[1] username   ARGV[2] how many group member sets follow KEYS[4]
--
-- Returns 1 when the user was deleted, 0 when there was no such user (nothing changed).

local user = KEYS[1]
if redis.call('EXISTS', user) == 0 then return 0 end
local held = redis.call('HGET', user, 'aliases')
if held then
  for _, key in ipairs(cjson.decode(held)) do
    if redis.call('HGET', KEYS[3], key) == ARGV[1] then redis.call('HDEL', KEYS[3], key) end
  end
end
local groups = tonumber(ARGV[2])
for i = 5, 4 + groups do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('DEL', user, KEYS[4])
for i = 5 + groups, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
