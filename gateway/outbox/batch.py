"""Group commit: the sends that finish while one record is written are written by the next."""

from __future__ import annotations

import threading
from collections.abc import Callable


class GroupCommit:
    """Writes what several threads hand in with one call: whoever finds the writer free
    writes everything waiting, and the others return once their item is written.

    A thread arriving while a write is under way waits for that one and at most one more, so
    nothing waits for a timer and a lone item is written at once. ``write(item)`` returns only
    once the item is written, and raises what the write of its batch raised.
    """

    def __init__(self, write_many: Callable[[list], None], most: int = 256):
        self._write_many = write_many
        self._most = most  # a script's arguments are unpacked on Lua's stack
        self._waiting: list[_Ticket] = []
        self._queue = threading.Lock()
        self._writer = threading.Lock()

    def write(self, item) -> None:
        """Write ``item``, together with whatever other threads are handing in."""
        ticket = _Ticket(item)
        with self._queue:
            self._waiting.append(ticket)
        while not ticket.done:
            with self._writer:
                if ticket.done:
                    break
                self._write_batch()
        if ticket.error is not None:
            raise ticket.error

    def _write_batch(self) -> None:
        with self._queue:
            batch = self._waiting[: self._most]
            del self._waiting[: self._most]
        error = None
        try:
            self._write_many([t.item for t in batch])
        except BaseException as exc:  # each waiter hears of it; none waits forever
            error = exc
        for t in batch:
            t.error, t.done = error, True


class _Ticket:
    __slots__ = ("item", "done", "error")

    def __init__(self, item):
        self.item, self.done, self.error = item, False, None
