-- Gives the sending of a finished execution's completion to one sender for good (see
-- `CompletionLedger::adopt_completion`).
-- KEYS[1] meta; ARGV[1] sender
-- Reply: 'adopted' | 'again' | 'another' | 'sent' | 'unknown'
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'unknown'
end
local m = redis.call('HMGET', KEYS[1], 'status', 'completion_sent', 'completion_sender')
if not m[1] then
  return 'unknown'
end
if m[2] then
  return 'sent'
end
if not m[3] then
  redis.call('HSET', KEYS[1], 'completion_sender', ARGV[1])
  return 'adopted'
end
if m[3] == ARGV[1] then
  return 'again'
end
return 'another'
