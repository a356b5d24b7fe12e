-- What commit.lua and run_commit.lua do once a hop's HSETNX on `hops` succeeded (put before
-- each of them when its script is built): release the hop's claim, write its outputs (a new
-- top-level key is listed in `top`), add its token delta, and give the keys it may have created
-- the execution's TTL when it has one (`ttl` > 0). Returns the pending token count.
-- KEYS and ARGV as those two scripts.
local function apply_commit(ttl)
  -- The claim on running this hop (see begin_hop.lua) has done its job.
  redis.call('HDEL', KEYS[3], '\31' .. ARGV[1])
  for i = 4, #ARGV, 2 do
    local field = ARGV[i]
    if redis.call('HSET', KEYS[2], field, ARGV[i + 1]) == 1 and string.byte(field, 1) == 31 then
      redis.call('RPUSH', KEYS[4], string.sub(field, 2))
    end
  end
  local pending = redis.call('HINCRBY', KEYS[1], 'pending', ARGV[2])
  if ttl > 0 then
    for i = 2, 4 do
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
  end
  return pending
end
