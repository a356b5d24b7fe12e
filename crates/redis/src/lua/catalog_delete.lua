-- Removes a named workflow and its versions (the definitions, stored by hash, stay: running
-- executions are pinned to them).
-- KEYS[1] ids (zset), KEYS[2] versions (hash); ARGV[1] workflow id. Returns 1 if it existed.
local existed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return existed
