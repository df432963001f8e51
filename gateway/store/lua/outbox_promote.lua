-- Put retries now due back on their partition's outbox stream (those still queued). The worker
-- read which are due; each is checked again here, so a retry another worker promoted, or an
-- operator requeued, meanwhile is left alone.
-- KEYS: retry set, outbox, then the status hash of each message
-- ARGV: now (epoch ms), then each message's key, in the order of KEYS
local promoted = 0
for i = 3, #KEYS do
  local k = ARGV[i - 1]
  local due = redis.call('ZSCORE', KEYS[1], k)
  if due and tonumber(due) <= tonumber(ARGV[1]) then
    local m = redis.call('HMGET', KEYS[i], 'to', 'template', 'lang', 'params', 'status')
    if m[1] and m[5] == 'queued' then
      redis.call('XADD', KEYS[2], '*', 'k', k, 'to', m[1], 't', m[2], 'l', m[3], 'p', m[4])
      promoted = promoted + 1
    end
    redis.call('ZREM', KEYS[1], k)
  end
end
return promoted
