-- update_records.lua: apply one UpdateRecords call to one dataset, atomically and all-or-nothing.
--
-- KEYS[1] dataset metadata hash     KEYS[2] records hash          KEYS[3] change log (lex sorted set)
-- KEYS[4] writers hash (last write)  KEYS[5] identity's live datasets (sorted set)
-- KEYS[6] identity usage hash        KEYS[7] identity's every-dataset-ever set (for purges)
-- KEYS[8] the pool's member set in this shard (the identity is added on its first dataset)
-- KEYS[9] the shard's outbox stream (what the relay publishes to Kafka)
-- KEYS[10] the DeviceIds subscribed to the dataset (push sync)
-- ARGV[1] dataset name   ARGV[2] now (epoch ms)   ARGV[3] writer id (device)   ARGV[4] request fingerprint
-- ARGV[5] max live datasets per identity   ARGV[6] max live records per dataset   ARGV[7] max dataset bytes
-- ARGV[8] JSON array of patches: {k = the record's name as stored (a token, see syncsvc.kms.envelope), nk = the name
--         sealed and kn = its plaintext bytes (both absent where names are stored plain), op = "replace"|"remove",
--         v = sealed value and n = its plaintext bytes (replace only),
--         sc = the record's last known SyncCount, vv = version-vector context (optional), d = device ms (optional)}
-- ARGV[9] identity id   ARGV[10] the pool's stream topic, or "" while streaming is off   ARGV[11] identity pool id
-- ARGV[12] the dataset sync count the patches were planned on, or "" for none: a write planned on a snapshot (by a
--          sync trigger or a conflict handler) commits only if the dataset has not changed since
-- ARGV[13] the identity's push channel (sharded Pub/Sub, in the identity's slot)
-- KEYS[11] the caller's identity profile   ARGV[14] the pool it must belong to, or "" to check nothing
-- ARGV[15] its generation   ARGV[16] its revision, or "" for any (see syncsvc.model.Standing)
-- ARGV[17] the writing request's W3C traceparent, or "" when it is not traced (kept in the outbox entry as tp)
--
-- Returns a JSON object, one of:
--   {status = "ok", sc, counter, lm, records = [{k, nk?, v?, sc, lm, lb, vv, d?} per patch, in order]}; with a topic, the change
--   is also appended to the outbox in the same script: a committed change is a streamed change, and only that.
--   Every commit is announced on the push channel, in commit order: {d = dataset, sc, w = writer, to = [DeviceIds
--   subscribed]} (see syncsvc.push.hub).
--   {status = "duplicate", ...the same fields, as first committed}   the writer re-sent its last committed request
--   (its writers entry is written again, unchanged, so that a replica confirmation covers the first commit)
--   {status = "conflict", sc, vv, conflicts = [{k, given, stored = record JSON | null}]}
--   {status = "limit", which = "datasets"|"records"|"bytes", limit, value}
--   {status = "stale", sc}   the dataset's sync count is no longer ARGV[12]
--   {status = "revoked"}   the caller's identity no longer stands as admitted (KEYS[11], ARGV[14..16])
-- Nothing is written unless status is "ok" (or "duplicate", the same entry again).

if ARGV[14] ~= '' then
  local profile = redis.call('HMGET', KEYS[11], 'pool', 'gen', 'rev')
  if profile[1] ~= ARGV[14] or profile[2] ~= ARGV[15] or (ARGV[16] ~= '' and (profile[3] or '0') ~= ARGV[16]) then
    return cjson.encode({status = 'revoked'})
  end
end

local meta_key, rec_key, log_key, writers_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local datasets_key, usage_key, every_key, members_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local name, now, writer, fingerprint = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local max_datasets, max_records, max_bytes = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local patches = cjson.decode(ARGV[8])

local meta = redis.call('HMGET', meta_key, 'sc', 'live', 'count', 'storage', 'vv')
local sync_count = tonumber(meta[1]) or 0
local live = meta[2] == '1'
local count = tonumber(meta[3]) or 0
local storage = tonumber(meta[4]) or 0
local dataset_vv = meta[5] and cjson.decode(meta[5]) or {}
if ARGV[12] ~= '' and tonumber(ARGV[12]) ~= sync_count then
  return cjson.encode({status = 'stale', sc = sync_count})
end

local function descends(a, b)
  for writer_id, counter in pairs(b) do
    if (a[writer_id] or 0) < counter then return false end
  end
  return true
end

-- The plaintext size of a value: `n` (values are stored sealed, see syncsvc.kms.envelope), or the length of a value
-- stored before encryption; of a name: `kn` (names are stored as tokens), or the length of a name stored plain.
local function value_size(item)
  return item.n or #item.v
end

local function name_size(item, key)
  return item.kn or #key
end

local function member(sc, key)
  return string.format('%020d', sc) .. key
end

-- 1. Conflicts: every patch must be based on the record as stored (SyncCount equality, or a descending vector).
local stored, stored_raw, conflicts = {}, {}, {}
for i, patch in ipairs(patches) do
  local raw = live and redis.call('HGET', rec_key, patch.k) or false
  local record = raw and cjson.decode(raw) or nil
  stored[i], stored_raw[i] = record, raw
  local ok
  if patch.vv then
    ok = descends(patch.vv, record and record.vv or {})
  else
    ok = patch.sc == (record and record.sc or 0)
  end
  if not ok then
    conflicts[#conflicts + 1] = {k = patch.k, given = patch.sc, stored = raw or cjson.null}
  end
end

if #conflicts > 0 then
  local last = redis.call('HGET', writers_key, writer)
  if last then
    local previous = cjson.decode(last)
    if previous.fp == fingerprint then
      -- Written again unchanged: a write propagates to the replicas, after the first commit, so the WAIT that
      -- follows this script confirms the first commit too before it is answered a second time.
      redis.call('HSET', writers_key, writer, last)
      previous.result.status = 'duplicate'
      return cjson.encode(previous.result)
    end
  end
  return cjson.encode({status = 'conflict', sc = sync_count, vv = dataset_vv, conflicts = conflicts})
end

-- 2. Limits, on the dataset as it would be after this call.
if not live and redis.call('ZCARD', datasets_key) >= max_datasets then
  return cjson.encode({status = 'limit', which = 'datasets', limit = max_datasets, value = max_datasets + 1})
end
local new_count, new_storage = count, storage
for i, patch in ipairs(patches) do
  local record = stored[i]
  if record and record.v then
    new_count = new_count - 1
    new_storage = new_storage - name_size(record, patch.k) - value_size(record)
  end
  if patch.op == 'replace' then
    new_count = new_count + 1
    new_storage = new_storage + name_size(patch, patch.k) + value_size(patch)
  end
end
if new_count > max_records then
  return cjson.encode({status = 'limit', which = 'records', limit = max_records, value = new_count})
end
if new_storage > max_bytes then
  return cjson.encode({status = 'limit', which = 'bytes', limit = max_bytes, value = new_storage})
end

-- 3. Commit: one new dataset sync count and one new dot (writer, counter) for the whole call.
local new_sync_count = sync_count + 1
local counter = (dataset_vv[writer] or 0) + 1
dataset_vv[writer] = counter
local written = {}
for i, patch in ipairs(patches) do
  local record = stored[i]
  local vv = record and record.vv or {}
  if patch.vv then
    for writer_id, c in pairs(patch.vv) do
      if (vv[writer_id] or 0) < c then vv[writer_id] = c end
    end
  end
  vv[writer] = counter
  local new = {sc = new_sync_count, lm = now, lb = writer, vv = vv, d = patch.d, nk = patch.nk, kn = patch.kn}
  if patch.op == 'replace' then new.v, new.n = patch.v, patch.n end
  redis.call('HSET', rec_key, patch.k, cjson.encode(new))
  if record then redis.call('ZREM', log_key, member(record.sc, patch.k)) end
  redis.call('ZADD', log_key, 0, member(new_sync_count, patch.k))
  written[i] = {k = patch.k, nk = patch.nk, v = new.v, sc = new_sync_count, lm = now, lb = writer, vv = vv, d = patch.d}
end

redis.call('HSET', meta_key, 'sc', new_sync_count, 'live', 1, 'count', new_count, 'storage', new_storage,
  'vv', cjson.encode(dataset_vv), 'modified', now, 'modified_by', writer)
if not live then
  redis.call('HSET', meta_key, 'created', now)
  redis.call('ZADD', datasets_key, 0, name)
  redis.call('SADD', every_key, name)
  redis.call('ZADD', members_key, 0, ARGV[9])
end
redis.call('HINCRBY', usage_key, 'storage', new_storage - storage)
redis.call('HSET', usage_key, 'modified', now)

if ARGV[10] ~= '' then
  local changes = {}
  for i, patch in ipairs(patches) do
    changes[i] = {k = patch.k, nk = patch.nk, op = patch.op, sc = new_sync_count, lm = now, d = patch.d}
    if patch.op == 'replace' then changes[i].v = patch.v end
  end
  local entry = {'topic', ARGV[10], 'pool', ARGV[11], 'identity', ARGV[9], 'dataset', name,
    'sc', new_sync_count, 'lm', now, 'records', cjson.encode(changes)}
  if ARGV[17] ~= '' then
    entry[#entry + 1] = 'tp'
    entry[#entry + 1] = ARGV[17]
  end
  redis.call('XADD', KEYS[9], '*', unpack(entry))
end

redis.call('SPUBLISH', ARGV[13],
  cjson.encode({d = name, sc = new_sync_count, w = writer, to = redis.call('SMEMBERS', KEYS[10])}))

local result = {status = 'ok', sc = new_sync_count, counter = counter, lm = now, records = written}
redis.call('HSET', writers_key, writer, cjson.encode({fp = fingerprint, result = result}))
return cjson.encode(result)
