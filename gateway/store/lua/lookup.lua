-- Take one certificate lookup for a mobile (or a web client's address): allowed while fewer
-- than `limit` fall in the last `window` seconds (a rolling window, as a vaccinator's refused
-- attempts are counted). A refused lookup is not counted, so waiting is enough.
-- KEYS: lookups(who)
-- ARGV: now, window, limit
-- Returns 0 when the lookup may go ahead (and counts it), else seconds until one may.
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = blocked_for(key, now, window, limit)
if wait then return wait end
count_failure(key, now, window, limit)
return 0
