-- The centre calls off a session (cancel-session): it is marked cancelled and every slot's
-- capacity becomes 0, so nobody books it again (upsert_session keeps it so); then each open
-- booking among `refs` is moved to the target session of the same centre when one is given
-- and has room for it (a slot, the same one first, whose end has not come, and the person's
-- age within its limits), else cancelled by the centre (state cancelled, cancelled_by =
-- centre). Each told once, in their language, in the same step: a booking no longer open or
-- no longer on this session is left alone, so a repeated command tells nobody twice. The
-- bookings of a session come in batches (the session's bookings set lists them).
-- KEYS: session, target session (the session itself when none), days(centre), open
--       slots(centre), centre, open bookings by day (the bucket's), the session's bookings,
--       the target's bookings, outbox, sms counts, then each appointment
-- ARGV: session id, target id ('' when none), reason, today, now, hm (local HH:MM),
--       centre_cancel states (csv), reschedule states (csv), centre id, then each ref
-- Returns {'ok', JSON [[ref, mobile, name, 'cancelled'|state, date, sid, slot], …]} or a
-- refusal before any write: {'no_session' | 'past' | 'no_target' | 'target_past', date}.
local session_key, target_key, days_key, open_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local centre_key, by_day, sbook, tbook = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local outbox, counts = KEYS[9], KEYS[10]
local sid, tid, reason, today, now, hm = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local cancellable, movable, centre_id = ARGV[7], ARGV[8], ARGV[9]

local s = hgetall(session_key)
if not s.date or s.centre_id ~= centre_id then return {'no_session', ''} end
if s.date < today then return {'past', s.date} end
local t = nil
if tid ~= '' then
  t = hgetall(target_key)
  if not t.date or t.centre_id ~= centre_id or t.id == sid or t.cancelled_at then
    return {'no_target', t.date or ''}
  end
  if t.date < today then return {'target_past', t.date} end
end

-- Close the session: nobody books it again.
if not s.cancelled_at then
  redis.call('HSET', session_key, 'cancelled_at', now, 'cancel_reason', reason)
end
local i = 0
while s['cap:' .. i] do
  redis.call('HSET', session_key, 'cap:' .. i, 0)
  s['cap:' .. i] = '0'
  i = i + 1
end

local centre_name = redis.call('HGET', centre_key, 'name') or centre_id
local t_times = t and cjson.decode(t.slots) or {}

-- The target's slot for a booking of slot `slot` by someone born `by`: nil when none fits.
local function place(slot, by)
  local age = tonumber(string.sub(t.date, 1, 4)) - tonumber(by)
  if t.min_age ~= '' and age < tonumber(t.min_age) then return nil end
  if t.max_age ~= '' and age > tonumber(t.max_age) then return nil end
  local order = {tonumber(slot)}
  for j = 0, #t_times - 1 do order[#order + 1] = j end
  for _, j in ipairs(order) do
    local cap, time = tonumber(t['cap:' .. j] or '0'), t_times[j + 1]
    if time and tonumber(t['booked:' .. j] or '0') < cap and not slot_over(t.date, time, today, hm) then
      return j
    end
  end
  return nil
end

local done = {}
for k = 11, #KEYS do
  local ref, appt_key = ARGV[k - 1], KEYS[k]
  local a = fill(hgetall(appt_key), s)
  if a.sid == sid and a.centre == centre_id and member(cancellable, a.state) then
    local to = t and member(movable, a.state) and place(a.slot, a.by)
    s['booked:' .. a.slot] = redis.call('HINCRBY', session_key, 'booked:' .. a.slot, -1)
    redis.call('HINCRBY', days_key, a.date .. ':booked', -1)
    if a.state == 'verified' then redis.call('HINCRBY', days_key, a.date .. ':verified', -1) end
    redis.call('SREM', sbook, ref)
    local lang = a.lang or 'en'
    if to then
      local state = a.state == 'locked' and 'locked' or 'booked'
      t['booked:' .. to] = redis.call('HINCRBY', target_key, 'booked:' .. to, 1)
      redis.call('HSET', appt_key, 'sid', t.id, 'date', t.date, 'slot', to, 'state', state,
                 'moved_at', now, 'moved_from', sid)
      redis.call('HINCRBY', days_key, t.date .. ':booked', 1)
      redis.call('ZADD', by_day, day_score(t.date), ref)
      redis.call('SADD', tbook, ref)
      queue_sms(outbox, counts, 'moved:' .. ref .. ':' .. t.id, a.mobile, 'sms.centre_moved', lang,
                {name = a.name, centre = centre_name, date = t.date, time = t_times[to + 1],
                 reason = reason, ref = ref})
      done[#done + 1] = {ref, a.mobile, a.name, state, t.date, t.id, tostring(to)}
    else
      redis.call('HSET', appt_key, 'state', 'cancelled', 'cancelled_at', now,
                 'cancelled_by', 'centre')
      redis.call('ZREM', by_day, ref)
      queue_sms(outbox, counts, 'closed:' .. ref, a.mobile, 'sms.centre_cancelled', lang,
                {name = a.name, centre = centre_name, date = a.date, reason = reason, ref = ref})
      done[#done + 1] = {ref, a.mobile, a.name, 'cancelled', a.date, sid, a.slot}
    end
  end
end
reindex(open_key, s)
if t then reindex(open_key, t) end
return {'ok', cjson.encode(done)}
