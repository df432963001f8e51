-- Book a slot: capacity, age limits, one open booking per beneficiary, beneficiaries per mobile,
-- then write the appointment, its indexes, take the slot and queue the code SMS, atomically.
-- Idempotent by its natural key: the same beneficiary asking again for the open booking it
-- already holds (same session and slot) gets {'replay', ref}; nothing is written twice.
-- A full slot gets {'full', the session's slots still open}; a slot whose end has come (today
-- at `hm`, local time) gets {'passed', the same}, though a replay of a booking already made
-- is still answered as one.
-- KEYS: session, beneficiaries(mobile), outbox, sms counts, appointment(ref)
-- ARGV: appointment template, ref, mobile, name, name_key, birth_year, slot, today, now,
--       check, lang, max_beneficiaries, open_states(csv), hm (the turn's local time, HH:MM),
--       counted_states(csv), key_id (of the key the check was made with), day template,
--       centre template
local session_key, benef_key, outbox, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local appt_key = KEYS[5]
local appt_t, ref, mobile, name, name_key = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local birth_year, slot, today, now, check = tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local lang, max_benef, open_states, hm = ARGV[11], tonumber(ARGV[12]), ARGV[13], ARGV[14]
local counted_states, key_id, day_t, centre_t = ARGV[15], ARGV[16], ARGV[17], ARGV[18]

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

local s = hgetall(session_key)
if not s.date then return {'no_session', ''} end
if s.date < today then return {'past', s.date} end
local cap = tonumber(s['cap:' .. slot])
if not cap then return {'no_slot', slot} end
local age = tonumber(string.sub(s.date, 1, 4)) - birth_year
if s.min_age ~= '' and age < tonumber(s.min_age) then return {'too_young', s.min_age} end
if s.max_age ~= '' and age > tonumber(s.max_age) then return {'too_old', s.max_age} end

-- The people holding this mobile's places: an open booking whose day is not over, or a dose.
local held, holds_one = 0, false
local people = redis.call('HGETALL', benef_key)  -- name key -> that person's latest ref
for i = 1, #people, 2 do
  local a = redis.call('HMGET', string.format(appt_t, people[i + 1]), 'state', 'date')
  if a[1] and member(counted_states, a[1]) and (a[1] == 'vaccinated' or a[2] >= today) then
    held = held + 1
    if people[i] == name_key then holds_one = true end
  end
end
if not holds_one and held >= max_benef then return {'too_many', tostring(max_benef)} end

local known = redis.call('HGET', benef_key, name_key)  -- the beneficiary's latest ref
local stale_ref = nil
if known then
  local a = redis.call('HMGET', string.format(appt_t, known), 'state', 'date', 'sid', 'slot')
  if a[1] and member(open_states, a[1]) then
    if a[2] >= today then
      if a[3] == s.id and a[4] == slot then return {'replay', known} end
      return {'already_booked', known}
    end
    stale_ref = known  -- its day is over: it was missed, and no longer holds the beneficiary
  end
end
local times = cjson.decode(s.slots)
local time = times[tonumber(slot) + 1]
if slot_over(s.date, time, today, hm) then return {'passed', open_slots(s)} end
if tonumber(s['booked:' .. slot] or '0') >= cap then return {'full', open_slots(s)} end
if redis.call('EXISTS', appt_key) == 1 then return {'ref_taken', ref} end

-- All checks passed: write.
if stale_ref then redis.call('HSET', string.format(appt_t, stale_ref), 'state', 'missed') end
redis.call('HINCRBY', session_key, 'booked:' .. slot, 1)
redis.call('HSET', appt_key, 'mobile', mobile, 'name', name, 'by', birth_year, 'sid', s.id,
           'centre', s.centre_id, 'date', s.date, 'slot', slot, 'state', 'booked', 'ver', '0',
           'check', check, 'at', now, 'k', key_id)
-- Absent fields have defaults (att 0, lang en, dose 1; time and vaccine come from the
-- session, see appointment() in common.lua): every byte counts a hundred thousand times.
if lang ~= 'en' then redis.call('HSET', appt_key, 'lang', lang) end
redis.call('HSET', benef_key, name_key, ref)
redis.call('HINCRBY', string.format(day_t, s.centre_id, s.date), 'booked', 1)
local centre = redis.call('HMGET', string.format(centre_t, s.centre_id), 'name', 'address')
queue_sms(outbox, counts, 'book:' .. ref .. ':0', mobile, 'sms.booked', lang,
          {name = name, centre = centre[1] or s.centre_id, address = centre[2] or '',
           date = s.date, time = time, ref = ref, ver = 0, kid = key_id})
return {'ok', ref}
