-- subscribe.lua: subscribe a registered device to a dataset (SubscribeToDataset), or unsubscribe it.
--
-- KEYS[1] the identity's devices hash   KEYS[2] the device's subscriptions set   KEYS[3] the dataset's subscribers set
-- ARGV[1] DeviceId   ARGV[2] dataset name   ARGV[3] "1" to subscribe, "0" to unsubscribe
-- ARGV[4] the most datasets a device may subscribe to
--
-- Returns 0 when the device is not registered to the identity, -1 when subscribing would take the device past
-- ARGV[4] subscriptions (nothing changes either way), else 1. Both sets change together,
-- so a write's announcement (update_records.lua reads the subscribers) and a device's catch-up (its subscriptions)
-- always agree.

if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[3] == '1' then
  if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 and redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[4]) then
    return -1
  end
  redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[1])
else
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('SREM', KEYS[3], ARGV[1])
end
return 1
