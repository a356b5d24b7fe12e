-- Reads context keys, each from the innermost scope of the chain that has it; in mode 'hop'
-- (begin_hop) it also returns the lifecycle and reads nothing unless the execution is running.
-- KEYS[1] meta, KEYS[2] ctx, KEYS[3] hops (mode 'hop' only)
-- ARGV[1] mode ('hop:' .. hop id | 'read'), ARGV[2] n = number of scopes, ARGV[3 .. 2+n] scope
-- chain (innermost first), ARGV[3+n ..] context keys.
-- Reply: {'unknown'} | {'finished', status, has_reason, reason, completion_sent}
--      | {'committed', pending, handed-on messages} (mode 'hop': this hop already committed)
--      | {'running', key1, json1, key2, json2, ...}
local m = redis.call('HMGET', KEYS[1], 'started_at', 'status', 'reason', 'completion_sent')
if not m[1] then
  return {'unknown'}
end
if string.sub(ARGV[1], 1, 4) == 'hop:' then
  if m[2] then
    return {'finished', m[2], m[3] and 1 or 0, m[3] or '', m[4] and 1 or 0}
  end
  local handed = redis.call('HGET', KEYS[3], string.sub(ARGV[1], 5))
  if handed then
    return {'committed', tonumber(redis.call('HGET', KEYS[1], 'pending') or '0'), handed}
  end
end
local n = tonumber(ARGV[2])
local out = {'running'}
for i = 3 + n, #ARGV do
  local key = ARGV[i]
  for s = 3, 2 + n do
    local v = redis.call('HGET', KEYS[2], ARGV[s] .. '\31' .. key)
    if v then
      out[#out + 1] = key
      out[#out + 1] = v
      break
    end
  end
end
return out
