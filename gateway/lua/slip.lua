-- Read-only: a mobile's slip in one round trip: each beneficiary's latest appointment (without
-- its code check) and the name of its centre, as JSON.
-- KEYS: beneficiaries(mobile)
-- ARGV: prefix
local prefix = ARGV[1]
local out = {}
for _, ref in ipairs(redis.call('HVALS', KEYS[1])) do
  local a = appointment(prefix, prefix .. 'appt:' .. ref)
  if a.state then
    a.check = nil
    a.ref = ref
    a.centre_name = redis.call('HGET', prefix .. 'centre:' .. a.centre, 'name') or a.centre
    out[#out + 1] = a
  end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
