-- Adds a version of a named workflow unless the latest version has the same hash.
-- KEYS[1] ids (zset, every workflow id, score 0 so it orders by id)
-- KEYS[2] versions of this workflow (hash version -> JSON {"hash","created_at"})
-- ARGV[1] workflow id, ARGV[2] content hash, ARGV[3] created_at (RFC 3339)
-- Returns {version, added (1|0), entry JSON}.
local n = redis.call('HLEN', KEYS[2])
if n > 0 then
  local last = redis.call('HGET', KEYS[2], tostring(n))
  if last and cjson.decode(last).hash == ARGV[2] then
    return {n, 0, last}
  end
end
n = n + 1
local entry = cjson.encode({hash = ARGV[2], created_at = ARGV[3]})
redis.call('HSET', KEYS[2], tostring(n), entry)
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return {n, 1, entry}
