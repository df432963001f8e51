"""The token check every webhook shares; the form parsing lives with the providers."""

from __future__ import annotations

import hmac

from flask import request

from gateway.errors import BadRequest
from gateway.services import services


def check_token() -> None:
    """With WEBHOOK_TOKEN set, ``?token=`` must match (constant time), else 403."""
    expected = services().settings.webhook_token
    if not expected:
        return
    given = request.args.get("token", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise BadRequest("missing or wrong token", status=403)
