-- snapshot_dataset.lua: append a dataset's current state to its shard's outbox, as one bulk publish change.
--
-- KEYS[1] dataset metadata hash   KEYS[2] records hash   KEYS[3] the shard's outbox stream
-- ARGV[1] dataset name   ARGV[2] identity id   ARGV[3] identity pool id   ARGV[4] the pool's stream topic
--
-- Reads the dataset's live records (tombstones left out) and its sync count in one atomic step, and XADDs one entry
-- with update_records.lua's fields (topic, pool, identity, dataset, sc = the dataset's sync count, lm = its last
-- modification, records = every live record as a "replace" with its own nk/sc/lm/d, in the order of the names as
-- stored: the relay gives them by name) plus bulk = "1".
-- The entry takes its place in the shard's order: after every change it contains, before every later one, so the
-- relay publishes it in per-dataset order like any change.
-- Returns the entry id, or false when the dataset is not live (deleted, or never written): nothing is appended then.

local meta = redis.call('HMGET', KEYS[1], 'live', 'sc', 'modified')
if meta[1] ~= '1' then
  return false
end

local stored = redis.call('HGETALL', KEYS[2])
local changes = {}
for i = 1, #stored, 2 do
  local record = cjson.decode(stored[i + 1])
  if record.v then
    changes[#changes + 1] = {
      k = stored[i], nk = record.nk, op = 'replace', v = record.v, sc = record.sc, lm = record.lm, d = record.d
    }
  end
end
table.sort(changes, function(a, b) return a.k < b.k end)
-- cjson writes an empty table as an object: a dataset whose records are all removed is published with none
local records = #changes > 0 and cjson.encode(changes) or '[]'

return redis.call('XADD', KEYS[3], '*', 'topic', ARGV[4], 'pool', ARGV[3], 'identity', ARGV[2], 'dataset', ARGV[1],
  'sc', meta[2] or 0, 'lm', meta[3] or 0, 'records', records, 'bulk', '1')
