-- Apply one delivery report to its message's status hash (see gateway/web/delivery.py). The
-- caller found the message through its provider id; one gone meanwhile is 'unknown_id', and
-- nothing is written for it.
-- KEYS: the message's status hash, its partition's sms counts
-- ARGV: raw status, our status ('' when unknown), failure reason, network code, retry count,
--       now, ttl
local msg = KEYS[1]
local current = redis.call('HGET', msg, 'status')
if not current then return 'unknown_id' end
-- The last six distinct reports, as short digests in one field under 64 bytes: replays are
-- recognised, and however many reports arrive the status hash keeps the same few fields.
local mark = string.sub(redis.sha1hex(ARGV[1] .. '|' .. ARGV[3] .. '|' .. ARGV[5]), 1, 8)
local seen = redis.call('HGET', msg, 'seen') or ''
if string.find(seen, mark, 1, true) then return 'replay' end
local rank = {queued = 0, sent = 1, failed = 2, delivered = 3}
redis.call('HSET', msg, 'seen', string.sub(mark .. ' ' .. seen, 1, 53), 'report', ARGV[1],
           'report_at', ARGV[6])
redis.call('HINCRBY', msg, 'reports', 1)
if ARGV[3] ~= '' then redis.call('HSET', msg, 'failure_reason', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', msg, 'network', ARGV[4]) end
redis.call('EXPIRE', msg, ARGV[7])
local new = ARGV[2]
if new == '' then return 'unknown_status' end
if current == 'dead' or (rank[new] or 0) <= (rank[current] or 0) then return 'kept' end
redis.call('HSET', msg, 'status', new, new .. '_at', ARGV[6])
if new == 'delivered' then redis.call('HINCRBY', KEYS[2], 'delivered', 1) end
if new == 'failed' then redis.call('HINCRBY', KEYS[2], 'failed', 1) end
if current == 'failed' then redis.call('HINCRBY', KEYS[2], 'failed', -1) end
return 'updated'
