"""A provider's form post read strictly: required fields, UTF-8, the body size.

With the providers, not the web edge, since parsing a provider's webhook is the adapter's job
and the web layer already imports the adapters.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from gateway.errors import BadRequest


def form_fields(req: Request, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    """The named form fields as text; 400 naming every missing one, 415/400 for junk, 413 for
    a body over the limit, chunked or not."""
    if req.mimetype != "application/x-www-form-urlencoded":
        raise BadRequest("expected application/x-www-form-urlencoded", status=415)
    body = req.get_data(cache=True)
    limit = req.max_content_length
    if req.content_length is None and limit is not None and len(body) >= limit:
        # A chunked body has no length to refuse up front, and werkzeug stops reading at the
        # limit without a word: a body that fills it was cut short, never read whole.
        raise RequestEntityTooLarge()
    try:
        # Strict decoding, also of %-escapes: werkzeug would quietly keep an invalid byte.
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("body is not valid UTF-8") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)  # a repeated field: the first one counts
    missing = [name for name in required if name not in form]
    if missing:
        raise BadRequest("missing field(s): " + ", ".join(missing))
    return {name: form.get(name, "") for name in required + optional}
