-- Start outbox entries this worker read (XREADGROUP, XAUTOCLAIM) from one partition's stream:
-- the state of each, as start_send in common.lua says. The worker read the entries first, so
-- their messages' status hashes arrive in KEYS; start_send checks each entry is still this
-- worker's to send.
-- KEYS: outbox, then the status hash of each entry's message
-- ARGV: group, consumer, now, then three per entry: entry id, to, template
local out = {}
for i = 2, #KEYS do
  local a = 4 + (i - 2) * 3
  out[#out + 1] = start_send(KEYS[1], ARGV[1], ARGV[2], ARGV[a], KEYS[i], ARGV[a + 1],
                             ARGV[a + 2], ARGV[3])
end
return out
