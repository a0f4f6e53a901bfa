-- kms_keystore_transition.lua: move a custom key store's connection state, only from the states the move allows, so
-- two instances connecting and disconnecting one store at once never both win.
--
-- KEYS[1] the store's hash
-- ARGV[1] the states the move starts from, space-separated   ARGV[2] the new state
-- ARGV[3] the connection error code ('' = none; kept only with the new state)
-- Returns {1, state before} when moved, {0, current state} when the store is in another state, {-1, ''} when there is
-- no such store.

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1, ''} end
for allowed in string.gmatch(ARGV[1], '%S+') do
  if allowed == state then
    redis.call('HSET', KEYS[1], 'state', ARGV[2], 'error', ARGV[3])
    return {1, state}
  end
end
return {0, state}
