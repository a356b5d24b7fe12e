-- Commits a hop that ran without begin_hop (a pure node that reads no context: RFC 0011, "one
-- round trip"), with begin_hop's checks, atomically: an unknown execution, a finished one, a
-- hop already committed write nothing; otherwise the commit applies exactly as commit.lua's.
-- KEYS[1] meta, KEYS[2] ctx, KEYS[3] hops, KEYS[4] top (as commit.lua)
-- ARGV as commit.lua: [1] hop id, [2] token delta (tokens_out - 1), [3] handed-on messages
-- (JSON), [4..] (field, JSON text) pairs where field = scope .. '\31' .. key.
-- Reply: {'unknown'} | {'ended', status, reason, completion_sent} (each false if absent) |
-- {'duplicate', pending, handoff} | {'applied', pending}
local meta = redis.call('HMGET', KEYS[1], 'started_at', 'status', 'reason', 'completion_sent', 'pending')
if not meta[1] then
  return {'unknown'}
end
if meta[2] then
  -- Unlike commit.lua: a hop that never began does not write into a finished execution.
  return {'ended', meta[2], meta[3], meta[4]}
end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[3]) == 0 then
  return {'duplicate', tonumber(meta[5] or '0'), redis.call('HGET', KEYS[3], ARGV[1])}
end
-- A claim another version's worker may have taken on this hop has done its job.
redis.call('HDEL', KEYS[3], '\31' .. ARGV[1])
for i = 4, #ARGV, 2 do
  local field = ARGV[i]
  if redis.call('HSET', KEYS[2], field, ARGV[i + 1]) == 1 and string.byte(field, 1) == 31 then
    redis.call('RPUSH', KEYS[4], string.sub(field, 2))
  end
end
local pending = redis.call('HINCRBY', KEYS[1], 'pending', ARGV[2])
-- A running execution with a deadline has a TTL on its keys (start.lua): the keys this commit
-- may create (hops, top) get the same.
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  for i = 2, 4 do
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return {'applied', pending}
