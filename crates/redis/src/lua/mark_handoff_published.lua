-- Marks a committed hop's handoff published: its record becomes the empty handoff '{}', so a
-- replay publishes nothing (earlier versions read it the same way). Nothing if not committed
-- (and no key is created: it would have no TTL).
-- KEYS[1] hops; ARGV[1] hop id. Reply: 1 marked, 0 not committed.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], '{}')
return 1
