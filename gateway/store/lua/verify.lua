-- A vaccinator checks a beneficiary's code: right centre, today, open, code matches.
-- Wrong codes count against the booking (lock at max_attempts, alert the citizen); every
-- refused attempt counts against the number, which is refused while fail_limit of them fall
-- in the last fail_window seconds (the third element 'limit' marks the one that reached it).
-- A booking verified joins the number's waiting set (scored by when), so DOSE alone can tell
-- whether exactly one is waiting.
-- KEYS (all in the vaccinator's centre's bucket): appointment, its session, staff(centre),
--       failures(number), waiting(number), days(centre), outbox, sms counts
-- ARGV: ref, vaccinator_phone, checks of the entered code ("kid:check …", one per key still
--       accepted, the current key first), today, now, max_attempts, fail_limit,
--       verifiable_states(csv), lockable_states(csv), waiting window (s), fail window (s),
--       the vaccinator's centre, '1' when the booking is at another centre
local appt_key, session_key, staff_key, fail_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local wait_key, days_key, outbox, counts = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local ref, phone, check, today, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local max_attempts, fail_limit = tonumber(ARGV[6]), tonumber(ARGV[7])
local verifiable, lockable, window = ARGV[8], ARGV[9], tonumber(ARGV[10])
local fail_window, centre, elsewhere = tonumber(ARGV[11]), ARGV[12], ARGV[13]

-- The check under the key the booking's code was made with (no key id: made before key ids,
-- with the current key); nil when that key was retired, so no code matches.
local function check_for(checks, kid)
  if not kid then return string.match(checks, '^%x+:(%x+)') end
  return string.match(' ' .. checks .. ' ', ' ' .. kid .. ':(%x+) ')
end

local a, failed, refusal = vaccinator_booking(staff_key, phone, centre, fail_key, now,
                                             fail_window, fail_limit, session_key, appt_key,
                                             elsewhere)
if refusal then return refusal end
if a.date ~= today then return failed({'wrong_day', a.date}) end
if a.state == 'vaccinated' then return failed({'already_vaccinated', ''}) end
if not member(verifiable, a.state) then return failed({a.state, ''}) end  -- cancelled, locked, missed

if a.check == check_for(check, a.k) then
  if a.state ~= 'verified' then
    redis.call('HINCRBY', days_key, a.date .. ':verified', 1)
  end
  redis.call('HSET', appt_key, 'state', 'verified', 'att', '0', 'verified_at', now,
             'verified_by', phone, 'verified_on', today)
  redis.call('ZREMRANGEBYSCORE', wait_key, '-inf', now - window)
  redis.call('ZADD', wait_key, now, ref)
  redis.call('EXPIRE', wait_key, window)
  return {'ok', cjson.encode({name = a.name, by = a.by, dose = a.dose, time = a.time})}
end

-- Wrong code: count it against the booking and against the number.
local attempts = redis.call('HINCRBY', appt_key, 'att', 1)
if attempts >= max_attempts and member(lockable, a.state) then
  redis.call('HSET', appt_key, 'state', 'locked', 'locked_at', now)
  if a.state == 'verified' then  -- a locked booking no longer counts as verified today
    redis.call('HINCRBY', days_key, a.date .. ':verified', -1)
  end
  queue_sms(outbox, counts, 'lock:' .. ref .. ':' .. a.ver, a.mobile, 'sms.locked', a.lang or 'en',
            {name = a.name, ref = ref})
  return failed({'locked', '0'})
end
return failed({'wrong_code', tostring(max_attempts - attempts)})
