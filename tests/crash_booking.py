"""A booking process that dies (os._exit, no cleanup) right after one of its steps.

``python -m tests.crash_booking URL EPOCH STEP MOBILE NAME SESSION_ID``: the store's clock
stands at EPOCH; STEP is ``reserve``, ``book`` or ``confirm`` (see gateway/store/booking.py).
Used by tests/test_booking_crash.py to leave exactly what a crash between two steps leaves.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from flows import lifecycle
from gateway.config import Settings
from gateway.store import Store, booking
from gateway.store.redisconn import connect


def main(url: str, epoch: str, step: str, mobile: str, name: str, session_id: str) -> None:
    settings = Settings(
        redis_url=url,
        instance_path=Path(tempfile.mkdtemp()),
        secret_key="test-secret",
        timezone="Asia/Kolkata",
        clock=lambda: float(epoch),
    )
    store = Store(connect(url, settings.instance_path), settings, lifecycle)
    steps = {"reserve": "_reserve", "book": "_book_at_centre", "confirm": "_confirm"}
    real = getattr(booking, steps[step])

    def then_die(*args, **kwargs):
        real(*args, **kwargs)
        os._exit(137)  # as a SIGKILL would: nothing after this step runs

    setattr(booking, steps[step], then_die)
    store.book(mobile=mobile, name=name, birth_year=1990, session_id=session_id, slot=0)
    sys.exit("the process was to die after " + step)


if __name__ == "__main__":
    main(*sys.argv[1:])
