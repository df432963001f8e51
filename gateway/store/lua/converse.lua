-- Commit one conversation turn at once: the replay guard, the conversation state, the resume
-- pointer, the language and the reply SMS. Writes nothing and returns 0 when the guard is
-- already there (that inbound SMS was handled) or when the conversation moved on since it was
-- read (a duplicate USSD hop raced this one); returns 1 when it wrote.
-- KEYS: guard, conversation, pointer, language, outbox, sms counts
-- ARGV: guard_ttl (0: no guard), expected_rev ('': any), conversation ('': delete, '=': keep),
--       conversation_ttl, pointer ('': delete, '=': keep), pointer_ttl, lang ('': keep),
--       then five per SMS: message key, to, template, lang, params (JSON)
local guard, conv, pointer, lang_key, outbox, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local guard_ttl, expected = tonumber(ARGV[1]), ARGV[2]

if guard_ttl > 0 and redis.call('EXISTS', guard) == 1 then return 0 end
if expected ~= '' then
  local current = redis.call('GET', conv)
  local rev = current and cjson.decode(current).rev or 0
  if tostring(rev) ~= expected then return 0 end
end

if guard_ttl > 0 then redis.call('SET', guard, '1', 'EX', guard_ttl) end
if ARGV[3] == '' then
  redis.call('DEL', conv)
elseif ARGV[3] ~= '=' then
  redis.call('SET', conv, ARGV[3], 'EX', ARGV[4])
end
if ARGV[5] == '' then
  redis.call('DEL', pointer)
elseif ARGV[5] ~= '=' then
  redis.call('SET', pointer, ARGV[5], 'EX', ARGV[6])
end
if ARGV[7] ~= '' then redis.call('SET', lang_key, ARGV[7]) end
for i = 8, #ARGV - 4, 5 do
  queue_sms(outbox, counts, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], cjson.decode(ARGV[i + 4]))
end
return 1
