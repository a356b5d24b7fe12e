-- Sets the final status, first writer wins, and puts the TTL on every key of the execution.
-- KEYS[1] meta, KEYS[2] ctx, KEYS[3] hops, KEYS[4] top, KEYS[5] keys (set of dynamic keys),
-- KEYS[6..] the members of KEYS[5] as read just before (so that every key is passed in KEYS).
-- ARGV[1] status, ARGV[2] '1' if there is a reason, ARGV[3] reason, ARGV[4] TTL in seconds
-- (0: no TTL), ARGV[5] the hop that finishes it ('' if none).
-- Reply: 1 won, 0 already finished, -1 unknown execution, -2 KEYS[6..] is stale (retry).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if redis.call('HEXISTS', KEYS[1], 'status') == 1 then
  return 0
end
-- The set only grows, so an equal count means the same members.
if redis.call('SCARD', KEYS[5]) ~= #KEYS - 5 then
  return -2
end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'reason', ARGV[3])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'finished_by', ARGV[5])
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  for i = 1, #KEYS do
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end
return 1
