-- kms_delete_key.lua: delete a master key for good (its metadata, every backing key and its aliases), unless it
-- changed since it was read (e.g. its deletion was cancelled meanwhile).
--
-- KEYS[1] the key's hash   KEYS[2] the index of every key (sorted set)   KEYS[3] the aliases (name -> key id)
-- ARGV[1] key id   ARGV[2] the revision the decision was made on ('' = delete whatever the revision)
-- Returns 1 when deleted, 0 when the revision moved on (nothing deleted), -1 when the key does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[2] ~= '' and (redis.call('HGET', KEYS[1], 'rev') or '0') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local aliases = redis.call('HGETALL', KEYS[3])
for i = 1, #aliases, 2 do
  if aliases[i + 1] == ARGV[1] then redis.call('HDEL', KEYS[3], aliases[i]) end
end
return 1
