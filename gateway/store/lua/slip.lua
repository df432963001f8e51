-- Read-only: a mobile's slip in one round trip: each beneficiary's latest appointment (without
-- its code check) and the name of its centre, as JSON.
-- KEYS: beneficiaries(mobile)
-- ARGV: appointment, session and centre templates
local appt_t, session_t, centre_t = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for _, ref in ipairs(redis.call('HVALS', KEYS[1])) do
  local a = appointment(session_t, string.format(appt_t, ref))
  if a.state then
    a.check = nil
    a.ref = ref
    a.centre_name = redis.call('HGET', string.format(centre_t, a.centre), 'name') or a.centre
    out[#out + 1] = a
  end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
