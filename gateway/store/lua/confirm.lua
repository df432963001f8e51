-- The mobile's half of a booking, last: the centre's half booked it (the person's record
-- becomes the open booking of that date) or refused it (the record it replaced comes back).
-- Anything but this person's booking in flight with this ref is left alone: 0.
-- KEYS: beneficiaries(mobile), reserved(the mobile's bucket)
-- ARGV: name key, ref, date ('' when the centre refused), mobile
local benef_key, reserved_key = KEYS[1], KEYS[2]
local name_key, ref, date, mobile = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local raw = redis.call('HGET', benef_key, name_key)
local p = raw and cjson.decode(raw)
if not p or p.r ~= ref or p.s ~= 'pending' then return 0 end
if date ~= '' then
  redis.call('HSET', benef_key, name_key,
             cjson.encode({r = ref, s = 'booked', d = date, c = p.c, sid = p.sid,
                           slot = p.slot}))
elseif p.prev then
  redis.call('HSET', benef_key, name_key, p.prev)
else
  redis.call('HDEL', benef_key, name_key)
end
redis.call('ZREM', reserved_key, mobile .. ' ' .. name_key)
return 1
