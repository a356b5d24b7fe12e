-- Schedules a durable timer; idempotent per id (a second schedule of a pending id is ignored).
-- KEYS[1] due (zset id -> due ms), KEYS[2] payload (hash id -> payload)
-- ARGV[1] id, ARGV[2] payload, ARGV[3] due ms. Reply: 1 scheduled, 0 already pending.
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
