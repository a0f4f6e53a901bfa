-- import_delete.lua: the source deleted a dataset an import brought here: delete it here as delete_dataset.lua does,
-- unless it changed here since that import.
--
-- KEYS[1..10] as delete_dataset.lua's (IdentityKeyspace.write_keys; KEYS[7] to KEYS[9] unused).
-- ARGV[1] dataset name   ARGV[2] now (epoch ms)   ARGV[3] the identity's push channel
--
-- Reads and keeps the import bookkeeping of import_dataset.lua (import_src, import_dst, import_exact in the metadata
-- hash). The deletion leaves delete_dataset.lua's marker (sync count raised by one, recorded as `purged`, so devices
-- get DatasetDeletedAfterRequestedSyncCount), is announced on the push channel like it, and is recorded as an exact
-- import of "no dataset" (import_src 0): a dataset the source makes again under this name is imported afresh.
--
-- Changed here since: any record a device wrote here (without import_dataset.lua's `im` flag), even before an
-- earlier merge: its edit is not at the source, so deleting would lose it.
--
-- Returns a JSON object: {status = "updated", sc} (deleted), {status = "unchanged", sc} (no import wrote it, or it is
-- already deleted: no data written; a deletion devices made here is recorded as the import's state), or
-- {status = "conflict", sc, conflicts = [{k, nk?} per record devices wrote here]} (nothing written).

local meta = redis.call('HMGET', KEYS[1], 'sc', 'live', 'storage', 'import_src', 'import_dst')
local sync_count = tonumber(meta[1]) or 0
if meta[4] == false then return cjson.encode({status = 'unchanged', sc = sync_count}) end
local live, last_destination = meta[2] == '1', tonumber(meta[5])

if not live then
  -- Deleted here too (not by this script): both sides agree, and a dataset the source makes again is imported afresh.
  if sync_count ~= last_destination then
    redis.call('HSET', KEYS[1], 'import_src', 0, 'import_dst', sync_count, 'import_exact', 1)
  end
  return cjson.encode({status = 'unchanged', sc = sync_count})
end
local stored = redis.call('HGETALL', KEYS[2])
local conflicts = {}
for i = 1, #stored, 2 do
  local record = cjson.decode(stored[i + 1])
  if not record.im then conflicts[#conflicts + 1] = {k = stored[i], nk = record.nk} end
end
if #conflicts > 0 then return cjson.encode({status = 'conflict', sc = sync_count, conflicts = conflicts}) end

local new_sc = sync_count + 1
local storage = tonumber(meta[3]) or 0
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'live', 0, 'sc', new_sc, 'purged', new_sc, 'count', 0, 'storage', 0, 'modified', ARGV[2],
  'import_src', 0, 'import_dst', new_sc, 'import_exact', 1)
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HINCRBY', KEYS[6], 'storage', -storage)
redis.call('HSET', KEYS[6], 'modified', ARGV[2])
redis.call('SPUBLISH', ARGV[3], cjson.encode({d = ARGV[1], sc = new_sc, w = '', to = redis.call('SMEMBERS', KEYS[10])}))
return cjson.encode({status = 'updated', sc = new_sc})
