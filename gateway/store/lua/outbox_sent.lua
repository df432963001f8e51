-- Record sends and acknowledge their entries, many at once. A sent message keeps no text
-- fields, nor attempt_at (sent_at says when).
-- KEYS: outbox, sms counts, then per message: its status hash, its provider-id key
-- ARGV: group, status ttl, provider-id ttl, then five per message: entry id, provider id,
--       sent at, message key, detail
local drop = {to = true, template = true, lang = true, params = true,
              next_attempt_at = true, attempt_at = true}
local ids = {}
for i = 3, #KEYS, 2 do
  local a = 4 + (i - 3) / 2 * 5
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
             'sent_at', ARGV[a + 2], 'detail', ARGV[a + 4])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
  if ARGV[a + 1] ~= '' then redis.call('SET', KEYS[i + 1], ARGV[a + 3], 'EX', ARGV[3]) end
  ids[#ids + 1] = ARGV[a]
end
-- Counted by what this call acknowledges, so a write retried after a lost reply counts once.
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
if acked > 0 then redis.call('HINCRBY', KEYS[2], 'sent', acked) end
return acked
