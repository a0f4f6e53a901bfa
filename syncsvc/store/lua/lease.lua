-- lease.lua: take, keep or give back a lease (a key holding its owner's id, with a time to live).
--
-- KEYS[1] the lease key   ARGV[1] "take" | "keep" | "give"   ARGV[2] owner id   ARGV[3] time to live (ms)
-- take: set when free, or when already ours (and extend).  keep: extend only while ours.  give: delete only if ours.
-- Returns 1 when the caller holds (or, for give, held) the lease afterwards, 0 otherwise.

local owner = redis.call('GET', KEYS[1])
if ARGV[1] == 'take' then
  if owner and owner ~= ARGV[2] then return 0 end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if owner ~= ARGV[2] then return 0 end
if ARGV[1] == 'keep' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
