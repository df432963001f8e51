-- Record the dose after a VERIFY by this centre today; write the certificate; queue the final
-- confirmation in the citizen's language. A repeat is a no-op that answers "already recorded".
-- Answers who was dosed (JSON {name, by, cert}) so the vaccinator sees it is the right person.
-- A refusal counts against the number as in verify.lua ("already recorded" is not one: it
-- answers a repeat with what was done).
-- The certificate ID is the first candidate whose index no other dose holds (two HMACs of
-- the ref: a clash of the first is rare, of both unheard of); the index maps it to the ref,
-- so CERT <id> finds the appointment in this same bucket.
-- KEYS (all in the vaccinator's centre's bucket): appointment, its session, staff(centre),
--       failures(number), waiting(number), days(centre), outbox, sms counts, centre,
--       open bookings by day (the bucket's), then the certificate index of each candidate
--       ID (keys.certificate)
-- ARGV: ref, vaccinator_phone, today, now, batch, candidate IDs (comma-separated),
--       fail_limit, fail_window, the vaccinator's centre, '1' when the booking is at another
--       centre
local appt_key, session_key, staff_key, fail_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local wait_key, days_key, outbox, counts, centre_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local by_day = KEYS[10]
local ref, phone, today, now, batch = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local candidates, fail_limit, fail_window = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local centre, elsewhere = ARGV[9], ARGV[10]

local a, failed, refusal = vaccinator_booking(staff_key, phone, centre, fail_key, now,
                                             fail_window, fail_limit, session_key, appt_key,
                                             elsewhere)
if refusal then return refusal end
if a.state == 'vaccinated' then return {'already_recorded', a.cert} end
if a.date ~= today then return failed({'wrong_day', a.date}) end
if a.state ~= 'verified' or a.verified_on ~= today then
  return failed({'not_verified', a.state})
end

local cert, index_key
local i = 0
for candidate in string.gmatch(candidates, '[^,]+') do
  i = i + 1
  local holder = redis.call('GET', KEYS[10 + i])
  if not holder or holder == ref then
    cert, index_key = candidate, KEYS[10 + i]
    break
  end
end
if not cert then return {'error', 'certificate'} end

redis.call('SET', index_key, ref)
redis.call('HSET', appt_key, 'state', 'vaccinated', 'batch', batch, 'cert', cert,
           'vaccinated_at', now, 'vaccinated_by', phone)
redis.call('HINCRBY', days_key, a.date .. ':vaccinated', 1)
redis.call('ZREM', wait_key, ref)
redis.call('ZREM', by_day, ref)
local centre_name = redis.call('HGET', centre_key, 'name') or a.centre
queue_sms(outbox, counts, 'dose:' .. ref, a.mobile, 'sms.vaccinated', a.lang or 'en',
          {name = a.name, vaccine = a.vaccine, dose = a.dose, centre = centre_name,
           date = a.date, cert = cert, ref = ref})
return {'ok', cjson.encode({name = a.name, by = a.by, cert = cert, mobile = a.mobile})}
