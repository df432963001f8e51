"""The console provider, used when AT_USERNAME is unset: "sends" by logging and keeping.

Nothing is silently dropped on a machine without an Africa's Talking account: each message is
logged (phone masked, message key, template and length: never the text, whose names, birth
years, certificate IDs and codes are the citizen's) and kept on a short per-phone list that
the simulator and the operator read. The list holds the outbox entry
(template, language, params), never the rendered text, so no code is written to Redis; a
reader renders it with ``flows.messages.sms.render_entry``.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

import redis

from gateway.phones import mask
from gateway.providers.result import SENT, SendResult
from gateway.store import keys

log = logging.getLogger(__name__)
KEEP = 50  # messages kept per phone
KEEP_SECONDS = 24 * 3600


class ConsoleProvider:
    """Logs each message and keeps it for the simulator, answering like a real send."""

    def __init__(self, client: redis.Redis):
        self.r = client

    def send(self, to: str, text: str, entry: dict | None = None) -> SendResult:
        """Log and keep one message; returns a provider message id like a real send."""
        entry = entry or {}
        message_id = "console-" + uuid.uuid4().hex
        log.info(
            "event=console_sms to=%s k=%s template=%s lang=%s chars=%d",
            mask(to),
            entry.get("k", "?"),
            entry.get("t", "?"),
            entry.get("l", "?"),
            len(text),
        )
        kept = json.dumps(
            {
                "id": entry.get("k", message_id),
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "t": entry.get("t", ""),
                "l": entry.get("l", "en"),
                "p": entry.get("p", "{}"),
            },
            ensure_ascii=False,
        )
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
