-- Reads context keys, each from the innermost scope of the chain that has it.
-- KEYS[1] meta, KEYS[2] ctx
-- ARGV[1] n = number of scopes, ARGV[2 .. 1+n] scope chain (innermost first), ARGV[2+n ..]
-- context keys.
-- Reply: {'unknown'} | {'running', key1, json1, key2, json2, ...} ('running' whatever the
-- lifecycle: a finished execution's context is still readable until it expires)
if not redis.call('HGET', KEYS[1], 'started_at') then
  return {'unknown'}
end
local n = tonumber(ARGV[1])
local out = {'running'}
for i = 2 + n, #ARGV do
  local key = ARGV[i]
  for s = 2, 1 + n do
    local v = redis.call('HGET', KEYS[2], ARGV[s] .. '\31' .. key)
    if v then
      out[#out + 1] = key
      out[#out + 1] = v
      break
    end
  end
end
return out
