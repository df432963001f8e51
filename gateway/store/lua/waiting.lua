-- Read-only: the bookings a vaccinator number verified since `since` and has not dosed yet
-- (still verified, by this number, today), oldest first, as JSON [{ref, name, by}].
-- KEYS: waiting(number)
-- ARGV: appointment template, vaccinator_phone, today, since (epoch s)
local appt_t, phone, today, since = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local out = {}
for _, ref in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf')) do
  local a = redis.call('HMGET', string.format(appt_t, ref), 'state', 'verified_by', 'verified_on',
                       'name', 'by')
  if a[1] == 'verified' and a[2] == phone and a[3] == today then
    out[#out + 1] = {ref = ref, name = a[4], by = a[5]}
  end
end
if #out == 0 then return '[]' end  -- cjson writes an empty table as {}
return cjson.encode(out)
