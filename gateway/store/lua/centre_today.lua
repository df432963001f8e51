-- Read-only: a centre's name, today's counts and open capacity in one round trip, as JSON.
-- Only slots still to come count as open (slot_over in common.lua: its end time has come).
-- KEYS: centre, day(centre, today), centre sessions index
-- ARGV: session template, today as yyyymmdd, today as yyyy-mm-dd, now as HH:MM (in TIMEZONE)
local session_t, score, today, now_hm = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local counts = hgetall(KEYS[2])
local open = 0
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], score, score)) do
  local s = hgetall(string.format(session_t, sid))
  local times = cjson.decode(s.slots or '[]')
  local i = 0
  while s['cap:' .. i] do
    if not slot_over(today, times[i + 1], today, now_hm) then
      open = open + math.max(0, tonumber(s['cap:' .. i]) - tonumber(s['booked:' .. i] or '0'))
    end
    i = i + 1
  end
end
return cjson.encode({name = redis.call('HGET', KEYS[1], 'name') or '',
                     booked = tonumber(counts.booked or '0'),
                     verified = tonumber(counts.verified or '0'),
                     vaccinated = tonumber(counts.vaccinated or '0'), open = open})
