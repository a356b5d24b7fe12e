-- Reads context keys, each from the innermost scope of the chain that has it; in mode 'hop'
-- (begin_hop) it also returns the lifecycle and reads nothing unless the execution is running.
-- KEYS[1] meta, KEYS[2] ctx
-- ARGV[1] mode ('hop' | 'read'), ARGV[2] n = number of scopes, ARGV[3 .. 2+n] scope chain
-- (innermost first), ARGV[3+n ..] context keys.
-- Reply: {'unknown'} | {'finished', status, has_reason, reason, completion_sent}
--      | {'running', key1, json1, key2, json2, ...}
local m = redis.call('HMGET', KEYS[1], 'started_at', 'status', 'reason', 'completion_sent')
if not m[1] then
  return {'unknown'}
end
if ARGV[1] == 'hop' and m[2] then
  return {'finished', m[2], m[3] and 1 or 0, m[3] or '', m[4] and 1 or 0}
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
