-- Record the dose after a VERIFY by this centre today; write the certificate; queue the final
-- confirmation in the citizen's language. A repeat is a no-op that answers "already recorded".
-- Answers who was dosed (JSON {name, by, cert}) so the vaccinator sees it is the right person.
-- A refusal counts against the number as in verify.lua ("already recorded" is not one: it
-- answers a repeat with what was done).
-- KEYS: appointment, vaccinator, failures(number), waiting(number), outbox, sms counts
-- ARGV: session, day and centre templates, ref, vaccinator_phone, today, now, batch,
--       certificate_id, fail_limit, fail_window
local appt_key, vacc_key, fail_key, wait_key, outbox, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local session_t, day_t, centre_t, ref = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local phone, today, now, batch, cert = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9]
local fail_limit, fail_window = tonumber(ARGV[10]), tonumber(ARGV[11])

local a, failed, refusal = vaccinator_booking(vacc_key, fail_key, now, fail_window, fail_limit,
                                             session_t, appt_key)
if refusal then return refusal end
if a.state == 'vaccinated' then return {'already_recorded', a.cert} end
if a.date ~= today then return failed({'wrong_day', a.date}) end
if a.state ~= 'verified' or a.verified_on ~= today then
  return failed({'not_verified', a.state})
end

redis.call('HSET', appt_key, 'state', 'vaccinated', 'batch', batch, 'cert', cert,
           'vaccinated_at', now, 'vaccinated_by', phone)
redis.call('HINCRBY', string.format(day_t, a.centre, a.date), 'vaccinated', 1)
redis.call('ZREM', wait_key, ref)
local centre_name = redis.call('HGET', string.format(centre_t, a.centre), 'name') or a.centre
queue_sms(outbox, counts, 'dose:' .. ref, a.mobile, 'sms.vaccinated', a.lang or 'en',
          {name = a.name, vaccine = a.vaccine, dose = a.dose, centre = centre_name,
           date = a.date, cert = cert, ref = ref})
return {'ok', cjson.encode({name = a.name, by = a.by, cert = cert})}
