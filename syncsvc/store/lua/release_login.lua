-- release_login.lua: forget a login, but only if it still belongs to the given identity (compare and delete).
--
-- KEYS[1] the login key   ARGV[1] identity id
-- Returns 1 when deleted, 0 otherwise.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
