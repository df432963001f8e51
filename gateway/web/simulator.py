"""The phone simulator at ``/simulator``: a citizen's and a vaccinator's feature phone.

The page builds the very forms Africa's Talking posts (``/ussd``, ``/ussd/events``,
``/sms/inbound``) and sends them to ``/simulator/send/<webhook>``, which hands them to that
webhook in this process, adding the webhook token on the server: the token never reaches a
browser. The SMS each phone receives are read from the console provider's inbox
(``keys.console_inbox``) and rendered here, at read time, because security codes are never
stored in plain text.

It shows every phone's SMS and codes. It is registered only when
``Settings.simulator_enabled`` (true without ``WEBHOOK_TOKEN``, otherwise only with
``SIMULATOR_ENABLED=1``); when it is off, every ``/simulator`` URL is a plain 404. With a
webhook token (a deployment) every page and JSON of it needs a login with
``SIMULATOR_PASSWORD`` (a signed session cookie); the first run, on loopback without a
token, needs none.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime
from itertools import islice

from flask import (
    Blueprint,
    Flask,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from flows.messages import sms
from gateway import codes
from gateway.phones import normalise
from gateway.services import services
from gateway.store import keys

log = logging.getLogger(__name__)

USSD_CODE = "*384*1#"
SHORT_CODE = "38401"
NETWORK_CODE = "99999"  # Africa's Talking's sandbox network
CITIZEN = "+919811111111"
VACCINATOR = "+919800000001"
INBOX_LIMIT = 50
# The page may only reach this gateway: scripts, styles and fetches from its own origin.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# What the page may post to, through /simulator/send/<webhook>.
WEBHOOKS = {"ussd": "/ussd", "ussd/events": "/ussd/events", "sms/inbound": "/sms/inbound"}
_OPEN = {"simulator.login", "simulator.static"}  # reachable before logging in
LOGIN_FAILURES, LOGIN_WINDOW = 20, 15 * 60  # wrong passwords, then no login for the window

bp = Blueprint(
    "simulator",
    __name__,
    url_prefix="/simulator",
    template_folder="templates",
    static_folder="static",
)


@bp.after_request
def _lock_down(response):
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


def login_required() -> bool:
    """A deployment (webhook token) guards the simulator; the first run (no token) does not."""
    return bool(services().settings.webhook_token)


def _password_id(password: str) -> str:
    # Kept in the session: a new SIMULATOR_PASSWORD logs every browser out.
    return hmac.new(password.encode(), b"simulator-login", hashlib.sha256).hexdigest()[:16]


def _logged_in() -> bool:
    expected = _password_id(services().settings.simulator_password or "")
    return hmac.compare_digest(session.get("simulator", ""), expected)


@bp.before_request
def _guard():
    if request.endpoint in _OPEN or not login_required() or _logged_in():
        return None
    if request.method == "GET" and request.endpoint == "simulator.page":
        return redirect(url_for("simulator.login"))
    return jsonify(error="log in to the simulator first"), 401


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The simulator's login (only with a webhook token): SIMULATOR_PASSWORD."""
    if not login_required():
        return redirect(url_for("simulator.page"))
    if request.method == "GET":
        return render_template("simulator_login.html", wrong=False)
    r = services().redis
    if int(r.get(keys.SIMULATOR_LOGIN_FAILURES) or 0) >= LOGIN_FAILURES:
        wait = max(1, -(-r.ttl(keys.SIMULATOR_LOGIN_FAILURES) // 60))
        return render_template("simulator_login.html", wait=wait), 429
    password = services().settings.simulator_password or ""
    if password and hmac.compare_digest(
        request.form.get("password", "").encode(), password.encode()
    ):
        session.clear()
        session["simulator"] = _password_id(password)
        return redirect(url_for("simulator.page"))
    _count_failure(r)
    return render_template("simulator_login.html", wrong=True), 401


def _count_failure(r) -> None:
    """A wrong password counts for everyone: guessing is slow whoever spreads it out."""
    with r.pipeline(transaction=True) as pipe:
        pipe.incr(keys.SIMULATOR_LOGIN_FAILURES)
        pipe.expire(keys.SIMULATOR_LOGIN_FAILURES, LOGIN_WINDOW, nx=True)
        count, _ = pipe.execute()
    log.warning("event=simulator_wrong_password from=%s failures=%s", request.remote_addr, count)


@bp.post("/logout")
def logout():
    session.pop("simulator", None)
    return redirect(url_for("simulator.login"))


@bp.post("/send/<path:hook>")
def send(hook: str):
    """A phone's form handed to a webhook in this process, with the token added here."""
    path = WEBHOOKS.get(hook)
    if path is None:
        return jsonify(error=f"no webhook {hook!r}; one of {', '.join(WEBHOOKS)}"), 404
    # The app itself, not the proxy: the request context below is pushed on it.
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # flask types the proxy as Flask
    token = services().settings.webhook_token
    with app.test_request_context(
        path,
        method="POST",
        data=request.form.to_dict(),
        query_string={"token": token} if token else None,
        environ_base={"REMOTE_ADDR": request.remote_addr},
    ):
        return app.full_dispatch_request()


@bp.get("/")
def page():
    """The two phones."""
    svc = services()
    vaccinators = _vaccinators(svc.store)
    phones = [v["phone"] for v in vaccinators]
    default = VACCINATOR if VACCINATOR in phones or not phones else phones[0]
    return render_template(
        "simulator.html",
        ussd_code=USSD_CODE,
        short_code=svc.settings.at_sender_id or SHORT_CODE,
        network_code=NETWORK_CODE,
        citizen=CITIZEN,
        vaccinator=default,
        vaccinators=vaccinators,
        logout=login_required(),
    )


@bp.get("/inbox")
def inbox():
    """The SMS one phone has received, newest last, rendered now: ``?phone=+91…``."""
    svc = services()
    phone = normalise(request.args.get("phone", ""), svc.settings.default_region)
    if not phone:
        return jsonify(error="phone: expected a phone number, e.g. +919811111111"), 400
    raw = svc.redis.lrange(keys.console_inbox(phone), 0, -1)
    # The console provider pushes at the head: newest first. Reversed, then sorted stably by
    # time, messages sent within one millisecond keep their order too.
    entries = [entry for entry in map(_decode, reversed(raw)) if entry is not None]
    entries.sort(key=_when)
    messages = [_present(entry, svc.settings.keyring) for entry in entries[-INBOX_LIMIT:]]
    return jsonify(phone=phone, messages=messages)


def _decode(raw: bytes) -> dict | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        log.warning("console inbox: skipped an entry that is not JSON")
        return None
    return entry if isinstance(entry, dict) else None


def _when(entry: dict) -> float:
    at = entry.get("at")
    if isinstance(at, int | float | str):
        try:
            return float(at)
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(str(at)).timestamp()
    except ValueError:
        return 0.0


def _present(entry: dict, secret: codes.Keyring) -> dict:
    params = entry.get("p")
    fields = {
        "t": str(entry.get("t") or ""),
        "l": str(entry.get("l") or "en"),
        "p": json.dumps(params) if isinstance(params, dict) else str(params or ""),
    }
    try:
        text = sms.render_entry(fields, secret)
    except (KeyError, IndexError, ValueError) as exc:
        # A template the catalogue lacks must not hide the other messages.
        log.warning("console inbox: cannot render %s: %r", fields["t"], exc)
        text = f"(message {fields['t']} could not be rendered)"
    encoding, parts = sms.segments(text)
    return {
        "id": str(entry.get("id") or ""),
        "at": entry.get("at"),
        "template": fields["t"],
        "lang": fields["l"],
        "text": text,
        "encoding": encoding,
        "segments": parts,
    }


def _vaccinators(store, limit: int = 20) -> list[dict]:
    # The demo's default first, then a few others: a national list would not fit a page.
    seen = islice(store.r.sscan_iter(keys.VACCINATORS, count=100), limit)
    phones = {p.decode() if isinstance(p, bytes) else p for p in seen}
    if store.vaccinator(VACCINATOR):
        phones.add(VACCINATOR)
    found = [(phone, store.vaccinator(phone) or {}) for phone in sorted(phones)]
    names = store.centre_names({v.get("centre_id") for _, v in found if v.get("centre_id")})
    return [
        {
            "phone": phone,
            "name": v.get("name", ""),
            "centre_id": v.get("centre_id", ""),
            "centre": names.get(v.get("centre_id", ""), ""),
        }
        for phone, v in found
    ]


def init_app(app: Flask) -> None:
    """Register the simulator only when the settings allow it; otherwise it does not exist."""
    settings = app.extensions["tikaline"].settings
    if settings.simulator_enabled:
        # The login's signed cookie: keyed from SECRET_KEY, never the key itself.
        app.secret_key = hmac.new(
            settings.secret_key.encode(), b"simulator-session", hashlib.sha256
        ).hexdigest()
        app.config.update(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True)
        app.register_blueprint(bp)
    elif settings.webhook_token:
        log.info("simulator off: WEBHOOK_TOKEN is set and SIMULATOR_ENABLED is not 1")
