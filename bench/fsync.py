"""What ``appendfsync always`` costs a booking, against ``everysec``, in the same run.

One private redis-server with ``appendonly yes`` on a real disk; ``store.book`` called N times
per round, one client after another (what one webhook waits) and from 8 threads (what a busy
server gets through), with ``CONFIG SET appendfsync`` switched between rounds, which alternate
so that a machine shared with other work weighs on both alike. Prints a table, the ratios and
the load average; the figures go into bench/README.md by hand.

    python bench/fsync.py [--bookings 1000] [--rounds 3] [--dir DIR]
"""

# ruff: noqa: E402  (the path must be set before the project's modules are imported)
from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from bench.booking import mobile, person
from bench.common import SECRET_KEY
from bench.data import BIRTH_YEAR, load_all, race
from flows import lifecycle
from gateway.config import Settings
from gateway.store import Store
from tests.servers import free_port, redis_server

MODES = ("everysec", "always")
THREADS = 8


def start_redis(workdir: str) -> tuple[subprocess.Popen, redis.Redis]:
    """A redis-server persisting every write to its AOF in ``workdir``."""
    port = free_port()
    proc = redis_server(port, workdir, "--appendonly", "yes", "--appendfsync", "everysec")
    client = redis.Redis(port=port, socket_timeout=30, max_connections=None)
    for _ in range(400):
        try:
            client.ping()
            return proc, client
        except redis.ConnectionError:
            time.sleep(0.025)  # the server starting up
    raise RuntimeError("redis-server did not start")


def filesystem(path: str) -> str:
    """The type of the filesystem holding ``path`` (tmpfs would make fsync free)."""
    best, kind = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if os.path.realpath(path).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


def book(store: Store, sessions: list[str], n: int) -> float:
    """One booking for a new beneficiary of a new mobile; its latency in seconds."""
    started = time.perf_counter()
    outcome = store.book(
        mobile=mobile(n, 71),
        name=person(n),
        birth_year=BIRTH_YEAR,
        session_id=sessions[n % len(sessions)],
        slot=n % 2,
    )
    elapsed = time.perf_counter() - started
    if not outcome.ok:
        raise RuntimeError(f"booking {n} refused: {outcome.status}")
    return elapsed


def measure(store: Store, sessions: list[str], numbers, threads: int) -> dict:
    """Book every number in ``numbers`` with ``threads`` clients: rate and latencies."""
    numbers = list(numbers)
    started = time.perf_counter()
    if threads == 1:
        waits = [book(store, sessions, n) for n in numbers]
    else:
        with ThreadPoolExecutor(threads) as pool:
            waits = list(pool.map(lambda n: book(store, sessions, n), numbers))
    seconds = time.perf_counter() - started
    waits.sort()
    return {
        "per_s": len(numbers) / seconds,
        "p50_ms": 1000 * waits[len(waits) // 2],
        "p99_ms": 1000 * waits[int(len(waits) * 0.99)],
    }


def run(bookings: int, rounds: int, workdir: str) -> dict:
    """Alternate the modes for ``rounds`` rounds; the median of each figure per mode."""
    proc, client = start_redis(workdir)
    try:
        store = Store(client, Settings(secret_key=SECRET_KEY, timezone="Asia/Kolkata"), lifecycle)
        data = race(
            store.now().date() + timedelta(days=1),
            sessions=7,
            slots=2,
            capacity=10 * bookings * rounds,
        )
        load_all(store, data)
        sessions = [s["id"] for s in data["sessions"]]
        counter = itertools.count()
        found: dict = {(mode, t): [] for mode in MODES for t in (1, THREADS)}
        for _ in range(rounds):
            for mode in MODES:
                client.config_set("appendfsync", mode)
                for threads in (1, THREADS):
                    numbers = [next(counter) for _ in range(bookings)]
                    found[mode, threads].append(measure(store, sessions, numbers, threads))
        return {
            key: {f: statistics.median(r[f] for r in runs) for f in runs[0]}
            for key, runs in found.items()
        }
    finally:
        proc.terminate()
        proc.wait(10)


def report(results: dict, bookings: int, rounds: int, workdir: str) -> str:
    """The table, the ratios and the machine's load, as Markdown."""
    lines = [
        f"{bookings} bookings per round, {rounds} rounds alternating, AOF on "
        f"{filesystem(workdir)}; load average {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores at the end",
        "",
        "| appendfsync | clients | bookings/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for (mode, threads), r in results.items():
        lines.append(
            f"| {mode} | {threads} | {r['per_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        )
    lines.append("")
    for threads in (1, THREADS):
        ratio = results["always", threads]["per_s"] / results["everysec", threads]["per_s"]
        lines.append(f"always / everysec, {threads} client(s): {ratio:.2f}x the bookings/s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the AOF goes (a real disk)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="tikaline-fsync-", dir=args.dir)
    try:
        print(report(run(args.bookings, args.rounds, workdir), args.bookings, args.rounds, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
