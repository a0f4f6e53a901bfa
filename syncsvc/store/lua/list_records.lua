-- list_records.lua: one page of a dataset's changes after a cursor, with the dataset metadata, in one snapshot.
--
-- KEYS[1] dataset metadata hash   KEYS[2] records hash   KEYS[3] change log (lex sorted set)
-- KEYS[4] the pool's sync-session counter in this shard   KEYS[5] the identity's live datasets
-- ARGV[1] lex range start: "[<20-digit sync count>" for "changed after N", or "(<member>" to continue a page
-- ARGV[2] page size (>= 1)   ARGV[3] "1" when this call starts a sync session (issues a SyncSessionToken)
-- ARGV[4] the dataset name followed by "." (datasets merged into this one from other identities start so)
-- ARGV[5] "1" to fence: when replicas must confirm what is answered, the script writes (the session count, or
--         INCRBY 0 on it), so that the WAIT after it covers every write the page shows (replication keeps order)
-- KEYS[6] the caller's identity profile   ARGV[6] the pool it must belong to, or "" to check nothing
-- ARGV[7] its generation   ARGV[8] its revision, or "" for any (see syncsvc.model.Standing)
-- ARGV[9] "0": leave the page's records out (the caller reads the whole records hash in the same MULTI: a pull from
--         the start, where the page is most of the hash, and Redis copies 1 MB through Lua in ~2 ms but as a
--         plain HGETALL in ~0.2 ms); "1" (or absent): read them here
--
-- Returns {metadata as a flat HGETALL list, members of the page, their stored records (JSON), more (0|1),
--          names of the merged datasets}, or {"revoked"} when the caller's identity no longer stands as admitted.
-- Members are "<20-digit sync count><record key>", so the page is in (sync count, key) order and a later write
-- always sorts after any cursor: paging never skips a record, even while the dataset changes.
-- Errors: those of a read only. Counting the session is bookkeeping, the answer does not depend on it: while Redis is
-- out of memory (maxmemory reached under noeviction) that INCR is refused and the page is answered all the same, so
-- devices can still pull while writes are refused (unfenced then). Keep it the script's only write, and best-effort: Redis refuses a
-- script's first write under OOM, and a redis.call write would fail the whole read.

if ARGV[6] ~= '' then
  local profile = redis.call('HMGET', KEYS[6], 'pool', 'gen', 'rev')
  if profile[1] ~= ARGV[6] or profile[2] ~= ARGV[7] or (ARGV[8] ~= '' and (profile[3] or '0') ~= ARGV[8]) then
    return {'revoked'}
  end
end
if ARGV[3] == '1' or ARGV[5] == '1' then
  local counted = redis.pcall('INCRBY', KEYS[4], ARGV[3] == '1' and 1 or 0)
  if type(counted) == 'table' and counted.err and string.sub(counted.err, 1, 3) ~= 'OOM' then return counted end
end
local meta = redis.call('HGETALL', KEYS[1])
local limit = tonumber(ARGV[2])
local members = redis.call('ZRANGEBYLEX', KEYS[3], ARGV[1], '+', 'LIMIT', 0, limit + 1)
local more = 0
if #members > limit then
  members[#members] = nil
  more = 1
end
local records = {}
if #members > 0 and ARGV[9] ~= '0' then
  local keys = {}
  for i, m in ipairs(members) do keys[i] = string.sub(m, 21) end
  records = redis.call('HMGET', KEYS[2], unpack(keys))
end
local merged = redis.call('ZRANGEBYLEX', KEYS[5], '[' .. ARGV[4], '[' .. ARGV[4] .. '\255')
return {meta, members, records, more, merged}
