-- Park a failed attempt in the retry set: the text's fields go into the status hash here,
-- for outbox_promote.lua to put the message back on the stream when it is due.
-- KEYS: status hash, retry set, outbox
-- ARGV: group, entry id, message key, last error, next attempt at, due (epoch ms), to,
--       template, lang, params
redis.call('HSET', KEYS[1], 'status', 'queued', 'last_error', ARGV[4],
           'next_attempt_at', ARGV[5], 'to', ARGV[7], 'template', ARGV[8], 'lang', ARGV[9],
           'params', ARGV[10])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[3])
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
return 1
