-- Records an arrival at a join; releases it exactly once.
-- KEYS[1] meta, KEYS[2] the join's hash, KEYS[3] keys (set of dynamic keys, for the TTL)
-- ARGV[1] arrival key, ARGV[2] arrival JSON text, ARGV[3] expected arrivals,
-- ARGV[4] '1' if this arrival releases the join by itself (wait_for_any and a real run).
-- Join hash fields: 'n' arrival count, 'i<k>' k-th arrival key, 'a\31<arrival key>' arrival
-- JSON, 'r' the releasing arrival key.
-- Reply: {'unknown'} | {'waiting', arrived} | {'already'}
--      | {'released', key1, json1, key2, json2, ...} (arrival order)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'unknown'}
end
local join = KEYS[2]
local function released()
  local n = tonumber(redis.call('HGET', join, 'n') or '0')
  local out = {'released'}
  for i = 1, n do
    local key = redis.call('HGET', join, 'i' .. i)
    out[#out + 1] = key
    out[#out + 1] = redis.call('HGET', join, 'a\31' .. key)
  end
  return out
end
local releaser = redis.call('HGET', join, 'r')
if releaser == ARGV[1] then
  -- The releasing arrival redelivered: release again so its successors go out.
  return released()
end
local n
if redis.call('HSETNX', join, 'a\31' .. ARGV[1], ARGV[2]) == 1 then
  n = redis.call('HINCRBY', join, 'n', 1)
  redis.call('HSET', join, 'i' .. n, ARGV[1])
  redis.call('SADD', KEYS[3], join)
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    redis.call('PEXPIRE', join, ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
else
  n = tonumber(redis.call('HGET', join, 'n'))
end
if releaser then
  return {'already'}
end
if ARGV[4] == '1' or n >= tonumber(ARGV[3]) then
  redis.call('HSET', join, 'r', ARGV[1])
  return released()
end
return {'waiting', n}
