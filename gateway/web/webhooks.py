"""The Africa's Talking webhooks: each view parses, hands the neutral message to a flow, and
formats the answer. Bad input is a 4xx that says what is wrong, as text, never a 500."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException

from flows import router, ussd
from gateway.errors import REDIS_ERRORS, BadRequest
from gateway.logs import clean
from gateway.outbox import health
from gateway.providers import africastalking as at
from gateway.services import services
from gateway.web.http import check_token

bp = Blueprint("webhooks", __name__)
log = logging.getLogger("tikaline.webhooks")


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def _acknowledge(apply, store, msg, failure: str) -> Response:
    """200 once ``apply`` has run; 503 if it failed, so the provider retries the callback.

    Nothing was committed then (each flow's commit is its last, atomic step), so the retry
    applies the message once the cause (Redis away, most likely) is gone. ``apply`` returning
    False means another copy of the message is being applied: that copy's retry will find it
    done."""
    try:
        applied = apply(store, msg)
    except Exception:
        log.exception("event=%s", failure)
        return _text("try again later", 503)
    if applied is False:
        return _text("being applied; try again later", 503)
    return _text("")


@bp.post("/ussd")
def ussd_hop():
    """One USSD hop: ``CON …`` or ``END …``, always."""
    check_token()
    svc = services()
    msg = at.parse_ussd(request, svc.settings.default_region)
    return _text(at.ussd_body(ussd.handle(svc.store, msg)))


@bp.post("/ussd/events")
def ussd_session_end():
    """The end-of-session notice: logged, and a dropped booking kept for the next dial."""
    check_token()
    svc = services()
    msg = at.parse_session_end(request, svc.settings.default_region)
    return _acknowledge(ussd.close, svc.store, msg, f"ussd_end_failed session={msg.session_id}")


@bp.post("/sms/inbound")
def sms_inbound():
    """An inbound SMS: applied at once; its replies leave through the outbox."""
    check_token()
    svc = services()
    msg = at.parse_sms(request, svc.settings.default_region)
    return _acknowledge(router.handle, svc.store, msg, f"sms_failed id={msg.message_id}")


@bp.get("/healthz")
def healthz():
    """200 while Redis answers, 503 otherwise; under "ok", a line for each trouble (Redis
    refusing commands, a stuck worker and why, SMS waiting long)."""
    client = services().redis
    try:
        refusing = _refusal(client)
        troubles = health.problems(client)
    except REDIS_ERRORS:
        return _text("redis unreachable", 503)
    return _text("\n".join(["ok", *refusing, *troubles]))


def _refusal(client) -> list[str]:
    """Why Redis refuses PING though it answers, e.g. MISCONF after a failed snapshot."""
    try:
        client.ping()
    except redis.ResponseError as exc:  # an answer: reachable, and the reason is worth saying
        return [f"redis refuses: {clean(str(exc), 120)}"]
    return []


@bp.app_errorhandler(BadRequest)
def refused(exc: BadRequest):
    """A request refused at the edge: its 4xx, with what is wrong, as text."""
    return _text(str(exc), exc.status)


@bp.app_errorhandler(413)
def too_large(exc: HTTPException):
    """A body over MAX_CONTENT_LENGTH: 413 as text (werkzeug's own page is HTML)."""
    return _text("body too large (16 KiB at most)", 413)


def init_app(app: Flask) -> None:
    """Register the webhooks and their error handlers."""
    app.register_blueprint(bp)
