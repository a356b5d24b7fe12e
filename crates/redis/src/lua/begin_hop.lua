-- Begins a hop in one round trip: the lifecycle, whether this hop already committed (and what
-- it handed on), the claim on running it, and the context keys it reads.
-- KEYS[1] meta, KEYS[2] ctx, KEYS[3] hops (committed hop id -> handoff JSON; '\31' .. hop id
-- -> the claim on running it, 'owner|expires_at_ms', deleted by the commit)
-- ARGV[1] hop id, ARGV[2] claim owner ('' = take no claim), ARGV[3] now ms, ARGV[4] lease ms,
-- ARGV[5] n = number of scopes, ARGV[6 .. 5+n] scope chain (innermost first), ARGV[6+n ..]
-- context keys.
-- Reply: {started_at, status, reason, completion_sent, pending} (unknown or finished: nothing
-- more) .. {handoff} (committed: nothing more) .. {held_owner, held_until} (held by another:
-- nothing more) .. {value of key 1, value of key 2, ...} (each false if absent).
local meta = redis.call('HMGET', KEYS[1], 'started_at', 'status', 'reason', 'completion_sent', 'pending')
local out = {meta[1], meta[2], meta[3], meta[4], meta[5]}
if not meta[1] or meta[2] then
  return out
end
local handed = redis.call('HGET', KEYS[3], ARGV[1])
out[6] = handed
if handed then
  return out
end
out[7] = false
out[8] = false
if ARGV[2] ~= '' then
  local field = '\31' .. ARGV[1]
  local now = tonumber(ARGV[3])
  local held = redis.call('HGET', KEYS[3], field)
  if held then
    local owner, expires = string.match(held, '^(.*)|(%d+)$')
    if owner and owner ~= ARGV[2] and tonumber(expires) > now then
      out[7] = owner
      out[8] = expires
      return out
    end
  end
  redis.call('HSET', KEYS[3], field, ARGV[2] .. '|' .. string.format('%d', now + tonumber(ARGV[4])))
end
local n = tonumber(ARGV[5])
for i = 6 + n, #ARGV do
  local found = false
  for s = 6, 5 + n do
    local v = redis.call('HGET', KEYS[2], ARGV[s] .. '\31' .. ARGV[i])
    if v then
      found = v
      break
    end
  end
  out[#out + 1] = found
end
return out
