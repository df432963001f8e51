-- Start outbox entries already read (a blocking read, a reclaim): their states, as in
-- outbox_take.lua.
-- KEYS: outbox
-- ARGV: group, now, message template, then six per entry: id, message key, to, template, lang, params
local out = {}
for i = 4, #ARGV, 6 do
  out[#out + 1] = start_send(KEYS[1], ARGV[1], ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
                             ARGV[i + 4], ARGV[i + 5], ARGV[2], ARGV[3])
end
return out
