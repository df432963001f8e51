"""What the worker writes about a message, each in one script on the message's partition: its
start, its send (many at once), a retry, a dead letter, a promotion; kept apart from the loop
so the status hash is described once.

A message lives in the partition of the stream it was queued on: its status hash is
``keys.message(partition, k)``. Every script gets its keys in KEYS, all of one partition; the
worker reads first what names them (the entries, the due retries) and the script checks that
what was read still holds. Calls for several partitions go in one pipeline (one round trip,
each script atomic on its own partition).

A message's status hash holds status, attempts, timestamps, provider id, last error and the
delivery report, never the text's fields (phone, template, language, params): those stay on
the stream entry, and are copied into the hash only while a retry or a dead letter needs
them. Every value stays within ``hash-max-listpack-value``, so the hash stays a listpack.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from redis.cluster import RedisCluster
from redis.exceptions import AskError, NoScriptError, TryAgainError

from gateway.store import keys, replies
from gateway.store.scripts import Scripts

KEEP_SECONDS = 30 * 24 * 3600  # how long a sent message's status is kept
# Delivery reports come within a message's validity period (hours to a few days), so the
# provider id → message key lookup need not live as long as the status: a week is ample.
REPORT_SECONDS = 7 * 24 * 3600
SMALL = 64  # bytes: Redis's hash-max-listpack-value; longer values make a hash a hashtable
# One entry read from a partition's stream: (partition, entry id, fields).
Taken = tuple[int, str, dict[str, str]]
# One sent record: (partition, entry id, message key, provider id, sent at, detail).
Sent = tuple[int, str, str, str, str, str]
# One script call: (script name, keys, args).
Call = tuple[str, list, list]


def now() -> str:
    """The time a record carries, ISO in UTC to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def short(text: str) -> str:
    """``text`` cut to fit a status hash: a longer value would make it a hashtable."""
    return text.encode()[:SMALL].decode("utf-8", "ignore")


def message_key(entry_id: str, entry: dict[str, str]) -> str:
    """The message an entry is about (an entry without one is its own message)."""
    return entry.get("k") or f"entry:{entry_id}"


def run(
    client: redis.Redis,
    scripts: Scripts,
    calls: list[Call],
    then: Callable[[redis.client.Pipeline], None] | None = None,
) -> list:
    """Run script ``calls`` in one round trip (one per master on a cluster), then what
    ``then`` adds to a pipeline; the scripts' answers."""
    if isinstance(client, RedisCluster):
        answers = _on_masters(client, scripts, calls)
        if then:
            with client.pipeline(transaction=False) as pipe:
                then(pipe)
                _raise_any(pipe.execute(raise_on_error=False))
    else:
        with client.pipeline(transaction=False) as pipe:
            _queue(pipe, scripts, calls)
            if then:
                then(pipe)
            answers = pipe.execute(raise_on_error=False)
        _raise_any(answers[len(calls) :])
    return _settled(scripts, calls, answers[: len(calls)])


def _on_masters(client: RedisCluster, scripts: Scripts, calls: list[Call]) -> list:
    # redis-py runs no script in a cluster's pipeline: a pipeline per master, on its own
    # connection; a call the cluster redirects meanwhile is run again by _settled.
    by_master: dict[str, list[int]] = defaultdict(list)
    for i, (_, keys_, _) in enumerate(calls):
        by_master[client.get_node_from_key(keys_[0]).name].append(i)
    answers: list = [None] * len(calls)
    for indices in by_master.values():
        master = client.get_node_from_key(calls[indices[0]][1][0])
        with client.get_redis_connection(master).pipeline(transaction=False) as pipe:
            _queue(pipe, scripts, [calls[i] for i in indices])
            for i, answer in zip(indices, pipe.execute(raise_on_error=False), strict=True):
                answers[i] = answer
    return answers


def _queue(pipe: redis.client.Pipeline, scripts: Scripts, calls: list[Call]) -> None:
    for name, keys_, args in calls:
        pipe.evalsha(scripts[name].sha, len(keys_), *keys_, *args)


def _settled(scripts: Scripts, calls: list[Call], answers: list) -> list:
    # Each call Redis could not run where it went is run again alone: that loads a script
    # Redis does not know yet, and follows a cluster's redirection.
    settled = []
    for (name, keys_, args), answer in zip(calls, answers, strict=True):
        if isinstance(answer, (NoScriptError, AskError, TryAgainError)):  # MovedError too
            answer = scripts[name](keys=keys_, args=args)
        elif isinstance(answer, Exception):
            raise answer
        settled.append(answer)
    return settled


def _raise_any(answers: list) -> None:
    for answer in answers:
        if isinstance(answer, Exception):
            raise answer


def begin(client: redis.Redis, scripts: Scripts, consumer: str, taken: list[Taken]) -> list:
    """Start entries ``consumer`` read: [(partition, id, fields, state)]; state is the attempt
    to send, 0 for a message already sent (acknowledged), -1 for a malformed entry, -2 for an
    entry another worker took over meanwhile."""
    if not taken:
        return []
    by_partition: dict[int, list[Taken]] = defaultdict(list)
    for item in taken:
        by_partition[item[0]].append(item)
    calls: list[Call] = []
    for p, items in by_partition.items():
        keys_ = [keys.outbox(p)]
        args: list = [keys.OUTBOX_GROUP, consumer, now()]
        for _, entry_id, entry in items:
            keys_.append(keys.message(p, message_key(entry_id, entry)))
            args += [entry_id, entry.get("to", ""), entry.get("t", "")]
        calls.append(("outbox_begin", keys_, args))
    states = run(client, scripts, calls)
    return [
        (p, entry_id, entry, int(state))
        for items, answer in zip(by_partition.values(), states, strict=True)
        for (p, entry_id, entry), state in zip(items, answer, strict=True)
    ]


def sent(client: redis.Redis, scripts: Scripts, records: list[Sent]) -> None:
    """Record sends and acknowledge their entries: one script per partition, each keeping
    every record's provider id and acknowledgement together or not at all; then the provider
    id → message lookups, in the same round trip."""
    by_partition: dict[int, list[Sent]] = defaultdict(list)
    for record in records:
        by_partition[record[0]].append(record)
    calls: list[Call] = []
    for p, items in by_partition.items():
        keys_ = [keys.outbox(p), keys.sms_counts(p)]
        args: list = [keys.OUTBOX_GROUP, KEEP_SECONDS]
        for _, entry_id, k, message_id, sent_at, detail in items:
            keys_.append(keys.message(p, k))
            args += [entry_id, message_id, sent_at, detail]
        calls.append(("outbox_sent", keys_, args))

    def lookups(pipe: redis.client.Pipeline) -> None:
        # Each provider id's lookup lives in that id's partition, so it cannot be written by
        # the script. Should it be lost (the worker dies between the two), only the message's
        # delivery reports are: they are logged as for an unknown id, and the message stays
        # "sent". "<partition> <message key>" says where the message's status is.
        for p, _, k, message_id, _, _ in records:
            if message_id:
                pipe.set(keys.provider_message(message_id), f"{p} {k}", ex=REPORT_SECONDS)

    run(client, scripts, calls, lookups)


def retry(scripts: Scripts, p: int, entry_id: str, entry: dict, detail: str, due: float) -> None:
    """Acknowledge a failed attempt and park the message in its partition's retry set until
    ``due`` (epoch seconds)."""
    k = message_key(entry_id, entry)
    scripts["outbox_retry"](
        keys=[keys.message(p, k), keys.retry(p), keys.outbox(p)],
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


def dead(scripts: Scripts, p: int, entry_id: str, entry: dict, error: str) -> None:
    """Make the message a dead letter with ``error``, acknowledging its entry."""
    k = message_key(entry_id, entry)
    scripts["outbox_dead"](
        keys=[keys.message(p, k), keys.dead(p), keys.outbox(p), keys.sms_counts(p)],
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


def due_retries(client: redis.Redis, due_ms: int, most: int = 100) -> dict[int, list[str]]:
    """The message keys due by ``due_ms`` in each partition's retry set (one round trip)."""
    with client.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.zrangebyscore(keys.retry(p), "-inf", due_ms, start=0, num=most)
        answers = pipe.execute()
    return {p: [replies.text(k) for k in due] for p, due in enumerate(answers) if due}


def promote(client: redis.Redis, scripts: Scripts, due: dict[int, list[str]], due_ms: int) -> None:
    """Put the retries ``due`` (read by ``due_retries``) back on their streams, if still due."""
    calls: list[Call] = [
        (
            "outbox_promote",
            [keys.retry(p), keys.outbox(p), *(keys.message(p, k) for k in ks)],
            [due_ms, *ks],
        )
        for p, ks in due.items()
    ]
    if calls:
        run(client, scripts, calls)
