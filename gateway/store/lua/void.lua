-- Settle a booking a crash left in flight, in the centre's bucket: the appointment's state and
-- date when the centre's half ran; else a tombstone that makes a late book.lua for this ref
-- refuse ('void'), kept for `ttl` seconds, and {'void', ''}.
-- KEYS: appointment(ref)
-- ARGV: mobile, ttl
local a = redis.call('HMGET', KEYS[1], 'state', 'date')
if a[1] then return {a[1], a[2] or ''} end
redis.call('HSET', KEYS[1], 'state', 'void', 'mobile', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {'void', ''}
