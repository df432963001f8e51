-- Make a message a dead letter: on the dead stream with its last error, its status 'dead',
-- kept without a TTL until an operator requeues it; its entry (if any) acknowledged.
-- KEYS: status hash, dead stream, outbox, sms counts
-- ARGV: group, entry id ('' when none), message key, to, template, lang, params, error, now,
--       short error
local m = redis.call('HMGET', KEYS[1], 'attempts')
redis.call('XADD', KEYS[2], '*', 'k', ARGV[3], 'to', ARGV[4], 't', ARGV[5], 'l', ARGV[6],
           'p', ARGV[7], 'error', ARGV[8], 'attempts', m[1] or '0', 'at', ARGV[9])
redis.call('HSET', KEYS[1], 'status', 'dead', 'last_error', ARGV[10], 'dead_at', ARGV[9],
           'to', ARGV[4], 'template', ARGV[5], 'lang', ARGV[6], 'params', ARGV[7])
redis.call('HDEL', KEYS[1], 'next_attempt_at')
redis.call('PERSIST', KEYS[1])
redis.call('HINCRBY', KEYS[4], 'dead', 1)
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[3], ARGV[2])
end
return 1
