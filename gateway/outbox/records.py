"""What the worker writes about a message, each in one script: its start, its send (many at
once), a retry, a dead letter; kept apart from the loop so the status hash is described once.

A message's status hash holds status, attempts, timestamps, provider id, last error and the
delivery report, never the text's fields (phone, template, language, params): those stay on
the stream entry, and are copied into the hash only while a retry or a dead letter needs
them. Every value stays within ``hash-max-listpack-value``, so the hash stays a listpack.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.store import keys, replies
from gateway.store.scripts import Scripts

KEEP_SECONDS = 30 * 24 * 3600  # how long a sent message's status is kept
# Delivery reports come within a message's validity period (hours to a few days), so the
# provider id → message key lookup need not live as long as the status: a week is ample.
REPORT_SECONDS = 7 * 24 * 3600
SMALL = 64  # bytes: Redis's hash-max-listpack-value; longer values make a hash a hashtable
# One sent record: (entry id, message key, provider id, sent at, detail).
Sent = tuple[str, str, str, str, str]


def now() -> str:
    """The time a record carries, ISO in UTC to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def short(text: str) -> str:
    """``text`` cut to fit a status hash: a longer value would make it a hashtable."""
    return text.encode()[:SMALL].decode("utf-8", "ignore")


def sent(scripts: Scripts, records: list[Sent]) -> None:
    """Record sends and acknowledge their entries: each record keeps its own provider id and
    acknowledgement, all written together or not at all."""
    keys_ = [keys.OUTBOX, keys.SMS_COUNTS]
    args: list = [keys.OUTBOX_GROUP, KEEP_SECONDS, REPORT_SECONDS]
    for entry_id, k, message_id, sent_at, detail in records:
        keys_ += [keys.message(k), keys.provider_message(message_id or "-")]
        args += [entry_id, message_id, sent_at, k, detail]
    scripts["outbox_sent"](keys=keys_, args=args)


def retry(scripts: Scripts, entry_id: str, entry: dict, detail: str, due: float) -> None:
    """Acknowledge a failed attempt and park the message in the retry set until ``due``."""
    k = entry["k"]
    scripts["outbox_retry"](
        keys=[keys.message(k), keys.RETRY, keys.OUTBOX],
        args=[
            keys.OUTBOX_GROUP,
            entry_id,
            k,
            short(detail),
            datetime.fromtimestamp(due, UTC).isoformat(timespec="seconds"),
            int(due * 1000),
            entry.get("to", ""),
            entry.get("t", ""),
            entry.get("l", "en"),
            entry.get("p", "{}"),
        ],
    )


def dead(scripts: Scripts, entry_id: str, entry: dict, error: str) -> None:
    """Make the message a dead letter with ``error``, acknowledging its entry."""
    k = entry["k"]
    scripts["outbox_dead"](
        keys=[keys.message(k), keys.DEAD, keys.OUTBOX, keys.SMS_COUNTS],
        args=[
            keys.OUTBOX_GROUP,
            entry_id,
            k,
            entry.get("to", ""),
            entry.get("t", ""),
            entry.get("l", "en"),
            entry.get("p", "{}"),
            error,
            now(),
            short(error),
        ],
    )


def promote(scripts: Scripts, due_ms: int, most: int = 100) -> None:
    """Put the retries due by ``due_ms`` back on the stream."""
    scripts["outbox_promote"](
        keys=[keys.RETRY, keys.OUTBOX], args=[due_ms, most, keys.template(keys.message)]
    )


def take(scripts: Scripts, consumer: str, count: int) -> list:
    """Read up to ``count`` new entries and start each: [(id, fields, state)]; state is the
    attempt to send, 0 for a message already sent, -1 for a malformed entry."""
    taken = scripts["outbox_take"](
        keys=[keys.OUTBOX],
        args=[keys.OUTBOX_GROUP, consumer, count, now(), keys.template(keys.message)],
    )
    return [(replies.text(i), replies.pairs(fields), int(state)) for i, fields, state in taken]


def begin(scripts: Scripts, entries: list) -> list:
    """Start entries already read, [(id, fields)]: [(id, fields, state)] as ``take``."""
    if not entries:
        return []
    args: list = [keys.OUTBOX_GROUP, now(), keys.template(keys.message)]
    for entry_id, entry in entries:
        args += [
            entry_id,
            entry.get("k") or f"entry:{entry_id}",
            entry.get("to", ""),
            entry.get("t", ""),
            entry.get("l", "en"),
            entry.get("p", "{}"),
        ]
    states = scripts["outbox_begin"](keys=[keys.OUTBOX], args=args)
    return [(i, e, int(state)) for (i, e), state in zip(entries, states, strict=True)]
