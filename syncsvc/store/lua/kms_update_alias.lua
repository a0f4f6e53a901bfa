-- kms_update_alias.lua: point an existing alias at another existing master key (UpdateAlias), only if the alias
-- still names the key the caller's checks were made against (same type and usage, access) and the new key was not
-- deleted concurrently.
--
-- KEYS[1] the new key's hash   KEYS[2] the aliases (name -> key id)
-- ARGV[1] alias name ('alias/...')   ARGV[2] the new key's id   ARGV[3] the key id the alias named when checked
-- Returns 1 when updated, 0 when the alias is gone or names another key now (nothing done), -1 when the new key does
-- not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
