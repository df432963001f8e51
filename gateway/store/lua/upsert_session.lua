-- Load or update one session, refusing to cut any slot's capacity below what is booked. A
-- session the centre called off (close_session.lua) is left as it is: {'ok', 'cancelled'}.
-- KEYS: session, centre sessions index, open slots(centre)
-- ARGV: id, centre_id, date, score(yyyymmdd), vaccine, min_age, max_age, slots_json, cap0, cap1, ...
local session_key, index_key, open_key = KEYS[1], KEYS[2], KEYS[3]
local id, centre_id, date, score = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local old = hgetall(session_key)
local ncaps = #ARGV - 8
if old.cancelled_at then return {'ok', 'cancelled'} end
if old.date then
  if old.centre_id ~= centre_id or old.date ~= date then return {'moved', old.centre_id .. ' ' .. old.date} end
  local i = 0
  while old['cap:' .. i] do
    local booked = tonumber(old['booked:' .. i] or '0')
    local cap = i < ncaps and tonumber(ARGV[9 + i]) or 0
    if cap < booked then return {'below_booked', i .. ':' .. booked} end
    i = i + 1
  end
end
redis.call('HSET', session_key, 'id', id, 'centre_id', centre_id, 'date', date, 'vaccine', ARGV[5],
           'min_age', ARGV[6], 'max_age', ARGV[7], 'slots', ARGV[8])
for i = 0, ncaps - 1 do
  redis.call('HSET', session_key, 'cap:' .. i, ARGV[9 + i])
  redis.call('HSETNX', session_key, 'booked:' .. i, 0)
end
local i = ncaps
while old['cap:' .. i] do
  redis.call('HDEL', session_key, 'cap:' .. i, 'booked:' .. i)
  i = i + 1
end
redis.call('ZADD', index_key, score, id)
reindex(open_key, hgetall(session_key))
return {'ok', old.date and 'updated' or 'created'}
