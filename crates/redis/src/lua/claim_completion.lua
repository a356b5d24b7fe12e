-- Claims the sending of a finished execution's completion for a lease (see
-- `ExecutionStore::claim_completion`).
-- KEYS[1] meta; ARGV[1] now (ms), ARGV[2] lease (ms)
-- Reply: 'claimed' | 'held' | 'sent' | 'unknown'
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'unknown'
end
local m = redis.call('HMGET', KEYS[1], 'completion_sent', 'completion_claimed_at')
if m[1] then
  return 'sent'
end
local now = tonumber(ARGV[1])
if m[2] and now < tonumber(m[2]) + tonumber(ARGV[2]) then
  return 'held'
end
redis.call('HSET', KEYS[1], 'completion_claimed_at', ARGV[1])
return 'claimed'
