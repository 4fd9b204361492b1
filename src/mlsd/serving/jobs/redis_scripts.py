"""The Lua scripts of the Redis job queue: each runs atomically on the server.

A claim, a requeue and a forget each read and change several keys; as scripts
they cannot interleave with another server's, so no job is claimed twice, no
run goes uncounted and no id is forgotten twice.
"""

# Take the oldest waiting id, count the run and own it, in one step: no run goes uncounted,
# and the owner's lease (a key with a short TTL, kept alive while the worker lives) is set
# with the claim, so a job is never owned without a lease.
# KEYS: queue, processing, the worker's lease key.
# ARGV: job key prefix, started_at, heartbeat, worker id, lease ms.
CLAIM = """
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
if not id then return false end
local key = ARGV[1] .. id
if redis.call('EXISTS', key) == 0 then return {id, 0} end
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
local attempts = redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'state', 'running', 'started_at', ARGV[2], 'heartbeat', ARGV[3],
  'owner', ARGV[4])
return {id, attempts}
"""

# Progress of a job its worker still owns: 1, or 0 when the job is no longer this worker's
# (taken back after its lease lapsed, or its key vanished: HSET would recreate a hash
# holding only the progress fields). KEYS: the job's key. ARGV: worker id, field, value, ...
BEAT = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""

# A finished run published, only by the worker that owns it (1), else nothing changes (0).
# KEYS: the job's key, processing, finished. ARGV: worker id, id, now, ttl, field, value, ...
FINISH = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('HDEL', KEYS[1], 'spec', 'owner')
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('LREM', KEYS[2], 1, ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return 1
"""

# A job whose worker is dead: queued again (runs next), or failed at max_attempts. Dead means
# its owner is the id a restarted server held before (ARGV[7]: the server proved the old
# process gone by taking its lock file), or its owner's lease expired, or (a job claimed
# without an owner) its heartbeat is older than stale_after_s.
# Returns 0 (left alone: alive, or another server took it), 1 (requeued), 2 (failed).
# KEYS: processing, queue, finished, the job's key.
# ARGV: id, now, stale_after_s, max_attempts, finished_at, ttl, reclaimed owner id (or ''),
# lease key prefix.
REQUEUE = """
local owner = redis.call('HGET', KEYS[4], 'owner')
local dead = false
if owner and owner ~= '' then
  dead = owner == ARGV[7] or redis.call('EXISTS', ARGV[8] .. owner) == 0
end
local beat = redis.call('HGET', KEYS[4], 'heartbeat')
if not dead and beat and tonumber(ARGV[2]) - tonumber(beat) < tonumber(ARGV[3]) then
  return 0
end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[4]) == 0 then return 0 end
local attempts = tonumber(redis.call('HGET', KEYS[4], 'attempts') or '0')
if attempts >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[4], 'state', 'failed', 'finished_at', ARGV[5], 'error',
    'interrupted ' .. attempts .. ' times (its worker stopped while running it; max_attempts '
    .. ARGV[4] .. '): not run again')
  redis.call('HDEL', KEYS[4], 'spec', 'owner')
  redis.call('EXPIRE', KEYS[4], ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  return 2
end
redis.call('HSET', KEYS[4], 'state', 'queued', 'done', 0)
redis.call('HDEL', KEYS[4], 'started_at', 'total', 'heartbeat', 'owner')
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""

# Forget finished jobs older than max_age, then the oldest beyond keep; list them as forgotten.
# KEYS: finished, forgotten. ARGV: now, keep, max_age, job key prefix, forgotten_age,
# forgotten_cap, batch. Returns the ids forgotten.
FORGET = """
local now = tonumber(ARGV[1])
local batch = tonumber(ARGV[7])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[3])),
  'LIMIT', 0, batch)
local extra = math.min(redis.call('ZCARD', KEYS[1]) - #ids - tonumber(ARGV[2]), batch)
if extra > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], #ids, #ids + extra - 1)) do
    table.insert(ids, id)
  end
end
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', ARGV[4] .. id)
  redis.call('ZADD', KEYS[2], now, id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[5])))
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1) end
return ids
"""
