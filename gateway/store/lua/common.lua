-- Shared by every TikaLine script (prepended by gateway/scripts.py).
-- Rule for all scripts: validate everything first, return a refusal before the first write.
-- Keys: every key a script touches comes in KEYS, all in one bucket (gateway/store/keys.py);
-- where it depends on stored data the store reads that first and the script checks it still
-- holds. No key name is ever spelled or built in Lua.

local function member(list_csv, value)
  for item in string.gmatch(list_csv, '[^,]+') do
    if item == value then return true end
  end
  return false
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- Whether a slot ('HH:MM-HH:MM') of a session on `date` can no longer be booked at `today`
-- `hm` (local 'YYYY-MM-DD', 'HH:MM'): its day has gone, or it is today and its end has come.
-- Only booking closes then; VERIFY and DOSE stay open all the booked day (people come late).
local function slot_over(date, time, today, hm)
  if date ~= today then return date < today end
  local ends = string.match(time or '', '%-(%d%d:%d%d)$')
  return ends ~= nil and ends <= hm
end

-- A day ('YYYY-MM-DD') as the score of the open bookings' index (keys.open_by_day).
local function day_score(date)
  return tonumber((string.gsub(date, '-', '')))
end

-- Queue one outbound SMS. Its text is rendered by the sender from template + params, so no
-- security code is ever written to Redis; the message key lets a retry be deduplicated.
local function queue_sms(outbox, counts, message_key, to, template, lang, params)
  redis.call('XADD', outbox, '*', 'k', message_key, 'to', to, 't', template, 'l', lang,
             'p', cjson.encode(params))
  redis.call('HINCRBY', counts, 'queued', 1)
end

-- The time of an appointment's slot and its session's vaccine: they live once in the session
-- (a hash, `s`), not in each of its hundreds of appointments; the dose number is stored only
-- when it is not the first.
local function fill(a, s)
  if a.state then
    a.time = a.time or (s.slots and cjson.decode(s.slots)[tonumber(a.slot) + 1]) or ''
    a.vaccine = a.vaccine or s.vaccine or ''
    a.dose = a.dose or '1'
  end
  return a
end

-- The availability index (keys.open_slots): per date, the centre's sessions with each slot as
-- [time, capacity, open]. Rewrites session `s`'s element (its hash as a table, as it is now).
local function reindex(open_key, s)
  local raw = redis.call('HGET', open_key, s.date)
  local list = raw and cjson.decode(raw) or {}
  local slots = {}
  for i, time in ipairs(cjson.decode(s.slots)) do
    local cap = tonumber(s['cap:' .. (i - 1)] or '0')
    slots[i] = {time, cap, cap - tonumber(s['booked:' .. (i - 1)] or '0')}
  end
  local entry = {id = s.id, vaccine = s.vaccine, min_age = s.min_age, max_age = s.max_age,
                 slots = slots}
  local at = #list + 1
  for i, e in ipairs(list) do
    if e.id == s.id then at = i end
  end
  list[at] = entry
  redis.call('HSET', open_key, s.date, cjson.encode(list))
end

-- A vaccinator number's failed VERIFY/DOSE attempts are a sorted set of their times; the
-- number is refused while `limit` of them fall in the last `window` seconds (a rolling hour,
-- not a clock hour, so no burst across an hour's edge gets twice the tries).
-- Seconds until enough of them have left the window, or nil when the number may go on.
local function blocked_for(fail_key, now, window, limit)
  local recent = redis.call('ZRANGEBYSCORE', fail_key, '(' .. (now - window), '+inf',
                            'WITHSCORES')
  local n = #recent / 2
  if n < limit then return nil end
  return tonumber(recent[2 * (n - limit) + 2]) + window - now
end

-- Count one failed attempt; true when it is the one that reaches the limit. The member is
-- the time and the count so far, unique even for failures within the same second.
local function count_failure(fail_key, now, window, limit)
  redis.call('ZREMRANGEBYSCORE', fail_key, '-inf', now - window)
  local n = redis.call('ZCARD', fail_key)
  redis.call('ZADD', fail_key, now, now .. ':' .. n)
  redis.call('EXPIRE', fail_key, window)
  return n + 1 == limit
end

-- The booking a vaccinator's VERIFY or DOSE is about, checked for what both need: a number
-- on the centre's staff, not over its limit, a booking at that centre (`elsewhere`: the store
-- found the reference at another centre). Returns the booking (with its session's fields) and
-- `refuse(reply)`, which counts a refusal toward the number's limit (marking the one that
-- reaches it 'limit'); or nil, nil and the reply to answer at once.
local function vaccinator_booking(staff_key, phone, centre, fail_key, now, window, limit,
                                  session_key, appt_key, elsewhere)
  local function refuse(reply)
    if count_failure(fail_key, now, window, limit) then reply[3] = 'limit' end
    return reply
  end
  if redis.call('HEXISTS', staff_key, phone) == 0 then return nil, nil, {'not_vaccinator', ''} end
  local wait = blocked_for(fail_key, now, window, limit)
  if wait then return nil, nil, {'blocked', tostring(wait)} end
  if elsewhere == '1' then return nil, nil, refuse({'wrong_centre', ''}) end
  local a = hgetall(appt_key)
  if not a.state or a.state == 'void' then return nil, nil, refuse({'not_found', ''}) end
  if a.centre ~= centre then return nil, nil, refuse({'wrong_centre', ''}) end
  return fill(a, hgetall(session_key)), refuse
end

-- Start sending one outbox entry that `consumer` read, whose message's status hash is `msg`:
-- the attempt number to send; 0 for a message already sent (its entry is acknowledged here),
-- -1 for a malformed entry, -2 for an entry no longer this consumer's (another worker took it
-- over meanwhile, and sends it: left alone).
local function start_send(stream, group, consumer, id, msg, to, t, now)
  if #redis.call('XPENDING', stream, group, id, id, 1, consumer) == 0 then return -2 end
  if not to or to == '' or not t or t == '' then return -1 end
  local m = redis.call('HMGET', msg, 'status', 'attempts')
  local status = m[1]
  if status == 'sent' or status == 'delivered' or status == 'failed' or status == 'dead' then
    redis.call('XACK', stream, group, id)
    redis.call('XDEL', stream, id)
    return 0
  end
  local n = (tonumber(m[2]) or 0) + 1
  if status then
    redis.call('HSET', msg, 'attempts', n, 'attempt_at', now)
  else  -- the text's fields stay on the entry: copying them here would bloat the hash
    redis.call('HSET', msg, 'status', 'queued', 'queued_at', now, 'attempts', n,
               'attempt_at', now)
  end
  return n
end
