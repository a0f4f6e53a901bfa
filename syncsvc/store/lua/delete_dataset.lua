-- delete_dataset.lua: delete a live dataset and all its records, keeping a small deletion marker.
--
-- KEYS[1] dataset metadata hash   KEYS[2] records hash   KEYS[3] change log   KEYS[4] writers hash
-- KEYS[5] identity's live datasets   KEYS[6] identity usage hash
-- KEYS[7] to KEYS[9]: unused (the write scripts share one KEYS list; the name stays in the every-dataset set so a
-- purge of the identity still finds the marker)   KEYS[10] the DeviceIds subscribed to the dataset (kept: a device
-- stays subscribed to a name, and hears of its re-creation)
-- ARGV[1] dataset name   ARGV[2] now (epoch ms)   ARGV[3] the identity's push channel
--
-- The deletion is announced on the push channel like a write (update_records.lua), with writer "".
--
-- Returns the metadata as it was before deletion (flat HGETALL list), or {} when there is no live dataset.
-- The marker keeps the sync count (raised by one for the deletion) and records it as `purged`, so a later
-- ListRecords can report DatasetDeletedAfterRequestedSyncCount, and a re-created dataset keeps counting upwards:
-- sync counts of one dataset name never repeat. The version vector is kept too, so dots stay unique.

local meta = redis.call('HGETALL', KEYS[1])
if redis.call('HGET', KEYS[1], 'live') ~= '1' then return {} end
local sync_count = tonumber(redis.call('HGET', KEYS[1], 'sc')) + 1
local storage = tonumber(redis.call('HGET', KEYS[1], 'storage')) or 0
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'live', 0, 'sc', sync_count, 'purged', sync_count, 'count', 0, 'storage', 0,
  'modified', ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HINCRBY', KEYS[6], 'storage', -storage)
redis.call('HSET', KEYS[6], 'modified', ARGV[2])
redis.call('SPUBLISH', ARGV[3], cjson.encode({d = ARGV[1], sc = sync_count, w = '', to = redis.call('SMEMBERS', KEYS[10])}))
return meta
