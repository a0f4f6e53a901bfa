-- change_logins.lua: add and remove logins of an identity; optionally revoke every credential issued before.
--
-- KEYS[1] the identity's profile hash
-- ARGV[1] now (epoch ms)   ARGV[2] logins to add (JSON list of [provider, subject])
-- ARGV[3] logins to remove (JSON list of [provider, subject])   ARGV[4] "1" to raise the generation (revoke)
--
-- Every change raises the profile's revision (rev), which a folded identity check compares (syncsvc.model.Standing).
-- Returns the profile after the change as a flat HGETALL list, or {} when the identity does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local logins = cjson.decode(redis.call('HGET', KEYS[1], 'logins'))
local function key(pair) return pair[1] .. '\0' .. pair[2] end
local removed = {}
for _, pair in ipairs(cjson.decode(ARGV[3])) do removed[key(pair)] = true end
local kept, present = {}, {}
for _, pair in ipairs(logins) do
  if not removed[key(pair)] then
    kept[#kept + 1] = pair
    present[key(pair)] = true
  end
end
for _, pair in ipairs(cjson.decode(ARGV[2])) do
  if not present[key(pair)] then
    kept[#kept + 1] = pair
    present[key(pair)] = true
  end
end
local encoded = #kept == 0 and '[]' or cjson.encode(kept)
redis.call('HSET', KEYS[1], 'logins', encoded, 'modified', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'rev', 1)
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[1], 'gen', 1) end
return redis.call('HGETALL', KEYS[1])
