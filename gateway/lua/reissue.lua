-- The citizen asks for a fresh code (e.g. after a lock): new code version, attempts reset,
-- the code SMS queued again.
-- KEYS: appointment, outbox, sms counts
-- ARGV: prefix, mobile, today, expected_version, new_check, lang, reissuable_states(csv)
local appt_key, outbox, counts = KEYS[1], KEYS[2], KEYS[3]
local prefix, mobile, today, expected, check, lang, reissuable = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

local a = appointment(prefix, appt_key)
if not a.state or a.mobile ~= mobile then return {'not_found', ''} end
if not member(reissuable, a.state) then return {'state', a.state} end
if a.date < today then return {'past', a.date} end
if a.ver ~= expected then return {'conflict', a.ver} end

local version = tostring(tonumber(a.ver) + 1)
redis.call('HSET', appt_key, 'state', 'booked', 'ver', version, 'check', check, 'att', '0')
local ref = string.sub(appt_key, #prefix + 6)
local centre_name = redis.call('HGET', prefix .. 'centre:' .. a.centre, 'name') or a.centre
queue_sms(outbox, counts, 'book:' .. ref .. ':' .. version, mobile, 'sms.booked', lang,
          {name = a.name, centre = centre_name, date = a.date, time = a.time, ref = ref, ver = tonumber(version)})
return {'ok', version}
