-- kms_update_key.lua: replace a master key's metadata (and add a backing key version) as a compare-and-set on the
-- key's revision, so that two instances changing the same key at once never lose a change or overwrite material.
--
-- KEYS[1] the key's hash
-- ARGV[1] the revision the change was computed from ('' = write whatever the revision)   ARGV[2] metadata JSON
-- ARGV[3] the new version's field ('v<n>', '' = none)   ARGV[4] that version's material, root-wrapped
-- ARGV[5] the field of the rotation that made the version ('rot:<n>', '' = none)   ARGV[6] that rotation (JSON)
-- Returns 1 when written (the revision goes up by one), 0 when the revision moved on or the version exists
-- already (nothing written: read again and retry), -1 when the key does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[1] ~= '' and (redis.call('HGET', KEYS[1], 'rev') or '0') ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' then
  if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then return 0 end
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], ARGV[5], ARGV[6]) end
end
redis.call('HSET', KEYS[1], 'meta', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'rev', 1)
return 1
