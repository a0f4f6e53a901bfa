-- move_login.lua: hand a login from one identity to another, or forget it, but only if it still belongs to the
-- expected identity (compare and set).
--
-- KEYS[1] the login key   ARGV[1] the identity it must belong to now   ARGV[2] the new owner, or "" to forget it
-- Returns 1 when changed, 0 when the login belongs to someone else (nothing changed).

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
