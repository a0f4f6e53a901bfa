-- kms_create_alias.lua: point a new alias at an existing master key (never at one deleted concurrently).
--
-- KEYS[1] the target key's hash   KEYS[2] the aliases (name -> key id)
-- ARGV[1] alias name ('alias/...')   ARGV[2] key id
-- Returns 1 when created, 0 when the alias exists already, -1 when the key does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
