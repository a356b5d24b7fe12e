-- Reads exact context fields (scope .. '\31' .. key).
-- KEYS[1] meta, KEYS[2] ctx; ARGV fields.
-- Reply: {'unknown'} | {'ok', json-or-nil, ...} (one entry per field, in order)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'unknown'}
end
local out = {'ok'}
for i = 1, #ARGV do
  out[#out + 1] = redis.call('HGET', KEYS[2], ARGV[i])
end
return out
