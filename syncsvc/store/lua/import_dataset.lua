-- import_dataset.lua: write one dataset read from another Cognito Sync deployment (``syncsvc import``), atomically:
-- the whole dataset or nothing, with the source's sync counts, dates and writers.
--
-- KEYS[1..10] as update_records.lua's (IdentityKeyspace.write_keys): dataset metadata hash, records hash, change log,
-- writers hash, identity's live datasets, identity usage hash, every-dataset set, the pool's member set in this
-- shard, the shard's outbox stream, the DeviceIds subscribed to the dataset.
-- ARGV[1] dataset name   ARGV[2] identity id   ARGV[3] identity pool id
-- ARGV[4] the source dataset's sync count   ARGV[5] its creation (epoch ms)   ARGV[6] its last modification (epoch ms)
-- ARGV[7] its LastModifiedBy
-- ARGV[8] every source record, tombstones included, as update_records.lua's patches (syncsvc.store.redis
--         encode_patches, sealed): {k, nk?, kn?, op = "replace"|"remove", v?, n?, sc = the record's own sync count,
--         d = DeviceLastModifiedDate?}
-- ARGV[9] per record, in the same order: [LastModifiedDate (epoch ms), LastModifiedBy]
-- ARGV[10] max live datasets per identity   ARGV[11] max live records per dataset   ARGV[12] max dataset bytes
-- ARGV[13] now (epoch ms)   ARGV[14] "1" to announce an exact replacement on the push channel (the delta pass)
-- ARGV[15] the pool's stream topic, or ""   ARGV[16] the identity's push channel   ARGV[17] the importer's writer id
--
-- Bookkeeping, in the dataset's metadata hash (so it lives and dies with the dataset): import_src = the source sync
-- count last imported, import_dst = this dataset's sync count right after that import, import_exact = "1" while what
-- that import left was the source's state exactly (sync counts included), "0" after a merge (see below). And in each
-- record an import writes, im = 1: a device's write (update_records.lua) stores the record without it, so a record
-- without `im` is one devices changed here since the source last agreed with it (even before an earlier merge).
--
-- What is written:
--   exact: the dataset is replaced by the source's (records, change log, sync counts, dates); its writers hash is
--     emptied. Each record's version vector is one dot {importer = its sync count}; the dataset's has importer = the
--     dataset sync count. Nothing goes to the outbox (these are not new changes); announced only with ARGV[14].
--   merge: the source records changed since the last import (sync count above import_src) whose record here is
--     absent or was last written by an import (`im`) are written as ONE new change: the next sync count here,
--     a new importer dot, the source's dates and writers kept, announced on the push channel and appended to the
--     outbox when the pool streams, like update_records.lua. The others (changed on both sides) are conflicts, never
--     overwritten, and reported again by any later pass whose source changes them again.
-- Which one:
--   no dataset here, or a deletion marker below the source's sync count that no import wrote  -> exact ("imported")
--   a live dataset no import wrote (devices made it here first)            -> "conflict", nothing written
--   a deletion marker no import wrote, at or above the source's sync count -> merge of every record ("imported")
--   imported at this source sync count                                     -> "unchanged", nothing written
--   the source's sync count went down since the import (re-created there)  -> "conflict", nothing written
--   unchanged here since an exact import, the source above it              -> exact ("updated")
--   deleted here since the import                                          -> "conflict", nothing written
--   otherwise                                                              -> merge ("updated" or "conflict")
--
-- Returns a JSON object, one of:
--   {status = "imported"|"updated"|"unchanged"|"conflict", sc = the dataset's sync count after, written = records
--    written, conflicts = [{k, nk?} per source record changed on both sides, or present here when no import wrote
--    the dataset]}
--   {status = "limit", which = "datasets"|"records"|"bytes", limit, value}   nothing written
-- Errors: those of a write only.

local meta_key, rec_key, log_key, writers_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local datasets_key, usage_key, every_key, members_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local name, identity, pool = ARGV[1], ARGV[2], ARGV[3]
local source_sc, source_modified_by = tonumber(ARGV[4]), ARGV[7]
local records, stamps = cjson.decode(ARGV[8]), cjson.decode(ARGV[9])
local max_datasets, max_records, max_bytes = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local now, topic, channel, importer = ARGV[13], ARGV[15], ARGV[16], ARGV[17]

local meta = redis.call('HMGET', meta_key, 'sc', 'live', 'count', 'storage', 'vv', 'import_src', 'import_dst',
  'import_exact')
local exists = meta[1] ~= false
local sync_count = tonumber(meta[1]) or 0
local live = meta[2] == '1'
local count, storage = tonumber(meta[3]) or 0, tonumber(meta[4]) or 0
local dataset_vv = meta[5] and cjson.decode(meta[5]) or {}
local imported = meta[6] ~= false
local last_source, last_destination = tonumber(meta[6]) or 0, tonumber(meta[7]) or 0
local exact = meta[8] == '1'

-- Sizes as update_records.lua counts them: plaintext bytes of the name (`kn`, or a plain name's length) and value.
local function size(item, key)
  return (item.kn or #key) + (item.n or #item.v)
end

local function member(sc, key)
  return string.format('%020d', sc) .. key
end

local function answer(status, sc, written, conflicts)
  return cjson.encode({status = status, sc = sc, written = written, conflicts = conflicts})
end

local function over(new_count, new_storage)
  if not live and redis.call('ZCARD', datasets_key) >= max_datasets then
    return cjson.encode({status = 'limit', which = 'datasets', limit = max_datasets, value = max_datasets + 1})
  end
  if new_count > max_records then
    return cjson.encode({status = 'limit', which = 'records', limit = max_records, value = new_count})
  end
  if new_storage > max_bytes then
    return cjson.encode({status = 'limit', which = 'bytes', limit = max_bytes, value = new_storage})
  end
  return nil
end

local function stored_record(key)
  local raw = live and redis.call('HGET', rec_key, key) or false
  return raw and cjson.decode(raw) or nil
end

local function become_live()
  redis.call('ZADD', datasets_key, 0, name)
  redis.call('SADD', every_key, name)
  redis.call('ZADD', members_key, 0, identity)
end

local function announce(sc)
  redis.call('SPUBLISH', channel, cjson.encode({d = name, sc = sc, w = importer, to = redis.call('SMEMBERS', KEYS[10])}))
end

-- The dataset becomes the source's, exactly.
local function replace_exactly(status)
  local new_count, new_storage = 0, 0
  for _, record in ipairs(records) do
    if record.op == 'replace' then
      new_count, new_storage = new_count + 1, new_storage + size(record, record.k)
    end
  end
  local refused = over(new_count, new_storage)
  if refused then return refused end
  redis.call('DEL', rec_key, log_key, writers_key)
  for i, record in ipairs(records) do
    local vv = {}
    if record.sc > 0 then vv[importer] = record.sc end
    local new = {sc = record.sc, lm = stamps[i][1], lb = stamps[i][2], vv = vv, d = record.d, nk = record.nk,
      kn = record.kn, im = 1}
    if record.op == 'replace' then new.v, new.n = record.v, record.n end
    redis.call('HSET', rec_key, record.k, cjson.encode(new))
    redis.call('ZADD', log_key, 0, member(record.sc, record.k))
  end
  if source_sc > (dataset_vv[importer] or 0) then dataset_vv[importer] = source_sc end
  redis.call('HDEL', meta_key, 'purged')
  redis.call('HSET', meta_key, 'sc', ARGV[4], 'live', 1, 'count', new_count, 'storage', new_storage,
    'vv', cjson.encode(dataset_vv), 'created', ARGV[5], 'modified', ARGV[6], 'modified_by', source_modified_by,
    'import_src', ARGV[4], 'import_dst', ARGV[4], 'import_exact', 1)
  become_live()
  redis.call('HINCRBY', usage_key, 'storage', new_storage - storage)
  if tonumber(ARGV[6]) > (tonumber(redis.call('HGET', usage_key, 'modified')) or 0) then
    redis.call('HSET', usage_key, 'modified', ARGV[6])
  end
  if ARGV[14] == '1' then announce(source_sc) end
  return answer(status, source_sc, #records, {})
end

-- `changes` ({index, stored record or nil} each) become one new change here; `conflicts` are reported with it.
local function merge(status, changes, conflicts)
  if #changes == 0 then
    redis.call('HSET', meta_key, 'import_src', ARGV[4], 'import_dst', sync_count, 'import_exact', 0)
    return answer(#conflicts > 0 and 'conflict' or 'unchanged', sync_count, 0, conflicts)
  end
  local new_count, new_storage = count, storage
  for _, change in ipairs(changes) do
    local record, stored = records[change[1]], change[2]
    if stored and stored.v then
      new_count, new_storage = new_count - 1, new_storage - size(stored, record.k)
    end
    if record.op == 'replace' then
      new_count, new_storage = new_count + 1, new_storage + size(record, record.k)
    end
  end
  local refused = over(new_count, new_storage)
  if refused then return refused end
  local new_sc = sync_count + 1
  local counter = (dataset_vv[importer] or 0) + 1
  dataset_vv[importer] = counter
  local streamed = {}
  for i, change in ipairs(changes) do
    local record, stored, stamp = records[change[1]], change[2], stamps[change[1]]
    local vv = stored and stored.vv or {}
    vv[importer] = counter
    local new = {sc = new_sc, lm = stamp[1], lb = stamp[2], vv = vv, d = record.d, nk = record.nk, kn = record.kn,
      im = 1}
    if record.op == 'replace' then new.v, new.n = record.v, record.n end
    redis.call('HSET', rec_key, record.k, cjson.encode(new))
    if stored then redis.call('ZREM', log_key, member(stored.sc, record.k)) end
    redis.call('ZADD', log_key, 0, member(new_sc, record.k))
    streamed[i] = {k = record.k, nk = record.nk, op = record.op, sc = new_sc, lm = stamp[1], d = record.d, v = new.v}
  end
  redis.call('HSET', meta_key, 'sc', new_sc, 'live', 1, 'count', new_count, 'storage', new_storage,
    'vv', cjson.encode(dataset_vv), 'modified', now, 'modified_by', source_modified_by,
    'import_src', ARGV[4], 'import_dst', new_sc, 'import_exact', 0)
  if not live then
    redis.call('HSET', meta_key, 'created', ARGV[5])
    become_live()
  end
  redis.call('HINCRBY', usage_key, 'storage', new_storage - storage)
  redis.call('HSET', usage_key, 'modified', now)
  if topic ~= '' then
    redis.call('XADD', KEYS[9], '*', 'topic', topic, 'pool', pool, 'identity', identity, 'dataset', name,
      'sc', new_sc, 'lm', now, 'records', cjson.encode(streamed))
  end
  announce(new_sc)
  return answer(#conflicts > 0 and 'conflict' or status, new_sc, #changes, conflicts)
end

local function changed_at_source(since)
  local changed = {}
  for i, record in ipairs(records) do
    if record.sc > since then changed[#changed + 1] = i end
  end
  return changed
end

local function listed(indexes)
  local keys = {}
  for i, index in ipairs(indexes) do keys[i] = {k = records[index].k, nk = records[index].nk} end
  return keys
end

if not exists then return replace_exactly('imported') end

if not imported then
  if live then
    local present = {}
    for i, record in ipairs(records) do
      if redis.call('HEXISTS', rec_key, record.k) == 1 then present[#present + 1] = i end
    end
    return answer('conflict', sync_count, 0, listed(present))
  end
  if source_sc > sync_count then return replace_exactly('imported') end
  local every = {}
  for i = 1, #records do every[i] = {i, nil} end
  return merge('imported', every, {})
end

if last_source == source_sc then return answer('unchanged', sync_count, 0, {}) end
if source_sc < last_source then return answer('conflict', sync_count, 0, {}) end

local changed = changed_at_source(last_source)
if exact and sync_count == last_destination and source_sc > sync_count then return replace_exactly('updated') end
if not live and sync_count ~= last_destination then return answer('conflict', sync_count, 0, listed(changed)) end
local changes, conflicts = {}, {}
for _, index in ipairs(changed) do
  local stored = stored_record(records[index].k)
  if stored and not stored.im then
    conflicts[#conflicts + 1] = {k = records[index].k, nk = records[index].nk}
  else
    changes[#changes + 1] = {index, stored}
  end
end
return merge('updated', changes, conflicts)
