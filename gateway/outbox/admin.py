"""What an operator sees and does from ``flask sms``: counters, dead letters, requeueing."""

from __future__ import annotations

from collections.abc import Iterator

import redis

from gateway.outbox.records import now
from gateway.store import keys
from gateway.store.replies import entries, fields, text
from gateway.store.scripts import scripts_for

STATUSES = ("queued", "sent", "delivered", "failed", "dead")


def stats(client: redis.Redis) -> dict[str, int]:
    """Counters (queued, sent, delivered, failed, dead) and what waits right now."""
    counts = fields(client.hgetall(keys.SMS_COUNTS))
    result = {name: int(counts.get(name, 0)) for name in STATUSES}
    result["in_outbox"] = client.xlen(keys.OUTBOX)
    result["waiting_retry"] = client.zcard(keys.RETRY)
    return result


def dead_letters(client: redis.Redis, count: int = 100) -> list[dict[str, str]]:
    """The oldest ``count`` dead letters, each with its stream ``id``."""
    return [{"id": i, **f} for i, f in entries(client.xrange(keys.DEAD, count=count))]


def requeue(client: redis.Redis, ident: str) -> list[str]:
    """Put dead letters back on the outbox: ``ident`` is a dead-letter id or a message key."""
    ids = (
        [ident]
        if _is_stream_id(ident)
        else [d["id"] for d in _all_dead(client) if d.get("k") == ident]
    )
    return _requeue_ids(client, ids)


def requeue_all(client: redis.Redis) -> list[str]:
    """Put every dead letter back on the outbox; returns their message keys."""
    return _requeue_ids(client, [d["id"] for d in _all_dead(client)])


def _all_dead(client: redis.Redis) -> Iterator[dict[str, str]]:
    start = "-"
    while True:
        read = entries(client.xrange(keys.DEAD, min=start, count=500))
        for i, f in read:
            yield {"id": i, **f}
        if len(read) < 500:
            return
        start = "(" + read[-1][0]


def _requeue_ids(client: redis.Redis, ids: list[str]) -> list[str]:
    script = scripts_for(client)["outbox_requeue"]
    done = []
    for dead_id in ids:
        k = text(
            script(
                keys=[keys.DEAD, keys.OUTBOX, keys.SMS_COUNTS, keys.RETRY],
                args=[dead_id, keys.template(keys.message), now()],
            )
        )
        if k:
            done.append(k)
    return done


def _is_stream_id(text: str) -> bool:
    left, _, right = text.partition("-")
    return left.isdigit() and right.isdigit()
