-- Apply one delivery report to its message's status hash (see gateway/delivery.py).
-- KEYS: provider id -> message key, sms counts
-- ARGV: message template, raw status, our status ('' when unknown), failure reason, network code,
--       retry count, now, ttl
local k = redis.call('GET', KEYS[1])
if not k then return {'unknown_id', ''} end
local msg = string.format(ARGV[1], k)
-- The last six distinct reports, as short digests in one field under 64 bytes: replays are
-- recognised, and however many reports arrive the status hash keeps the same few fields.
local mark = string.sub(redis.sha1hex(ARGV[2] .. '|' .. ARGV[4] .. '|' .. ARGV[6]), 1, 8)
local seen = redis.call('HGET', msg, 'seen') or ''
if string.find(seen, mark, 1, true) then return {'replay', k} end
local rank = {queued = 0, sent = 1, failed = 2, delivered = 3}
local current = redis.call('HGET', msg, 'status') or 'sent'
redis.call('HSET', msg, 'seen', string.sub(mark .. ' ' .. seen, 1, 53), 'report', ARGV[2],
           'report_at', ARGV[7])
redis.call('HINCRBY', msg, 'reports', 1)
if ARGV[4] ~= '' then redis.call('HSET', msg, 'failure_reason', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', msg, 'network', ARGV[5]) end
redis.call('EXPIRE', msg, ARGV[8])
local new = ARGV[3]
if new == '' then return {'unknown_status', k} end
if current == 'dead' or (rank[new] or 0) <= (rank[current] or 0) then return {'kept', k} end
redis.call('HSET', msg, 'status', new, new .. '_at', ARGV[7])
if new == 'delivered' then redis.call('HINCRBY', KEYS[2], 'delivered', 1) end
if new == 'failed' then redis.call('HINCRBY', KEYS[2], 'failed', 1) end
if current == 'failed' then redis.call('HINCRBY', KEYS[2], 'failed', -1) end
return {'updated', k}
