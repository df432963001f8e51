-- Shared by every TikaLine script (prepended by gateway/scripts.py).
-- Rule for all scripts: validate everything first, return a refusal before the first write.

local function member(list_csv, value)
  for item in string.gmatch(list_csv, '[^,]+') do
    if item == value then return true end
  end
  return false
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- Queue one outbound SMS. Its text is rendered by the sender from template + params, so no
-- security code is ever written to Redis; the message key lets a retry be deduplicated.
local function queue_sms(outbox, counts, message_key, to, template, lang, params)
  redis.call('XADD', outbox, '*', 'k', message_key, 'to', to, 't', template, 'l', lang,
             'p', cjson.encode(params))
  redis.call('HINCRBY', counts, 'queued', 1)
end
