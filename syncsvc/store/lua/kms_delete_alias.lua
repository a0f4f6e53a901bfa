-- kms_delete_alias.lua: remove an alias (DeleteAlias); its key is not touched.
--
-- KEYS[1] the aliases (name -> key id)   ARGV[1] alias name ('alias/...')
-- Returns 1 when removed, 0 when there is no such alias.

return redis.call('HDEL', KEYS[1], ARGV[1])
