-- Put the retries now due back on the outbox stream (those still queued).
-- KEYS: retry set, outbox
-- ARGV: now (epoch ms), most to promote, message template
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, k in ipairs(due) do
  local m = redis.call('HMGET', string.format(ARGV[3], k), 'to', 'template', 'lang', 'params',
                       'status')
  if m[1] and m[5] == 'queued' then
    redis.call('XADD', KEYS[2], '*', 'k', k, 'to', m[1], 't', m[2], 'l', m[3], 'p', m[4])
  end
  redis.call('ZREM', KEYS[1], k)
end
return #due
