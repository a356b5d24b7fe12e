-- Creates an execution. Returns 1, or 0 if it already exists (a duplicate start). An execution
-- cancelled before it started (KEYS[4] exists) is created already halted, and 0 is returned:
-- the engine then only emits its completion.
-- KEYS[1] meta, KEYS[2] ctx, KEYS[3] top (top-level context keys in insertion order),
-- KEYS[4] the cancelled-before-start mark
-- ARGV[1] workflow_id, ARGV[2] workflow_ref, ARGV[3] started_at (ms), ARGV[4] initial tokens,
-- ARGV[5] TTL in seconds of a finished execution (0: none), ARGV[6] TTL in seconds of the
-- running execution (0: none; its deadline plus the finished TTL, see `running_ttl_secs`),
-- ARGV[7..] seed as (context key, JSON text) pairs, all in the top-level scope.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'workflow_id', ARGV[1], 'workflow_ref', ARGV[2],
  'started_at', ARGV[3], 'pending', ARGV[4])
for i = 7, #ARGV, 2 do
  if redis.call('HSET', KEYS[2], '\31' .. ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('RPUSH', KEYS[3], ARGV[i])
  end
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HSET', KEYS[1], 'status', 'halted', 'reason', 'execution cancelled before it started',
    'pending', 0)
  local ttl = tonumber(ARGV[5])
  if ttl > 0 then
    for i = 1, 4 do
      redis.call('EXPIRE', KEYS[i], ttl)
    end
  end
  return 0
end
-- Later writes (commit, join, signal) carry the meta's TTL over to the keys they create.
local running = tonumber(ARGV[6])
if running > 0 then
  for i = 1, 3 do
    redis.call('EXPIRE', KEYS[i], running)
  end
end
return 1
