-- Bring a person's record on their mobile in line with their appointment (after a cancel, a
-- dose, a day over, or a move to another session): only when the record is still about that
-- ref and not in flight.
-- KEYS: beneficiaries(mobile)
-- ARGV: name key, ref, state, optional JSON of fields that moved ({d, sid, slot})
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local p = raw and cjson.decode(raw)
local moved = ARGV[4] and ARGV[4] ~= '' and cjson.decode(ARGV[4]) or {}
if not p or p.r ~= ARGV[2] or p.s == 'pending' then return 0 end
local same = p.s == ARGV[3]
for k, v in pairs(moved) do
  if p[k] ~= v then same = false end
  p[k] = v
end
if same then return 0 end
p.s = ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(p))
return 1
