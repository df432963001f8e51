"""Where a worker finds work: every partition's outbox stream, read without ever holding more
entries than it has free senders.

A Redis Cluster serves a multi-stream read only within one slot, and each partition is its own
slot, so there is no single blocking read over all streams. Instead a worker **sweeps**: one
pipeline of ``XLEN`` over every partition's stream (cheap: no entry is read, and an acknowledged
entry is deleted, so a stream's length is what waits in it, being sent or not). The partitions
found holding entries are queued, and each **read** is one pipeline of non-blocking
``XREADGROUP`` over the next few of them, the free senders shared out as each read's
``COUNT``: one busy partition gets them all, many partitions one each, in turn. A partition
that gives less than it was asked is drained and leaves the queue; one that gives all stays for
the next turn. A sweep runs again as soon as the queue is empty, and every ``idle`` seconds while
it is not, so a partition newly holding work never waits behind a busy one for longer.

When a sweep finds nothing the worker's loop waits ``idle`` seconds (on its stop event) before
the next: an idle worker costs one pipeline of ``PARTITIONS`` ``XLEN`` per ``idle`` seconds,
and a message queued meanwhile waits up to that long for its first attempt.

Entries a dead worker left pending stay in its stream, so only partitions the last sweep saw
holding entries are searched: one pipeline of ``XPENDING … IDLE`` says which hold an entry
pending long enough, and those are taken over with ``XAUTOCLAIM``, one stream after another,
again never taking more entries than there are free senders.

Consumer groups are created lazily, in one round trip for all the streams a sweep first sees
holding entries (and again for a stream that answers ``NOGROUP``, deleted and queued to since),
from the start of the stream (``0``: what was queued before any worker ran is sent too).
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque

import redis

from gateway.logs import clean
from gateway.outbox.records import Taken
from gateway.store import keys, replies

log = logging.getLogger(__name__)
MIN_GAP = 0.02  # seconds between two sweeps while work keeps coming in a trickle


class Partitions:
    """One worker's view of the partitions' streams: which to read next, and how much."""

    def __init__(self, client: redis.Redis, consumer: str, idle: float = 0.25):
        self.r = client
        self.consumer = consumer
        self.idle = idle
        start = random.randrange(keys.PARTITIONS)  # workers start their turns apart
        self.order = [(start + i) % keys.PARTITIONS for i in range(keys.PARTITIONS)]
        self._queue: deque[int] = deque()  # partitions believed to hold unread entries
        self._holding: list[int] = []  # partitions whose stream held entries at the last sweep
        self._swept_at = -1e9
        self._found = 0  # entries read since the last sweep
        self._grouped: set[int] = set()  # partitions whose stream has the group, as far as known
        self._claim: deque[int] = deque()  # partitions still to search for abandoned entries
        self._claim_from: dict[int, str] = {}  # XAUTOCLAIM cursor per partition

    # -- new entries ----------------------------------------------------------------------------

    def pause(self) -> float:
        """Seconds to wait before reading again: none while partitions are queued; after a
        sweep that found nothing, the rest of ``idle``; after one that found work, a moment."""
        if self._queue:
            return 0.0
        gap = MIN_GAP if self._found else self.idle
        return max(0.0, self._swept_at + gap - time.monotonic())

    def read(self, budget: int) -> list[Taken]:
        """At most ``budget`` new entries, read for this worker from the partitions' streams."""
        due = time.monotonic() >= self._swept_at + self.idle
        if (self._queue and due) or (not self._queue and self.pause() == 0):
            self.sweep()
        plan = self._plan(budget)
        if not plan:
            return []
        with self.r.pipeline(transaction=False) as pipe:
            for p, count in plan:
                pipe.xreadgroup(
                    keys.OUTBOX_GROUP, self.consumer, {keys.outbox(p): ">"}, count=count
                )
            answers = pipe.execute(raise_on_error=False)
        taken: list[Taken] = []
        failed: Exception | None = None
        for (p, count), answer in zip(plan, answers, strict=True):
            try:
                read = self._entries(p, answer)
            except redis.RedisError as exc:  # the others' entries are this worker's now
                failed = failed or exc
                continue
            taken += [(p, i, f) for i, f in read]
            if len(read) == count:
                self._queue.append(p)  # it may hold more: its turn comes again
        if failed and not taken:
            raise failed
        if failed:
            log.warning("event=outbox_read_failed error=%s", clean(str(failed), 200))
        self._found += len(taken)
        return taken

    def sweep(self) -> None:
        """Find the partitions whose streams hold entries (one round trip), and queue them."""
        with self.r.pipeline(transaction=False) as pipe:
            for p in self.order:
                pipe.xlen(keys.outbox(p))
            lengths = pipe.execute()
        self._holding = [p for p, n in zip(self.order, lengths, strict=True) if n]
        self._create_groups([p for p in self._holding if p not in self._grouped])
        queued = set(self._queue)
        self._queue.extend(p for p in self._holding if p not in queued)
        self._swept_at, self._found = time.monotonic(), 0

    def _plan(self, budget: int) -> list[tuple[int, int]]:
        # The next partitions in turn, the budget shared out: each read's COUNT adds up to it.
        n = min(budget, len(self._queue))
        chosen = [self._queue.popleft() for _ in range(n)]
        if not chosen:
            return []
        each, extra = divmod(budget, n)
        return [(p, each + (i < extra)) for i, p in enumerate(chosen)]

    def _entries(self, p: int, answer) -> list[replies.Entry]:
        if _no_group(answer):  # the stream was deleted and queued to again
            self._create_groups([p])
            self._queue.append(p)  # read it next turn, from its start
            return []
        if isinstance(answer, Exception):
            raise answer
        return replies.group_read(answer)

    def _create_groups(self, partitions: list[int]) -> None:
        # Each stream's consumer group, from its first entry, the first time it holds any.
        if not partitions:
            return
        with self.r.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.xgroup_create(keys.outbox(p), keys.OUTBOX_GROUP, id="0", mkstream=True)
            answers = pipe.execute(raise_on_error=False)
        for answer in answers:
            if isinstance(answer, Exception) and "BUSYGROUP" not in str(answer):
                raise answer
        self._grouped.update(partitions)

    # -- entries left pending by a dead worker --------------------------------------------------

    def reclaim(self, budget: int, min_idle_ms: int) -> tuple[list[Taken], bool]:
        """Take over at most ``budget`` entries pending for ``min_idle_ms`` or more, searching
        the partitions that held entries at the last sweep; and whether the search is through
        (else it goes on where it stopped, next time)."""
        if not self._claim:
            if self._swept_at < 0:  # a worker just started: where do entries wait?
                self.sweep()
            self._claim.extend(self._abandoned(self._holding, min_idle_ms))
        taken: list[Taken] = []
        while self._claim and len(taken) < budget:
            p = self._claim[0]
            try:
                claimed, more = self._claim_one(p, budget - len(taken), min_idle_ms)
            except redis.RedisError:
                if not taken:
                    raise
                break  # what was claimed is this worker's now: send it, search on later
            taken += [(p, i, f) for i, f in claimed]
            if not more:
                self._claim.popleft()
        return taken, not self._claim

    def _abandoned(self, partitions: list[int], min_idle_ms: int) -> list[int]:
        # Which of them have an entry pending that long (one round trip, nothing claimed).
        with self.r.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.xpending_range(
                    keys.outbox(p), keys.OUTBOX_GROUP, "-", "+", 1, idle=min_idle_ms
                )
            answers = pipe.execute(raise_on_error=False)
        found = []
        for p, answer in zip(partitions, answers, strict=True):
            if _no_group(answer):
                self._create_groups([p])
            elif isinstance(answer, Exception):
                raise answer
            elif answer:
                found.append(p)
        return found

    def _claim_one(self, p: int, count: int, min_idle_ms: int) -> tuple[list[replies.Entry], bool]:
        try:
            cursor, claimed, *_ = self.r.xautoclaim(
                keys.outbox(p),
                keys.OUTBOX_GROUP,
                self.consumer,
                min_idle_ms,
                start_id=self._claim_from.get(p, "0-0"),
                count=count,
            )
        except redis.ResponseError as exc:
            if not _no_group(exc):
                raise
            self._create_groups([p])
            return [], False
        cursor = replies.text(cursor)
        if cursor == "0-0":
            self._claim_from.pop(p, None)
        else:
            self._claim_from[p] = cursor
        return replies.entries(claimed), cursor != "0-0"


def _no_group(answer) -> bool:
    """Whether a stream answered that it has no consumer group (deleted, then queued to)."""
    return isinstance(answer, redis.ResponseError) and "NOGROUP" in str(answer)
