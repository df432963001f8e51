-- Cancel a booking of this mobile before its day is over; free the slot; queue an SMS.
-- KEYS: appointment, outbox, sms counts
-- ARGV: session template, day template, ref, mobile, today, now, lang, cancellable_states(csv)
local appt_key, outbox, counts = KEYS[1], KEYS[2], KEYS[3]
local session_t, day_t, ref = ARGV[1], ARGV[2], ARGV[3]
local mobile, today, now, lang, cancellable = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]

local a = appointment(session_t, appt_key)
if not a.state or a.mobile ~= mobile then return {'not_found', ''} end
if not member(cancellable, a.state) then return {'state', a.state} end
if a.date < today then return {'past', a.date} end

redis.call('HSET', appt_key, 'state', 'cancelled', 'cancelled_at', now)
redis.call('HINCRBY', string.format(session_t, a.sid), 'booked:' .. a.slot, -1)
local day = string.format(day_t, a.centre, a.date)
redis.call('HINCRBY', day, 'booked', -1)
if a.state == 'verified' then redis.call('HINCRBY', day, 'verified', -1) end
queue_sms(outbox, counts, 'cancel:' .. ref, mobile, 'sms.cancelled', lang,
          {name = a.name, date = a.date, time = a.time, ref = ref})
return {'ok', ref}
