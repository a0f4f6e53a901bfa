-- kms_import_delete.lua: delete a key's imported material (DeleteImportedKeyMaterial, or its expiry in the sweep) as a
-- compare-and-set on the key's revision; its commitment stays, so only the same material can be imported again.
--
-- KEYS[1] the key's hash
-- ARGV[1] the revision the deletion was decided on   ARGV[2] metadata JSON (the key without material)
-- Returns 1 when deleted (the revision goes up by one), 0 when the revision moved on (nothing done: read again),
-- -1 when the key does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if (redis.call('HGET', KEYS[1], 'rev') or '0') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'v1')
redis.call('HSET', KEYS[1], 'meta', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'rev', 1)
return 1
