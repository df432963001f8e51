-- The mobile's half of a booking, first: hold a place for this person on this mobile while
-- the centre's half (book.lua) runs in the centre's bucket. At most max_beneficiaries people
-- hold places on a mobile (an open booking whose day is not over, a dose, or a booking in
-- flight), and a person has one open booking: asking again for the one held (same session
-- and slot) is {'replay', ref}; another is {'already_booked', ref}. The same booking in flight
-- right now is joined ({'joined', its ref}: book.lua is idempotent by ref), another is
-- {'busy', ref}. A record the store must settle first (a booking in flight past its time,
-- an open booking whose day is over) gets {'check', JSON [refs]}: settle them, ask again.
-- A person's record (beneficiaries hash, field = name key) is JSON {r = ref, s = state,
-- d = date, c = centre, sid, slot}; while in flight s = 'pending', u = settle-by time, prev = the record
-- it replaces, and the reserved set holds "mobile name-key" scored by u.
-- KEYS: beneficiaries(mobile), reserved(the mobile's bucket)
-- ARGV: name key, ref, session id, slot, today, now, settle-by, max beneficiaries, mobile,
--       open states (csv), centre id
local benef_key, reserved_key = KEYS[1], KEYS[2]
local name_key, ref, sid, slot, today = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, settle_by, max_benef = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local mobile, open_states, centre = ARGV[9], ARGV[10], ARGV[11]

local people = redis.call('HGETALL', benef_key)
local held, mine, mine_raw, unsettled = 0, nil, nil, {}
for i = 1, #people, 2 do
  local p = cjson.decode(people[i + 1])
  local holds = false
  if p.s == 'pending' then
    if p.u < now then unsettled[#unsettled + 1] = p.r else holds = true end
  elseif p.s == 'vaccinated' then
    holds = true
  elseif member(open_states, p.s) then
    if p.d >= today then holds = true else unsettled[#unsettled + 1] = p.r end
  end
  if holds then held = held + 1 end
  if people[i] == name_key then mine, mine_raw = p, people[i + 1] end
  if people[i] == name_key and not holds then mine = nil end
end
if #unsettled > 0 then return {'check', cjson.encode(unsettled)} end
if mine then
  if mine.s == 'pending' then  -- the same request twice at once (a repeated hop) joins it
    if mine.sid == sid and tostring(mine.slot) == slot then return {'joined', mine.r} end
    return {'busy', mine.r}
  end
  if mine.s ~= 'vaccinated' then
    if mine.sid == sid and tostring(mine.slot) == slot then return {'replay', mine.r} end
    return {'already_booked', mine.r}
  end
elseif held >= max_benef then
  return {'too_many', tostring(max_benef)}
end

redis.call('HSET', benef_key, name_key, cjson.encode(
  {r = ref, s = 'pending', c = centre, sid = sid, slot = slot, u = settle_by,
   prev = mine_raw}))
redis.call('ZADD', reserved_key, settle_by, mobile .. ' ' .. name_key)
return {'ok', ref}
