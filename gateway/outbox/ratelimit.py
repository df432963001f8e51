"""The fleet's send rate: ``OUTBOX_RATE`` sends per second across every worker on one Redis.

A token bucket in Redis (``keys.SEND_RATE``, script ``outbox_rate.lua``) holds up to a fifth
of a second's worth of sends and refills at the rate. A worker takes tokens in small batches
(about a tenth of a second's worth, at most one per sender) and spends them locally, so pacing
costs a round trip per batch, not per SMS. Tokens a worker holds are never handed back, so
the fleet's sends over any span stay within the rate times the span, plus the bucket's fifth
of a second, plus what each worker holds: the fleet never goes faster than asked (a burst
after a quiet spell is a fifth of a second's worth), and a worker that stops just wastes a
few tokens.

The bucket runs on the workers' clocks (epoch milliseconds, passed in): a clock behind the
last caller's refills nothing until it catches up, so skew between machines slows the fleet
a little, never speeds it up.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import redis

from gateway.logs import clean
from gateway.store import keys
from gateway.store.scripts import scripts_for

log = logging.getLogger(__name__)


class FleetRate:
    """At most ``rate`` sends per second for the whole fleet (0: no cap); ``acquire()`` waits
    for this send's token."""

    def __init__(
        self,
        client: redis.Redis,
        rate: float,
        *,
        most: int = 8,
        clock: Callable[[], float] = time.time,
        stopping: Callable[[], bool] = lambda: False,
    ):
        self.rate = rate if rate and rate > 0 else 0.0
        # Tokens asked for at once: a tenth of a second's worth, at most ``most``.
        self.batch = max(1, min(most, math.ceil(self.rate / 10)))
        self.capacity = max(float(self.batch), self.rate / 5)  # a fifth of a second's worth
        self.clock = clock
        self.stopping = stopping
        self._script = scripts_for(client)["outbox_rate"]
        self._held = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait for this send's turn (pacing, not waiting for a condition: ``time.sleep``)."""
        if not self.rate:
            return
        with self._lock:  # one thread asks Redis; the others wait for what it brings
            while self._held < 1:
                granted, wait = self._take()
                self._held += granted
                if not granted:
                    time.sleep(wait)
            self._held -= 1

    def _take(self) -> tuple[int, float]:
        # (tokens granted, seconds to wait when none). With Redis away a send waits for it,
        # like the rest of the worker, unless the worker is stopping: then the sends in
        # flight go out (at most one per sender: no new entry is read meanwhile).
        try:
            granted, wait_ms = self._script(
                keys=[keys.SEND_RATE],
                args=[self.rate, self.capacity, self.batch, int(self.clock() * 1000)],
            )
        except redis.RedisError as exc:
            if self.stopping():
                return 1, 0.0
            log.warning("event=outbox_rate_unavailable error=%s", clean(str(exc), 200))
            return 0, 1.0
        return int(granted), int(wait_ms) / 1000
