-- Record sends and acknowledge their entries, many of one partition at once. A sent message
-- keeps no text fields, nor attempt_at (sent_at says when). The provider id → message lookup
-- lives in another partition (the provider id's), so the worker writes it after this script.
-- KEYS: outbox, sms counts, then each message's status hash
-- ARGV: group, status ttl, then four per message: entry id, provider id, sent at, detail
local drop = {to = true, template = true, lang = true, params = true,
              next_attempt_at = true, attempt_at = true}
local ids = {}
for i = 3, #KEYS do
  local a = 3 + (i - 3) * 4
  if redis.call('HEXISTS', KEYS[i], 'params') == 1 then
    -- Retried or requeued, so the params once made it a hashtable, and Redis never turns a
    -- hashtable back into a listpack: write it afresh, without the text's fields.
    local all, kept = redis.call('HGETALL', KEYS[i]), {}
    for j = 1, #all, 2 do
      if not drop[all[j]] then kept[#kept + 1] = all[j]; kept[#kept + 1] = all[j + 1] end
    end
    redis.call('DEL', KEYS[i])
    if #kept > 0 then redis.call('HSET', KEYS[i], unpack(kept)) end
  else
    redis.call('HDEL', KEYS[i], 'next_attempt_at', 'attempt_at')
  end
  redis.call('HSET', KEYS[i], 'status', 'sent', 'provider_id', ARGV[a + 1],
             'sent_at', ARGV[a + 2], 'detail', ARGV[a + 3])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
  ids[#ids + 1] = ARGV[a]
end
-- Counted by what this call acknowledges, so a write retried after a lost reply counts once.
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
if acked > 0 then redis.call('HINCRBY', KEYS[2], 'sent', acked) end
return acked
