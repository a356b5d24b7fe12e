-- The top-level context (in insertion order) and the start time.
-- KEYS[1] meta, KEYS[2] ctx, KEYS[3] top
-- Reply: {} (unknown) | {started_at, key1, json1, key2, json2, ...}
local started = redis.call('HGET', KEYS[1], 'started_at')
if not started then
  return {}
end
local out = {started}
for _, key in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  local v = redis.call('HGET', KEYS[2], '\31' .. key)
  if v then
    out[#out + 1] = key
    out[#out + 1] = v
  end
end
return out
