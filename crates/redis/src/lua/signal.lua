-- Named signals of an execution: waiters (wait nodes in `signal` mode) and buffered signals
-- that arrived before anyone waited.
-- KEYS[1] meta, KEYS[2] signals hash, KEYS[3] keys (set of dynamic keys, for the TTL)
-- ARGV[1] op: 'await' | 'deliver' | 'resumed' | 'remove'; ARGV[2] signal name;
--   await:   ARGV[3] waiter id, ARGV[4] waiter payload  -> {'buffered', data} | {'registered'}
--   deliver: ARGV[3] data JSON                           -> {'delivered', id1, p1, ...} | {'stored'}
--   resumed: ARGV[3] waiter id                           -> {'resumed', 0|1}
--   remove:  ARGV[3] waiter id                           -> {'removed', 0|1}
-- Fields: 'w\31<name>\31<id>' waiter payload, 'b\31<name>' buffered data, 't\31<name>\31<id>'
-- the buffered data waiter <id> took: a retried await of the same waiter (its hop failed after
-- taking it, before its commit) gets the same signal again instead of registering and waiting
-- for a signal that already came. 'd\31<name>\31<id>' a waiter a delivery took and has not
-- resumed yet: a delivery moves waiters there (so a timeout no longer finds them) and returns
-- them with those an earlier delivery left (it failed or died before its resumes were done),
-- so a retried delivery finishes them; `resumed` clears one once its resume is published.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'unknown'}
end
local h = KEYS[2]
redis.call('SADD', KEYS[3], h)
local ttl = redis.call('PTTL', KEYS[1])
local function touch()
  if ttl > 0 then
    redis.call('PEXPIRE', h, ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
end
local op, name = ARGV[1], ARGV[2]
if op == 'await' then
  local taken = 't\31' .. name .. '\31' .. ARGV[3]
  local again = redis.call('HGET', h, taken)
  if again then
    return {'buffered', again}
  end
  local buffered = redis.call('HGET', h, 'b\31' .. name)
  if buffered then
    redis.call('HDEL', h, 'b\31' .. name)
    redis.call('HSET', h, taken, buffered)
    touch()
    return {'buffered', buffered}
  end
  redis.call('HSET', h, 'w\31' .. name .. '\31' .. ARGV[3], ARGV[4])
  touch()
  return {'registered'}
elseif op == 'deliver' then
  local waiting = 'w\31' .. name .. '\31'
  local delivering = 'd\31' .. name .. '\31'
  local all = redis.call('HGETALL', h)
  local out = {'delivered'}
  for i = 1, #all, 2 do
    local field = all[i]
    if string.sub(field, 1, #waiting) == waiting then
      local id = string.sub(field, #waiting + 1)
      out[#out + 1] = id
      out[#out + 1] = all[i + 1]
      redis.call('HDEL', h, field)
      redis.call('HSET', h, delivering .. id, all[i + 1])
    elseif string.sub(field, 1, #delivering) == delivering then
      out[#out + 1] = string.sub(field, #delivering + 1)
      out[#out + 1] = all[i + 1]
    end
  end
  if #out == 1 then
    redis.call('HSET', h, 'b\31' .. name, ARGV[3])
    touch()
    return {'stored'}
  end
  touch()
  return out
elseif op == 'resumed' then
  return {'resumed', redis.call('HDEL', h, 'd\31' .. name .. '\31' .. ARGV[3])}
elseif op == 'remove' then
  return {'removed', redis.call('HDEL', h, 'w\31' .. name .. '\31' .. ARGV[3])}
end
return redis.error_reply('unknown signal op ' .. tostring(op))
