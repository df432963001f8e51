-- The citizen asks for a fresh code (e.g. after a lock): new code version, the code SMS queued
-- again, a locked booking open again. At most max_per_day re-issues a booking a day, and the
-- wrong-code count (att) is kept: a booking that had 5 wrong codes locks again at the next
-- one, so re-issuing never buys more guesses than one per re-issue.
-- KEYS: appointment, its session, its centre, outbox, sms counts
-- ARGV: ref, mobile, today, expected_version, new_check, lang, reissuable_states(csv),
--       max_per_day, key_id (of the key the new check was made with), session id (as read)
local appt_key, session_key, centre_key, outbox, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ref, mobile, today, expected, check = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local lang, reissuable, max_per_day, key_id, sid = ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9], ARGV[10]

local a = fill(hgetall(appt_key), hgetall(session_key))
if a.state == 'void' or a.mobile ~= mobile or a.sid ~= sid then return {'not_found', ''} end
if not member(reissuable, a.state) then return {'state', a.state} end
if a.date < today then return {'past', a.date} end
local today_count = a.reissued_on == today and tonumber(a.reissues) or 0
if today_count >= max_per_day then return {'limit', tostring(max_per_day)} end
if a.ver ~= expected then return {'conflict', a.ver} end

local version = tostring(tonumber(a.ver) + 1)
redis.call('HSET', appt_key, 'state', 'booked', 'ver', version, 'check', check,
           'reissued_on', today, 'reissues', today_count + 1, 'k', key_id)
-- Its own text, not the booking's again: a second "booked" SMS reads as a second booking.
local centre = redis.call('HGET', centre_key, 'name')
queue_sms(outbox, counts, 'book:' .. ref .. ':' .. version, mobile, 'sms.code.new', lang,
          {name = a.name, centre = centre or a.centre, date = a.date, time = a.time,
           ref = ref, ver = tonumber(version), kid = key_id})
return {'ok', version}
