-- Cancel a booking of this mobile before its day is over; free the slot; queue an SMS.
-- KEYS: appointment, its session, days(centre), open slots(centre), outbox, sms counts,
--       open bookings by day (the bucket's), the session's bookings
-- ARGV: ref, mobile, today, now, lang, cancellable_states(csv), session id (as the store read
--       it: the session key was made from it)
local appt_key, session_key, days_key, open_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local outbox, counts, by_day, sbook = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local ref, mobile, today, now, lang = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cancellable, sid = ARGV[6], ARGV[7]

local s = hgetall(session_key)
local a = fill(hgetall(appt_key), s)
if a.state == 'void' or a.mobile ~= mobile or a.sid ~= sid then return {'not_found', ''} end
if not member(cancellable, a.state) then return {'state', a.state} end
if a.date < today then return {'past', a.date} end

redis.call('HSET', appt_key, 'state', 'cancelled', 'cancelled_at', now)
s['booked:' .. a.slot] = redis.call('HINCRBY', session_key, 'booked:' .. a.slot, -1)
redis.call('HINCRBY', days_key, a.date .. ':booked', -1)
if a.state == 'verified' then redis.call('HINCRBY', days_key, a.date .. ':verified', -1) end
reindex(open_key, s)
redis.call('ZREM', by_day, ref)
redis.call('SREM', sbook, ref)
queue_sms(outbox, counts, 'cancel:' .. ref, mobile, 'sms.cancelled', lang,
          {name = a.name, date = a.date, time = a.time, ref = ref})
return {'ok', a.name}
