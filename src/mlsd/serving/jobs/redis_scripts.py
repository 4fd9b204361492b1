"""The Lua scripts of the Redis job queue: each runs atomically on the server.

A claim, a requeue and a forget each read and change several keys; as scripts
they cannot interleave with another server's, so no job is claimed twice, no
run goes uncounted and no id is forgotten twice.
"""

# Take the oldest waiting id and count the run, in one step: no run goes uncounted.
# KEYS: queue, processing. ARGV: job key prefix, started_at, heartbeat.
CLAIM = """
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
if not id then return false end
local key = ARGV[1] .. id
if redis.call('EXISTS', key) == 0 then return {id, 0} end
local attempts = redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'state', 'running', 'started_at', ARGV[2], 'heartbeat', ARGV[3])
return {id, attempts}
"""

# A job whose heartbeat is stale: queued again (runs next), or failed at max_attempts.
# Returns 0 (left alone: fresh, or another server took it), 1 (requeued), 2 (failed).
# KEYS: processing, queue, finished, the job's key.
# ARGV: id, now, stale_after_s, max_attempts, finished_at, ttl.
REQUEUE = """
local beat = redis.call('HGET', KEYS[4], 'heartbeat')
if beat and tonumber(ARGV[2]) - tonumber(beat) < tonumber(ARGV[3]) then return 0 end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[4]) == 0 then return 0 end
local attempts = tonumber(redis.call('HGET', KEYS[4], 'attempts') or '0')
if attempts >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[4], 'state', 'failed', 'finished_at', ARGV[5], 'error',
    'interrupted ' .. attempts .. ' times (its worker stopped while running it; max_attempts '
    .. ARGV[4] .. '): not run again')
  redis.call('HDEL', KEYS[4], 'spec')
  redis.call('EXPIRE', KEYS[4], ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  return 2
end
redis.call('HSET', KEYS[4], 'state', 'queued', 'done', 0)
redis.call('HDEL', KEYS[4], 'started_at', 'total', 'heartbeat')
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
