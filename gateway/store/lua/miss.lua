-- An open booking whose day is over becomes missed (its person on the mobile is settled by the
-- store); anything else is left as it is. Returns the state it has now.
-- KEYS: appointment
-- ARGV: open states (csv), today
local a = redis.call('HMGET', KEYS[1], 'state', 'date')
if not a[1] then return '' end
if member(ARGV[1], a[1]) and a[2] < ARGV[2] then
  redis.call('HSET', KEYS[1], 'state', 'missed')
  return 'missed'
end
return a[1]
