-- Read up to ARGV[3] new outbox entries and start each: {id, fields, state}; state is the
-- attempt number to send, 0 for a message already sent (acknowledged here), -1 for a
-- malformed entry (see start_send in common.lua).
-- KEYS: outbox
-- ARGV: group, consumer, count, now, message template
local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                       'STREAMS', KEYS[1], '>')
if not got then return {} end
local out = {}
for i, e in ipairs(got[1][2]) do
  local f = {}
  for j = 1, #e[2], 2 do f[e[2][j]] = e[2][j + 1] end
  local k = f.k
  if not k or k == '' then k = 'entry:' .. e[1] end
  out[i] = {e[1], e[2], start_send(KEYS[1], ARGV[1], e[1], k, f.to, f.t, f.l or 'en',
                                     f.p or '{}', ARGV[4], ARGV[5])}
end
return out
