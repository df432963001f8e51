-- Read-only: centres of a pincode (or all centres) with their sessions from `first` to `last`
-- (yyyymmdd) and each slot's open capacity, as JSON, in one round trip. A slot whose end has
-- come (see slot_over) has none open.
-- KEYS: the set of centre ids to look at
-- ARGV: centre, centre sessions and session templates, first, last, today (YYYY-MM-DD),
--       hm (local HH:MM)
local centre_t, csessions_t, session_t = ARGV[1], ARGV[2], ARGV[3]
local first, last, today, hm = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local out = {}
for _, cid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local c = hgetall(string.format(centre_t, cid))
  local sessions = {}
  for _, sid in ipairs(redis.call('ZRANGEBYSCORE', string.format(csessions_t, cid), first, last)) do
    local s = hgetall(string.format(session_t, sid))
    local slots = {}
    for i, time in ipairs(cjson.decode(s.slots)) do
      local cap = tonumber(s['cap:' .. (i - 1)] or '0')
      local booked = tonumber(s['booked:' .. (i - 1)] or '0')
      local open = slot_over(s.date, time, today, hm) and 0 or cap - booked
      slots[i] = {time = time, open = open, capacity = cap}
    end
    sessions[#sessions + 1] = {id = sid, date = s.date, vaccine = s.vaccine, min_age = s.min_age,
                               max_age = s.max_age, slots = slots}
  end
  out[#out + 1] = {id = cid, name = c.name, district = c.district, pincode = c.pincode,
                   address = c.address, sessions = sessions}
end
return cjson.encode(out)
