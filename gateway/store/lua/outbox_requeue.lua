-- Put one dead letter back on the outbox with a fresh attempt count; its message key, or ''
-- when the dead letter is gone.
-- KEYS: dead stream, outbox, sms counts, retry set
-- ARGV: dead-letter id, message template, now
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return '' end
local f = {}
local flat = found[1][2]
for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
redis.call('XADD', KEYS[2], '*', 'k', f.k, 'to', f.to, 't', f.t, 'l', f.l, 'p', f.p)
local msg = string.format(ARGV[2], f.k)
redis.call('HSET', msg, 'status', 'queued', 'attempts', 0, 'requeued_at', ARGV[3])
redis.call('ZREM', KEYS[4], f.k)
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'dead', -1)
return f.k
