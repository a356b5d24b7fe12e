-- Claims up to `limit` due timers: first the claimed ones whose lease expired (their worker
-- died between claim and complete), then the due ones. Each claimed id gets a new lease.
-- KEYS[1] due, KEYS[2] claimed (zset id -> lease deadline ms), KEYS[3] payload
-- ARGV[1] now ms, ARGV[2] limit, ARGV[3] lease deadline ms (now + lease)
-- Reply: {id1, payload1, due1, id2, payload2, due2, ...}; due is the time the timer was due
-- (ms), or -1 for a re-claimed one (its due time is no longer known)
local limit = tonumber(ARGV[2])
local out = {}
local function take(zset, ids_scores, known)
  for i = 1, #ids_scores, 2 do
    local id = ids_scores[i]
    redis.call('ZREM', zset, id)
    local payload = redis.call('HGET', KEYS[3], id)
    if payload then
      redis.call('ZADD', KEYS[2], ARGV[3], id)
      out[#out + 1] = id
      out[#out + 1] = payload
      if known then
        out[#out + 1] = tonumber(ids_scores[i + 1])
      else
        out[#out + 1] = -1
      end
    else
      redis.call('ZREM', KEYS[2], id)
    end
  end
end
if limit <= 0 then
  return out
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, limit)
take(KEYS[2], expired, false)
local taken = #expired / 2
if taken < limit then
  take(KEYS[1], redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, limit - taken), true)
end
return out
