-- Creates an execution. Returns 1, or 0 if it already exists (a duplicate start).
-- KEYS[1] meta, KEYS[2] ctx, KEYS[3] top (top-level context keys in insertion order)
-- ARGV[1] workflow_id, ARGV[2] workflow_ref, ARGV[3] started_at (ms), ARGV[4] initial tokens,
-- ARGV[5..] seed as (context key, JSON text) pairs, all in the top-level scope.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'workflow_id', ARGV[1], 'workflow_ref', ARGV[2],
  'started_at', ARGV[3], 'pending', ARGV[4])
for i = 5, #ARGV, 2 do
  if redis.call('HSET', KEYS[2], '\31' .. ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('RPUSH', KEYS[3], ARGV[i])
  end
end
return 1
