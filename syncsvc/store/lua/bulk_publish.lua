-- bulk_publish.lua: a pool's bulk publish job (one at a time) and the lease of the one worker that runs it.
--
-- KEYS[1] the job hash (fields: see keys.bulk_publish)   KEYS[2] the worker lease (owner id, with a time to live)
-- ARGV[1] action   ARGV[2] owner (worker id)   ARGV[3] lease time to live (ms)   ARGV[4..] per action:
--
--   start   ARGV[4] now (epoch ms)   ARGV[5] window (ms)
--           A new job, IN_PROGRESS from the first identity, its lease taken by the owner; refused while a job is
--           IN_PROGRESS, or when the last job SUCCEEDED less than the window ago.
--           Returns {"started"} | {"duplicate"} | {"streamed", completed ms of the last success}.
--   claim   Takes the lease of the IN_PROGRESS job when it is free (its worker is gone) or already the owner's, to
--           resume it. Returns the job hash as a flat list, or an empty list when there is nothing to claim.
--   keep    ARGV[4..] field, value, …: records progress (the cursor) and extends the lease.
--   finish  ARGV[4] SUCCEEDED | FAILED   ARGV[5] now (epoch ms)   ARGV[6] failure message ("" for none)
--           Ends the job and drops the lease.
--   give    Drops the lease (the worker stops; another one resumes the job from its cursor).
-- keep, finish and give act only on an IN_PROGRESS job whose lease is the owner's or free; they return 1, else 0
-- (the lease went to another worker, or the job is gone with its pool: the caller stops).

local job_key, lease_key = KEYS[1], KEYS[2]
local action, owner, ttl = ARGV[1], ARGV[2], ARGV[3]
local status = redis.call('HGET', job_key, 'status')

if action == 'start' then
  if status == 'IN_PROGRESS' then
    return {'duplicate'}
  end
  local now, window = tonumber(ARGV[4]), tonumber(ARGV[5])
  local completed = tonumber(redis.call('HGET', job_key, 'completed'))
  if status == 'SUCCEEDED' and completed and now - completed < window then
    return {'streamed', completed}
  end
  redis.call('DEL', job_key)
  redis.call('HSET', job_key, 'status', 'IN_PROGRESS', 'started', now, 'done', 0)
  redis.call('SET', lease_key, owner, 'PX', ttl)
  return {'started'}
end

local holder = redis.call('GET', lease_key)
if status ~= 'IN_PROGRESS' or (holder and holder ~= owner) then
  if action == 'claim' then
    return {}
  end
  return 0
end

if action == 'claim' then
  redis.call('SET', lease_key, owner, 'PX', ttl)
  return redis.call('HGETALL', job_key)
elseif action == 'keep' then
  if #ARGV > 3 then
    redis.call('HSET', job_key, unpack(ARGV, 4))
  end
  redis.call('SET', lease_key, owner, 'PX', ttl)
elseif action == 'finish' then
  redis.call('HSET', job_key, 'status', ARGV[4], 'completed', ARGV[5])
  if ARGV[6] ~= '' then
    redis.call('HSET', job_key, 'failure', ARGV[6])
  end
  redis.call('DEL', lease_key)
elseif action == 'give' then
  redis.call('DEL', lease_key)
else
  return redis.error_reply('unknown action ' .. action)
end
return 1
