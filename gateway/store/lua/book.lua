-- Book a slot, the centre's half of a booking (the mobile's half, reserve.lua, has already
-- checked the beneficiary limits and holds the person's place): capacity and age limits, then
-- write the appointment, take the slot, count the day, update the availability index and
-- queue the code SMS, atomically. Idempotent by reference: asked again for a booking it made
-- (a retry after a crash) it answers {'ok', date} and writes nothing; a reference the sweeper
-- voided (gateway/store/booking.py) gets {'void', ref}. Booked: {'ok', the session's date}.
-- A full slot gets {'full', the session's slots still open}; a slot whose end has come (today
-- at `hm`, local time) gets {'passed', the same}.
-- KEYS: session, appointment(ref), days(centre), open slots(centre), centre, outbox, sms counts,
--       open bookings by day (the bucket's), the session's bookings
-- ARGV: ref, mobile, name, birth_year, slot, today, now, check, lang, hm (the turn's local time,
--       HH:MM), key_id (of the key the check was made with), centre id
local session_key, appt_key, days_key, open_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local centre_key, outbox, counts, by_day, sbook = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local ref, mobile, name, birth_year, slot = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local today, now, check, lang, hm = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local key_id, centre_id = ARGV[11], ARGV[12]

-- The session's slots still open, as JSON [[index, time], …], for the one who just missed.
local function open_slots(s)
  local out = {}
  for i, time in ipairs(cjson.decode(s.slots)) do
    local free = tonumber(s['booked:' .. (i - 1)] or '0') < tonumber(s['cap:' .. (i - 1)] or '0')
    if free and not slot_over(s.date, time, today, hm) then
      out[#out + 1] = {i - 1, time}
    end
  end
  return #out > 0 and cjson.encode(out) or '[]'
end

local made = redis.call('HMGET', appt_key, 'state', 'mobile', 'date')
if made[1] then
  if made[2] ~= mobile then return {'ref_taken', ref} end
  if made[1] == 'void' then return {'void', ref} end
  return {'ok', made[3]}
end
local s = hgetall(session_key)
if not s.date or s.centre_id ~= centre_id then return {'no_session', ''} end
if s.date < today then return {'past', s.date} end
local cap = tonumber(s['cap:' .. slot])
if not cap then return {'no_slot', slot} end
local age = tonumber(string.sub(s.date, 1, 4)) - birth_year
if s.min_age ~= '' and age < tonumber(s.min_age) then return {'too_young', s.min_age} end
if s.max_age ~= '' and age > tonumber(s.max_age) then return {'too_old', s.max_age} end
local time = cjson.decode(s.slots)[tonumber(slot) + 1]
if slot_over(s.date, time, today, hm) then return {'passed', open_slots(s)} end
if tonumber(s['booked:' .. slot] or '0') >= cap then return {'full', open_slots(s)} end

-- All checks passed: write.
s['booked:' .. slot] = redis.call('HINCRBY', session_key, 'booked:' .. slot, 1)
redis.call('HSET', appt_key, 'mobile', mobile, 'name', name, 'by', birth_year, 'sid', s.id,
           'centre', s.centre_id, 'date', s.date, 'slot', slot, 'state', 'booked', 'ver', '0',
           'check', check, 'at', now, 'k', key_id)
-- Absent fields have defaults (att 0, lang en, dose 1; time and vaccine come from the
-- session, see fill() in common.lua): every byte counts a hundred thousand times.
if lang ~= 'en' then redis.call('HSET', appt_key, 'lang', lang) end
redis.call('HINCRBY', days_key, s.date .. ':booked', 1)
redis.call('ZADD', by_day, day_score(s.date), ref)
redis.call('SADD', sbook, ref)
reindex(open_key, s)
local centre = redis.call('HMGET', centre_key, 'name', 'address')
queue_sms(outbox, counts, 'book:' .. ref .. ':0', mobile, 'sms.booked', lang,
          {name = name, centre = centre[1] or s.centre_id, address = centre[2] or '',
           date = s.date, time = time, ref = ref, ver = 0, kid = key_id})
return {'ok', s.date}
