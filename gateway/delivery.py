"""``POST /sms/delivery``: Africa's Talking delivery reports onto each message's status.

A report moves a message forward only (sent → failed → delivered), so one arriving late or
twice changes nothing; a report seen before (same status, reason and retry count) is a no-op.
An unknown status is kept on the message and logged; an unknown message id is logged and
answered 200, since Africa's Talking would otherwise retry a report we can never place.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, request

from gateway import keys
from gateway.errors import BadRequest
from gateway.http import check_token, form_fields
from gateway.outbox import KEEP_SECONDS
from gateway.providers.africastalking import delivery_status
from gateway.services import services

log = logging.getLogger(__name__)
bp = Blueprint("delivery", __name__)

# KEYS: provider id → message key, counters. ARGV: prefix, raw status, our status ('' when
# unknown), failure reason, network code, retry count, now, ttl.
_REPORT = """
local k = redis.call('GET', KEYS[1])
if not k then return {'unknown_id', ''} end
local msg = ARGV[1] .. 'msg:' .. k
local seen = 'seen:' .. ARGV[2] .. '|' .. ARGV[4] .. '|' .. ARGV[6]
-- A field name over 64 bytes would turn the compact status hash into a hashtable.
if #seen > 64 then seen = 'seen:' .. redis.sha1hex(seen) end
if redis.call('HEXISTS', msg, seen) == 1 then return {'replay', k} end
local rank = {queued = 0, sent = 1, failed = 2, delivered = 3}
local current = redis.call('HGET', msg, 'status') or 'sent'
redis.call('HSET', msg, seen, ARGV[7], 'report', ARGV[2], 'report_at', ARGV[7])
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
"""
_FIELDS = ("id", "status")
_OPTIONAL = ("phoneNumber", "networkCode", "failureReason", "retryCount")


def apply_report(client, provider_id: str, status: str, failure_reason: str = "",
                 network: str = "", retry_count: str = "") -> tuple[str, str]:
    """Apply one delivery report; returns (what happened, message key or '')."""
    mapped = delivery_status(status) or ""
    outcome, k = client.register_script(_REPORT)(
        keys=[keys.provider_message(provider_id), keys.SMS_COUNTS],
        args=[keys.PREFIX, status, mapped, failure_reason, network, retry_count,
              datetime.now(UTC).isoformat(timespec="seconds"), KEEP_SECONDS])
    return outcome.decode(), k.decode()


@bp.post("/sms/delivery")
def delivery_report():
    """Record a delivery report; always 200 once it is well formed."""
    check_token()
    form = form_fields(request, _FIELDS, _OPTIONAL)
    provider_id, status = form["id"].strip(), form["status"].strip()
    if not provider_id or not status or len(provider_id) > 100 or len(status) > 40:
        raise BadRequest("id and status must be non-empty and short")
    outcome, k = apply_report(services().redis, provider_id, status,
                              form["failureReason"].strip()[:60],
                              form["networkCode"].strip()[:10], form["retryCount"].strip()[:5])
    if outcome == "unknown_id":
        log.warning("delivery report for unknown message id %s (%s)", provider_id, status)
    elif outcome == "unknown_status":
        log.warning("delivery report with unknown status %r for %s: kept", status, k)
    return outcome, 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest):
    return str(exc), exc.status, {"Content-Type": "text/plain; charset=utf-8"}
