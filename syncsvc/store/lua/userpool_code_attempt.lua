-- userpool_code_attempt.lua: count one try of a one-time code and hand back its digest to compare.
--
-- KEYS[1] the code's hash (fields digest, expires (epoch ms), tries)
-- ARGV[1] tries allowed   ARGV[2] now (epoch ms)
--
-- Returns {'none'} (no code: never sent, used or replaced), {'expired'}, {'exhausted'} (this try is past the
-- allowed ones: the code is deleted, a new one must be asked for) or {'try', digest}. The caller compares the digest
-- in constant time and consumes the code with DEL (whose reply, 1, makes the use single even between two callers).

local code = KEYS[1]
local digest, expires = unpack(redis.call('HMGET', code, 'digest', 'expires'))
if not digest then return {'none'} end
if tonumber(expires) <= tonumber(ARGV[2]) then
  redis.call('DEL', code)
  return {'expired'}
end
local tries = redis.call('HINCRBY', code, 'tries', 1)
if tries > tonumber(ARGV[1]) then
  redis.call('DEL', code)
  return {'exhausted'}
end
return {'try', digest}
