"""Pacing sends to the provider's rate, apart from reading and recording them."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Spaces sends at most ``rate`` per second across this process's threads (0: no cap)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait for this send's turn."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            turn = max(now, self._next)
            self._next = turn + self.interval
        if turn > now:
            time.sleep(turn - now)  # pacing the provider, not waiting for a condition
