-- Built with commit_apply.lua put before it (`apply_commit`).
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
-- A running execution with a deadline has a TTL on its keys (start.lua): the keys this commit
-- may create (hops, top) get the same.
return {'applied', apply_commit(redis.call('PTTL', KEYS[1]))}
