"""The public certificate check at ``/verify``: a form and its result, server-rendered.

It works without JavaScript (a GET form; the result is a plain page, so it can be bookmarked
or shared as ``/verify?id=…``) and asks for no login: it reveals only what ``CERT <id>`` by
SMS reveals, the name masked. Each lookup counts against the client's address
(``flows.certificate.WEB_LOOKUPS`` in a rolling hour). English or Hindi, from ``?lang=`` or
the browser's Accept-Language. Bad input is a page that says what is wrong, never a 500.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, render_template, request

from flows import certificate, messages
from gateway.codes import format_certificate
from gateway.errors import REDIS_ERRORS
from gateway.services import services

log = logging.getLogger("tikaline.verify")
TYPED = 64  # characters of ?id= read at most: an ID is 15 digits, with spaces 17
# A result is a page either way; its status says what happened to a client that reads only it.
STATUS = {"usage": 400, "bad_id": 400, "is_ref": 400, "limited": 429}
# No script at all; styles and the form's target from this site only.
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

bp = Blueprint(
    "verify",
    __name__,
    url_prefix="/verify",
    template_folder="templates",
    static_folder="static/verify",  # its own: the simulator's files stay the simulator's
    static_url_path="/static",
)


@bp.after_request
def _lock_down(response):
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the ID stays on this site
    return response


def _lang() -> str:
    chosen = request.args.get("lang", "")
    if chosen in messages.LANGUAGES:
        return chosen
    return request.accept_languages.best_match(messages.LANGUAGES) or messages.DEFAULT


@bp.get("")
def page():
    """The form; with ``?id=`` also the result of checking that ID."""
    lang = _lang()
    typed = request.args.get("id")
    if typed is None:
        return _render(lang, "", None)
    typed = " ".join(typed[:TYPED].split())
    svc = services()
    try:
        found = certificate.check(
            svc.store,
            typed,
            f"ip:{request.remote_addr or '-'}",
            certificate.WEB_LOOKUPS,
            svc.store.now(),
        )
    except REDIS_ERRORS:
        log.exception("event=verify_failed")
        return _render(lang, typed, certificate.Check("busy")), 503
    return _render(lang, typed, found), STATUS.get(found.status, 200)


def _render(lang: str, typed: str, found: certificate.Check | None) -> str:
    """The page: the form (``typed`` kept in it) and what the check found, in ``lang``."""

    def t(key: str, **params: object) -> str:
        return messages.text(f"web.cert.{key}", lang, **params)

    genuine = found is not None and found.status == "genuine"
    return render_template(
        "verify.html",
        lang=lang,
        other="en" if lang == "hi" else "hi",
        typed=typed,
        genuine=found.params if found and genuine else None,
        cert=format_certificate(found.params["cert"]) if found and genuine else "",
        message=t(found.status, **found.params) if found and not genuine else "",
        t=t,
    )


def init_app(app: Flask) -> None:
    """Register the public check."""
    app.register_blueprint(bp)
