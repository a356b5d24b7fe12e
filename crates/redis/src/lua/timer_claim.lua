-- Claims up to `limit` due timers: first the claimed ones whose lease expired (their worker
-- died between claim and complete), then the due ones. Each claimed id gets a new lease.
-- KEYS[1] due, KEYS[2] claimed (zset id -> lease deadline ms), KEYS[3] payload
-- ARGV[1] now ms, ARGV[2] limit, ARGV[3] lease deadline ms (now + lease)
-- Reply: {id1, payload1, id2, payload2, ...}
local limit = tonumber(ARGV[2])
local out = {}
local function take(zset, ids)
  for _, id in ipairs(ids) do
    redis.call('ZREM', zset, id)
    local payload = redis.call('HGET', KEYS[3], id)
    if payload then
      redis.call('ZADD', KEYS[2], ARGV[3], id)
      out[#out + 1] = id
      out[#out + 1] = payload
    else
      redis.call('ZREM', KEYS[2], id)
    end
  end
end
if limit <= 0 then
  return out
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, limit)
take(KEYS[2], expired)
if #expired < limit then
  take(KEYS[1], redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, limit - #expired))
end
return out
