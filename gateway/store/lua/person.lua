-- Bring a person's record on their mobile in line with their appointment (after a cancel, a
-- dose, or a day over): only when the record is still about that ref and not in flight.
-- KEYS: beneficiaries(mobile)
-- ARGV: name key, ref, state
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local p = raw and cjson.decode(raw)
if not p or p.r ~= ARGV[2] or p.s == 'pending' or p.s == ARGV[3] then return 0 end
p.s = ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(p))
return 1
