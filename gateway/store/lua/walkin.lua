-- A vaccinator number's walk-ins of a day, counted in its centre's bucket so that at most
-- `limit` are made however many processes take them at once. 'take' counts one more for a
-- number still on the centre's staff ({'ok', count}), or refuses: {'limit', limit} once the
-- day's count has reached it, {'not_vaccinator', ''} for a number no longer on the staff.
-- 'give' hands one back (the booking was then refused, or was already there): {'ok', count}.
-- KEYS: days(centre), staff(centre)
-- ARGV: 'take' or 'give', field (<date>:walkins:<phone>), phone, limit
local days_key, staff_key = KEYS[1], KEYS[2]
local mode, field, phone, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local n = tonumber(redis.call('HGET', days_key, field) or '0')

if mode == 'give' then
  if n <= 1 then redis.call('HDEL', days_key, field) return {'ok', '0'} end
  return {'ok', tostring(redis.call('HINCRBY', days_key, field, -1))}
end
if redis.call('HEXISTS', staff_key, phone) == 0 then return {'not_vaccinator', ''} end
if n >= limit then return {'limit', tostring(limit)} end
return {'ok', tostring(redis.call('HINCRBY', days_key, field, 1))}
