-- register_device.lua: register a device to an identity (RegisterDevice), within the identity's device limit.
--
-- KEYS[1] the identity's devices hash
-- ARGV[1] DeviceId   ARGV[2] the device's registration (JSON)   ARGV[3] the most devices an identity may have
--
-- Returns 1 when the device is registered (now, or already: a device registered again keeps its first registration
-- and subscriptions), 0 when the identity already has ARGV[3] devices and this is not one of them (nothing changes).

if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
