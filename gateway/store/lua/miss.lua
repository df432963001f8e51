-- Open bookings of one centre whose day is over become missed: the day's count says so
-- (`<date>:missed`) and, for a day recent enough (on or after `notify_from`: catching up after
-- a long downtime sends no stale offers), the citizen is offered to book again, in the same
-- step. Each leaves the bucket's open-bookings index once it is closed; one still open and
-- not past is left as it is (the store's lazy call with one ref). Idempotent: a booking
-- already missed changes nothing and queues nothing. The person on the mobile is settled by
-- the store after it (person.lua, another bucket).
-- KEYS: open bookings by day (the bucket's), days(centre), centre, outbox, sms counts, then
--       each appointment
-- ARGV: open states (csv), today, notify_from, centre id, now, then each ref (as its key)
-- Returns five per ref: ref, its state now, mobile, name, '1' when told
local by_day, days_key, centre_key, outbox, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local open_states, today, notify_from = ARGV[1], ARGV[2], ARGV[3]
local centre_id, now = ARGV[4], ARGV[5]
local centre_name = redis.call('HGET', centre_key, 'name') or centre_id

local out = {}
for i = 6, #KEYS do
  local ref = ARGV[i]
  local a = hgetall(KEYS[i])
  local state, told = a.state or '', '0'
  if a.centre == centre_id and member(open_states, state) and a.date < today then
    state = 'missed'
    redis.call('HSET', KEYS[i], 'state', state, 'missed_at', now)
    redis.call('HINCRBY', days_key, a.date .. ':missed', 1)
    if a.date >= notify_from then
      queue_sms(outbox, counts, 'miss:' .. ref, a.mobile, 'sms.missed', a.lang or 'en',
                {name = a.name, centre = centre_name, date = a.date})
      told = '1'
    end
  end
  if not (member(open_states, state) and a.centre == centre_id) then
    redis.call('ZREM', by_day, ref)
  end
  for _, v in ipairs({ref, state, a.mobile or '', a.name or '', told}) do out[#out + 1] = v end
end
return out
