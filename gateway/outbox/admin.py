"""What an operator sees and does from ``flask sms``: counters, dead letters, requeueing.

Every partition keeps its own outbox, retry set, dead letters and counters, so each view here
reads all partitions in one pipeline and adds them up or merges them. A dead letter is named
``<partition>:<stream id>`` (e.g. ``17:1733461234567-0``): its id within its partition's dead
stream, after the partition that holds it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import redis

from gateway.outbox.records import now
from gateway.store import keys
from gateway.store.replies import entries, fields, text
from gateway.store.scripts import scripts_for

STATUSES = ("queued", "sent", "delivered", "failed", "dead")
_DEAD_ID = re.compile(r"(\d+):(\d+-\d+)")
_PAGE = 500


def counters(client: redis.Redis) -> dict[str, int]:
    """The counters (queued, sent, delivered, failed, dead), added up over the partitions."""
    with client.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.hgetall(keys.sms_counts(p))
        shards = pipe.execute()
    totals = dict.fromkeys(STATUSES, 0)
    for shard in shards:
        for name, value in fields(shard).items():
            if name in totals:
                totals[name] += int(value)
    return totals


def stats(client: redis.Redis) -> dict[str, int]:
    """Counters (queued, sent, delivered, failed, dead) and what waits right now."""
    result = counters(client)
    with client.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.xlen(keys.outbox(p))
            pipe.zcard(keys.retry(p))
        sizes = pipe.execute()
    result["in_outbox"] = sum(sizes[0::2])
    result["waiting_retry"] = sum(sizes[1::2])
    return result


def dead_letters(client: redis.Redis, count: int = 100) -> list[dict[str, str]]:
    """The oldest ``count`` dead letters of all partitions, each with its ``id``
    (``<partition>:<stream id>``)."""
    with client.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.xrange(keys.dead(p), count=count)
        pages = pipe.execute()
    letters = [
        (_stream_time(i), p, {"id": f"{p}:{i}", **f})
        for p, page in enumerate(pages)
        for i, f in entries(page)
    ]
    letters.sort(key=lambda letter: letter[:2])
    return [letter for _, _, letter in letters[:count]]


def requeue(client: redis.Redis, ident: str) -> list[str]:
    """Put dead letters back on the outbox: ``ident`` is a dead letter's id
    (``<partition>:<stream id>``) or a message key."""
    found = _DEAD_ID.fullmatch(ident)
    if found:
        return _requeue_ids(client, [(int(found[1]), found[2])])
    return _requeue_ids(client, [(p, i) for p, i, f in _all_dead(client) if f.get("k") == ident])


def requeue_all(client: redis.Redis) -> list[str]:
    """Put every dead letter back on the outbox; returns their message keys."""
    return _requeue_ids(client, [(p, i) for p, i, _ in _all_dead(client)])


def _all_dead(client: redis.Redis) -> Iterator[tuple[int, str, dict[str, str]]]:
    with client.pipeline(transaction=False) as pipe:  # each partition's first page at once
        for p in range(keys.PARTITIONS):
            pipe.xrange(keys.dead(p), count=_PAGE)
        pages = pipe.execute()
    for p, page in enumerate(pages):
        read = entries(page)
        while True:
            yield from ((p, i, f) for i, f in read)
            if len(read) < _PAGE:
                break
            read = entries(client.xrange(keys.dead(p), min="(" + read[-1][0], count=_PAGE))


def _requeue_ids(client: redis.Redis, ids: list[tuple[int, str]]) -> list[str]:
    script = scripts_for(client)["outbox_requeue"]
    done = []
    for p, dead_id in ids:
        if not 0 <= p < keys.PARTITIONS:
            continue
        read = entries(client.xrange(keys.dead(p), dead_id, dead_id))
        if not read or not read[0][1].get("k"):
            continue
        k = read[0][1]["k"]
        answer = text(
            script(
                keys=[
                    keys.dead(p),
                    keys.outbox(p),
                    keys.sms_counts(p),
                    keys.retry(p),
                    keys.message(p, k),
                ],
                args=[dead_id, k, now()],
            )
        )
        if answer:
            done.append(answer)
    return done


def _stream_time(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq)
