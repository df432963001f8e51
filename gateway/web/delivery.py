"""``POST /sms/delivery``: Africa's Talking delivery reports onto each message's status.

A report moves a message forward only (sent → failed → delivered), so one arriving late or
twice changes nothing; a repeat of one of the last six (same status, reason and retry count)
is a no-op. The message keeps the last report, the failure reason and a count of reports, not
every report, so a flapping network cannot grow it. Every value is cleaned of control
characters before it is stored or logged.
An unknown status is kept on the message and logged; an unknown message id is logged and
answered 200, since Africa's Talking would otherwise retry a report we can never place.
The provider id leads to the message through ``keys.provider_message``, which names the
message's partition and key (it lives in the provider id's own partition, so it is read
first and the report then applied by a script on the message's partition).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, request

from gateway.errors import BadRequest
from gateway.logs import clean
from gateway.outbox import KEEP_SECONDS
from gateway.providers.africastalking import delivery_status
from gateway.providers.forms import form_fields
from gateway.services import services
from gateway.store import keys
from gateway.store.replies import optional_text, text
from gateway.store.scripts import scripts_for
from gateway.web.http import check_token

log = logging.getLogger(__name__)
bp = Blueprint("delivery", __name__)

_FIELDS = ("id", "status")
_OPTIONAL = ("phoneNumber", "networkCode", "failureReason", "retryCount")


def apply_report(
    client,
    provider_id: str,
    status: str,
    failure_reason: str = "",
    network: str = "",
    retry_count: str = "",
) -> tuple[str, str]:
    """Apply one delivery report; returns (what happened, message key or '')."""
    found = _message_of(client, provider_id)
    if found is None:
        return "unknown_id", ""
    p, k = found
    outcome = scripts_for(client)["delivery_report"](
        keys=[keys.message(p, k), keys.sms_counts(p)],
        args=[
            status,
            delivery_status(status) or "",
            failure_reason,
            network,
            retry_count,
            datetime.now(UTC).isoformat(timespec="seconds"),
            KEEP_SECONDS,
        ],
    )
    outcome = text(outcome)
    return outcome, "" if outcome == "unknown_id" else k


def _message_of(client, provider_id: str) -> tuple[int, str] | None:
    """The partition and key of the message a provider id was given to, or None."""
    where = optional_text(client.get(keys.provider_message(provider_id)))
    p, _, k = (where or "").partition(" ")
    if not p.isdigit() or not k or int(p) >= keys.PARTITIONS:
        return None
    return int(p), k


@bp.post("/sms/delivery")
def delivery_report():
    """Record a delivery report; always 200 once it is well formed."""
    check_token()
    form = form_fields(request, _FIELDS, _OPTIONAL)
    provider_id, status = form["id"].strip(), form["status"].strip()
    if not provider_id or not status or len(provider_id) > 100 or len(status) > 40:
        raise BadRequest("id and status must be non-empty and short")
    provider_id, status = clean(provider_id, 100), clean(status, 40)
    outcome, k = apply_report(
        services().redis,
        provider_id,
        status,
        clean(form["failureReason"].strip(), 60),
        clean(form["networkCode"].strip(), 10),
        clean(form["retryCount"].strip(), 5),
    )
    if outcome == "unknown_id":
        log.warning("event=report_unknown_id id=%s status=%s", provider_id, status)
    elif outcome == "unknown_status":
        log.warning("event=report_unknown_status status=%r k=%s: kept", status, k)
    return outcome, 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest):
    return str(exc), exc.status, {"Content-Type": "text/plain; charset=utf-8"}
