-- A vaccinator checks a beneficiary's code: right centre, today, open, code matches.
-- Wrong codes count per booking (lock at max_attempts, alert the citizen) and per vaccinator
-- number per hour (block the number for the hour at hourly_limit). A booking verified joins
-- the number's waiting set (scored by when), so DOSE alone can tell whether one is waiting.
-- KEYS: appointment, vaccinator, failures(number), block(number), waiting(number), outbox,
--       sms counts
-- ARGV: prefix, vaccinator_phone, check(entered code), today, now, max_attempts, hourly_limit,
--       verifiable_states(csv), lockable_states(csv), waiting window (s)
local appt_key, vacc_key, fail_key, block_key, wait_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local outbox, counts = KEYS[6], KEYS[7]
local prefix, phone, check, today, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local max_attempts, hourly_limit = tonumber(ARGV[6]), tonumber(ARGV[7])
local verifiable, lockable, window = ARGV[8], ARGV[9], tonumber(ARGV[10])

local centre = redis.call('HGET', vacc_key, 'centre_id')
if not centre then return {'not_vaccinator', ''} end
if redis.call('EXISTS', block_key) == 1 then return {'blocked', tostring(redis.call('TTL', block_key))} end
local a = appointment(prefix, appt_key)
if not a.state then return {'not_found', ''} end
if a.centre ~= centre then return {'wrong_centre', ''} end
if a.date ~= today then return {'wrong_day', a.date} end
if a.state == 'vaccinated' then return {'already_vaccinated', ''} end
if not member(verifiable, a.state) then return {a.state, ''} end  -- cancelled, locked, missed

local ref = string.sub(appt_key, #prefix + 6)
if a.check == check then
  if a.state ~= 'verified' then
    redis.call('HINCRBY', prefix .. 'day:' .. a.centre .. ':' .. a.date, 'verified', 1)
  end
  redis.call('HSET', appt_key, 'state', 'verified', 'att', '0', 'verified_at', now,
             'verified_by', phone, 'verified_on', today)
  redis.call('ZREMRANGEBYSCORE', wait_key, '-inf', tonumber(now) - window)
  redis.call('ZADD', wait_key, now, ref)
  redis.call('EXPIRE', wait_key, window)
  return {'ok', cjson.encode({name = a.name, by = a.by, dose = a.dose, time = a.time})}
end

-- Wrong code: count it against the booking and against the number.
local fails = redis.call('INCR', fail_key)
if fails == 1 then redis.call('EXPIRE', fail_key, 3600) end
if fails >= hourly_limit then redis.call('SET', block_key, '1', 'EX', 3600) end
local attempts = redis.call('HINCRBY', appt_key, 'att', 1)
if attempts >= max_attempts and member(lockable, a.state) then
  redis.call('HSET', appt_key, 'state', 'locked', 'locked_at', now)
  if a.state == 'verified' then  -- a locked booking no longer counts as verified today
    redis.call('HINCRBY', prefix .. 'day:' .. a.centre .. ':' .. a.date, 'verified', -1)
  end
  queue_sms(outbox, counts, 'lock:' .. ref .. ':' .. a.ver, a.mobile, 'sms.locked', a.lang or 'en',
            {name = a.name, ref = ref})
  return {'locked', '0'}
end
return {'wrong_code', tostring(max_attempts - attempts)}
