-- Built with commit_apply.lua put before it (`apply_commit`).
-- Applies one hop's effects at most once per hop id: its outputs and the token count.
-- KEYS[1] meta, KEYS[2] ctx, KEYS[3] hops (hash: committed hop id -> the messages it handed
-- on, JSON, replayed by a redelivery), KEYS[4] top
-- ARGV[1] hop id (its claim, field '\31' .. hop id of hops, is released), ARGV[2] token
-- delta (tokens_out - 1), ARGV[3] handed-on messages (JSON), ARGV[4..] (field, JSON text) pairs where field = scope .. '\31' .. key.
-- Reply: {'unknown'} | {'duplicate', pending} | {'applied', pending}
-- One call answers both "is the execution known" (-2: no meta) and "has `finish` put its TTL".
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then
  return {'unknown'}
end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[3]) == 0 then
  return {'duplicate', tonumber(redis.call('HGET', KEYS[1], 'pending') or '0')}
end
-- A commit after `finish` (an on_failure node, a straggler) must not leave keys without TTL.
return {'applied', apply_commit(ttl)}
