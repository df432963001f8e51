-- Take up to ARGV[3] tokens from the fleet's token bucket (OUTBOX_RATE shared by every worker):
-- {tokens granted, ms until the next one when none was}. The bucket refills at the rate up to
-- its capacity; a caller's clock behind the last one's refills nothing rather than going back.
-- KEYS: the bucket (hash: tokens, at)
-- ARGV: rate per second, capacity, tokens wanted, now (epoch ms)
local rate, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local want, now = tonumber(ARGV[3]), tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]) or cap, tonumber(b[2]) or now
if now > at then
  tokens = math.min(cap, tokens + (now - at) * rate / 1000)
  at = now
end
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%d', at))
-- Gone once it would be full anyway: an idle fleet keeps no bucket.
redis.call('PEXPIRE', KEYS[1], math.ceil(cap * 1000 / rate) + 1000)
if granted > 0 then return {granted, 0} end
return {0, math.ceil((1 - tokens) * 1000 / rate)}
