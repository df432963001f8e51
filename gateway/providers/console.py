"""The console provider, used when AT_USERNAME is unset: "sends" by logging and keeping.

Nothing is silently dropped on a machine without an Africa's Talking account: each message is
logged (phone masked, and the text only when it carries no security code) and kept on a short
per-phone list that the simulator and the operator read. The list holds the outbox entry
(template, language, params), never the rendered text, so no code is written to Redis; a
reader renders it with ``gateway.sms_text.render_entry``.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

import redis

from gateway import keys
from gateway.phones import mask
from gateway.providers.result import SENT, SendResult

log = logging.getLogger(__name__)
KEEP = 50  # messages kept per phone
KEEP_SECONDS = 24 * 3600


def carries_code(entry: dict) -> bool:
    """Whether the rendered text of this entry would contain a security code: a booking's
    ref and code version anywhere in its params (the slip nests one per booking)."""
    try:
        params = json.loads(entry.get("p") or "{}")
    except ValueError:
        return True  # unreadable: assume the worst, log the template only
    return _has_code(params)


def _has_code(value) -> bool:
    if isinstance(value, dict):
        return ("ref" in value and "ver" in value) or any(map(_has_code, value.values()))
    if isinstance(value, list):
        return any(map(_has_code, value))
    return False


class ConsoleProvider:
    """Logs each message and keeps it for the simulator, answering like a real send."""

    def __init__(self, client: redis.Redis):
        self.r = client

    def send(self, to: str, text: str, entry: dict | None = None) -> SendResult:
        """Log and keep one message; returns a provider message id like a real send."""
        entry = entry or {}
        message_id = "console-" + uuid.uuid4().hex
        shown = f"[{entry.get('t', '?')}]" if carries_code(entry) else repr(text)
        log.info("console SMS to %s (%s): %s", mask(to), entry.get("k", "?"), shown)
        kept = json.dumps({
            "id": entry.get("k", message_id),
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "t": entry.get("t", ""), "l": entry.get("l", "en"), "p": entry.get("p", "{}"),
        }, ensure_ascii=False)
        key = keys.console_inbox(to)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.lpush(key, kept)
            pipe.ltrim(key, 0, KEEP - 1)
            pipe.expire(key, KEEP_SECONDS)
            pipe.execute()
        return SendResult(SENT, message_id=message_id, detail="console")


def kept_messages(client: redis.Redis, phone: str) -> list[dict]:
    """The entries the console provider kept for ``phone``, newest first."""
    return [json.loads(raw) for raw in client.lrange(keys.console_inbox(phone), 0, -1)]
