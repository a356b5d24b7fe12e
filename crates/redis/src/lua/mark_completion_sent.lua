-- Marks the completion as emitted. Reply: 1 first caller, 0 already marked, -1 unknown.
-- KEYS[1] meta
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
return redis.call('HSETNX', KEYS[1], 'completion_sent', '1')
