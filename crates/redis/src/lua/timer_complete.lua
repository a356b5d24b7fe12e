-- Completes a timer: forgets its claim, schedule and payload. Reply: 1 if it was pending.
-- KEYS[1] due, KEYS[2] claimed, KEYS[3] payload; ARGV[1] id
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[3], ARGV[1])
