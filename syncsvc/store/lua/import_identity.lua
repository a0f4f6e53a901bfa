-- import_identity.lua: register an identity read from another deployment with its own id and dates, or add to the
-- logins of the one an earlier import registered.
--
-- KEYS[1] the identity's profile hash   KEYS[2] the pool's member set in the identity's shard
-- ARGV[1] identity pool id   ARGV[2] identity id   ARGV[3] created (epoch ms)   ARGV[4] last modified (epoch ms)
-- ARGV[5] logins (JSON list of [provider, subject]); a subject "" stands for a provider whose subject is unknown
--         (see syncsvc.migration.target: it keeps the identity authenticated and opens it to no one)
--
-- A new profile gets the fields create_identity.lua writes (pool, logins, created, modified, gen = 1). An existing one
-- keeps its logins and dates; logins it lacks are added (and a provider's unknown-subject entry dropped once a subject
-- of it is known), and then `modified` becomes the later of its own and ARGV[4]. Logins are never removed. Entries of
-- unknown subject come last (a token issued without naming a login names the first, see IdentityBroker._token).
--
-- Returns {"created"}, {"updated"}, {"unchanged"} (nothing written), or {"other", pool id} when the identity exists
-- in another pool (nothing written).

local pool = redis.call('HGET', KEYS[1], 'pool')
if not pool then
  redis.call('HSET', KEYS[1], 'pool', ARGV[1], 'created', ARGV[3], 'modified', ARGV[4], 'logins', ARGV[5], 'gen', 1)
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
  return {'created'}
end
if pool ~= ARGV[1] then return {'other', pool} end

local function key(pair) return pair[1] .. '\0' .. pair[2] end
local logins = cjson.decode(redis.call('HGET', KEYS[1], 'logins'))
local present, known = {}, {}
for _, pair in ipairs(logins) do present[key(pair)] = true end
local given = cjson.decode(ARGV[5])
for _, pair in ipairs(given) do
  if pair[2] ~= '' then known[pair[1]] = true end
end
for _, pair in ipairs(logins) do
  if pair[2] ~= '' then known[pair[1]] = true end
end
local kept, pending, changed = {}, {}, false
local function keep(pair)
  if pair[2] == '' then pending[#pending + 1] = pair else kept[#kept + 1] = pair end
end
for _, pair in ipairs(logins) do
  if pair[2] == '' and known[pair[1]] then changed = true else keep(pair) end
end
for _, pair in ipairs(given) do
  if not present[key(pair)] and not (pair[2] == '' and known[pair[1]]) then
    keep(pair)
    present[key(pair)] = true
    changed = true
  end
end
for _, pair in ipairs(pending) do kept[#kept + 1] = pair end
if not changed then return {'unchanged'} end
local encoded = #kept == 0 and '[]' or cjson.encode(kept)
redis.call('HSET', KEYS[1], 'logins', encoded)
if tonumber(ARGV[4]) > tonumber(redis.call('HGET', KEYS[1], 'modified')) then
  redis.call('HSET', KEYS[1], 'modified', ARGV[4])
end
return {'updated'}
