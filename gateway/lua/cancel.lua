-- Cancel a booking of this mobile before its day is over; free the slot; queue an SMS.
-- KEYS: appointment, outbox, sms counts
-- ARGV: prefix, mobile, today, now, lang, cancellable_states(csv)
local appt_key, outbox, counts = KEYS[1], KEYS[2], KEYS[3]
local prefix, mobile, today, now, lang, cancellable = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

local a = appointment(prefix, appt_key)
if not a.state or a.mobile ~= mobile then return {'not_found', ''} end
if not member(cancellable, a.state) then return {'state', a.state} end
if a.date < today then return {'past', a.date} end

redis.call('HSET', appt_key, 'state', 'cancelled', 'cancelled_at', now)
redis.call('HINCRBY', prefix .. 'session:' .. a.sid, 'booked:' .. a.slot, -1)
local day = prefix .. 'day:' .. a.centre .. ':' .. a.date
redis.call('HINCRBY', day, 'booked', -1)
if a.state == 'verified' then redis.call('HINCRBY', day, 'verified', -1) end
local ref = string.sub(appt_key, #prefix + 6)
queue_sms(outbox, counts, 'cancel:' .. ref, mobile, 'sms.cancelled', lang,
          {name = a.name, date = a.date, time = a.time, ref = ref})
return {'ok', ref}
