-- Claims up to `limit` due timers over one or more shards: in each shard in turn, first the
-- claimed ones whose lease expired (their worker died between claim and complete), then the
-- due ones, until `limit` are claimed. Each claimed id gets a new lease. One shard per call on
-- a cluster (its keys share a slot); every shard in one call on a single node, so an idle
-- worker's poll is one script, not one per shard.
-- KEYS[3s+1] due, KEYS[3s+2] claimed (zset id -> lease deadline ms), KEYS[3s+3] payload, for
-- shards s = 0, 1, ...
-- ARGV[1] now ms, ARGV[2] limit, ARGV[3] lease deadline ms (now + lease)
-- Reply: {id1, payload1, due1, id2, payload2, due2, ...}; due is the time the timer was due
-- (ms), or -1 for a re-claimed one (its due time is no longer known)
local limit = tonumber(ARGV[2])
local out = {}
local taken = 0
local function take(zset, claimed, payloads, ids_scores, known)
  for i = 1, #ids_scores, 2 do
    local id = ids_scores[i]
    redis.call('ZREM', zset, id)
    local payload = redis.call('HGET', payloads, id)
    if payload then
      redis.call('ZADD', claimed, ARGV[3], id)
      out[#out + 1] = id
      out[#out + 1] = payload
      if known then
        out[#out + 1] = tonumber(ids_scores[i + 1])
      else
        out[#out + 1] = -1
      end
      taken = taken + 1
    else
      redis.call('ZREM', claimed, id)
    end
  end
end
for s = 0, #KEYS / 3 - 1 do
  if taken >= limit then
    break
  end
  local due, claimed, payloads = KEYS[3 * s + 1], KEYS[3 * s + 2], KEYS[3 * s + 3]
  local expired = redis.call('ZRANGEBYSCORE', claimed, '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, limit - taken)
  take(claimed, claimed, payloads, expired, false)
  if taken < limit then
    take(due, claimed, payloads, redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, limit - taken), true)
  end
end
return out
