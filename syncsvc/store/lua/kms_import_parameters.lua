-- kms_import_parameters.lua: keep the private half of a new import wrapping key pair (sealed by the root key) in the
-- master key's hash until its import token expires or is used, and drop those of this key whose token has expired.
--
-- KEYS[1] the key's hash
-- ARGV[1] the wrapping key's field ('imp:<expiry in ms>:<token id>')   ARGV[2] the private key, sealed
-- ARGV[3] now (ms)
-- Returns 1 when stored, -1 when the key does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
  local expiry = string.match(name, '^imp:(%d+):')
  if expiry and tonumber(expiry) <= tonumber(ARGV[3]) then redis.call('HDEL', KEYS[1], name) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
