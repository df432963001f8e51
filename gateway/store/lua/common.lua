-- Shared by every TikaLine script (prepended by gateway/scripts.py).
-- Rule for all scripts: validate everything first, return a refusal before the first write.
-- Keys: a script gets the keys it can name up front in KEYS. A key it must build from a
-- stored value (an appointment's session, a retried message) it builds from a template that
-- gateway/keys.py passes in ARGV (`…_t`, '%s' for each part, see keys.template), so no key
-- name is ever spelled in Lua.

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

-- Queue one outbound SMS. Its text is rendered by the sender from template + params, so no
-- security code is ever written to Redis; the message key lets a retry be deduplicated.
local function queue_sms(outbox, counts, message_key, to, template, lang, params)
  redis.call('XADD', outbox, '*', 'k', message_key, 'to', to, 't', template, 'l', lang,
             'p', cjson.encode(params))
  redis.call('HINCRBY', counts, 'queued', 1)
end

-- An appointment with the fields it shares with its session filled in: the slot's time and
-- the vaccine live once in the session, not in each of its hundreds of appointments; the dose
-- number is stored only when it is not the first.
local function appointment(session_t, key)
  local a = hgetall(key)
  if a.state then
    local s = redis.call('HMGET', string.format(session_t, a.sid), 'slots', 'vaccine')
    a.time = a.time or (s[1] and cjson.decode(s[1])[tonumber(a.slot) + 1]) or ''
    a.vaccine = a.vaccine or s[2] or ''
    a.dose = a.dose or '1'
  end
  return a
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

-- The booking a vaccinator's VERIFY or DOSE is about, checked for what both need: a
-- registered number not over its limit, a booking at that number's centre. Returns the
-- booking and `refuse(reply)`, which counts a refusal toward the number's limit (marking the
-- one that reaches it 'limit'); or nil, nil and the reply to answer at once.
local function vaccinator_booking(vacc_key, fail_key, now, window, limit, session_t, appt_key)
  local function refuse(reply)
    if count_failure(fail_key, now, window, limit) then reply[3] = 'limit' end
    return reply
  end
  local centre = redis.call('HGET', vacc_key, 'centre_id')
  if not centre then return nil, nil, {'not_vaccinator', ''} end
  local wait = blocked_for(fail_key, now, window, limit)
  if wait then return nil, nil, {'blocked', tostring(wait)} end
  local a = appointment(session_t, appt_key)
  if not a.state then return nil, nil, refuse({'not_found', ''}) end
  if a.centre ~= centre then return nil, nil, refuse({'wrong_centre', ''}) end
  return a, refuse
end

-- Start sending one outbox entry: the attempt number to send; 0 for a message already sent
-- (its entry is acknowledged here), -1 for a malformed entry.
local function start_send(stream, group, id, k, to, t, l, p, now, message_t)
  if not to or to == '' or not t or t == '' then return -1 end
  local msg = string.format(message_t, k)
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
