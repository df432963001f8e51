-- Read-only: one appointment with its session's time and vaccine, as JSON (without its code
-- check), or '' when there is none.
-- KEYS: appointment
-- ARGV: session template
local a = appointment(ARGV[1], KEYS[1])
if not a.state then return '' end
a.check = nil
return cjson.encode(a)
