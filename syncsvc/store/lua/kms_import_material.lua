-- kms_import_material.lua: ImportKeyMaterial's write, as a compare-and-set on the key's revision: the material
-- (root-wrapped, as backing key 'v1'), the key's new metadata and, on the first import, the material's commitment;
-- the import token's wrapping key is used up.
--
-- KEYS[1] the key's hash
-- ARGV[1] the revision the import was checked against   ARGV[2] metadata JSON   ARGV[3] the material, root-wrapped
-- ARGV[4] the material's commitment   ARGV[5] the import token's wrapping key field ('imp:…')
-- Returns 1 when written (the revision goes up by one), 0 when the revision moved on (nothing written: read again),
-- -1 when the key does not exist, -2 when the token's wrapping key is gone (used or expired), -3 when the key holds
-- the commitment of other material.

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], ARGV[5]) == 0 then return -2 end
if (redis.call('HGET', KEYS[1], 'rev') or '0') ~= ARGV[1] then return 0 end
local commitment = redis.call('HGET', KEYS[1], 'commit')
if commitment and commitment ~= ARGV[4] then return -3 end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'v1', ARGV[3], 'commit', ARGV[4])
redis.call('HDEL', KEYS[1], ARGV[5])
redis.call('HINCRBY', KEYS[1], 'rev', 1)
return 1
