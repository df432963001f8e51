-- Put one dead letter back on its partition's outbox with a fresh attempt count; its message
-- key, or '' when the dead letter is gone (or is not the message the caller read).
-- KEYS: dead stream, outbox, sms counts, retry set, the message's status hash
-- ARGV: dead-letter id, its message key (as read before), now
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return '' end
local f = {}
local flat = found[1][2]
for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
if f.k ~= ARGV[2] then return '' end
redis.call('XADD', KEYS[2], '*', 'k', f.k, 'to', f.to, 't', f.t, 'l', f.l, 'p', f.p)
redis.call('HSET', KEYS[5], 'status', 'queued', 'attempts', 0, 'requeued_at', ARGV[3])
redis.call('ZREM', KEYS[4], f.k)
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'dead', -1)
return f.k
