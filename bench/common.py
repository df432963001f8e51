"""What every benchmark shares: a fresh redis-server, the app under gunicorn, Redis counters,
CPU clocks, percentiles and the printed table.

Everything runs on loopback and stops by itself; servers are started on free ports and torn
down by context managers, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from tests.servers import free_port, redis_server

ROOT = Path(__file__).resolve().parents[1]
SECRET_KEY = "bench-secret-key-not-for-production"
WEBHOOK_TOKEN = "bench-token"


def _wait(predicate, what: str, timeout: float = 20.0) -> None:
    # Polling a server that is starting up is the one place a short wait is the right tool.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s")


class RedisServer:
    """A private redis-server (``binary``, else the newest on PATH) on a free port, without
    persistence, removed on exit."""

    def __init__(self, binary: str | None = None):
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tikaline-bench-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=30)

    def __enter__(self) -> RedisServer:
        self.proc = redis_server(self.port, self.dir, "--maxclients", "10000", binary=self.binary)

        def up() -> bool:
            try:
                return bool(self.client().ping())
            except redis.ConnectionError:
                return False

        _wait(up, "redis-server")
        return self

    def __exit__(self, *exc) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def flush(self) -> None:
        """Empty the server and forget its statistics, between measurements."""
        client = self.client()
        client.flushall()
        client.config_resetstat()


class Gunicorn:
    """An app under gunicorn on a free port: ``spec`` like ``app:create_app()``."""

    def __init__(
        self,
        spec: str,
        *,
        workers: int = 2,
        worker_class: str = "sync",
        threads: int = 1,
        env: dict | None = None,
    ):
        self.spec = spec
        self.workers = workers
        self.worker_class = worker_class
        self.threads = threads
        self.env = env or {}
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(
            prefix="tikaline-bench-gunicorn-", suffix=".log", delete=False
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Gunicorn:
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--no-control-socket",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--worker-class",
                self.worker_class,
                "--threads",
                str(self.threads),
                "--backlog",
                "2048",
                "--log-level",
                "warning",
                "--chdir",
                str(ROOT),
                self.spec,
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn {self.spec} exited: {self.tail()}")
            if len(self.worker_pids()) < self.workers:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return True
            return False

        _wait(up, f"gunicorn {self.spec}")
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        os.unlink(self.log.name)

    def tail(self, chars: int = 2000) -> str:
        """The end of gunicorn's log, to show why something failed."""
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-chars:]

    def worker_pids(self) -> list[int]:
        """The worker processes (children of the gunicorn master)."""
        if not self.proc:
            return []
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the workers have used so far."""
        return sum(process_cpu_seconds(pid) for pid in self.worker_pids())


_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process, from /proc (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def own_cpu_seconds() -> float:
    """CPU seconds of this process (the load generator), all threads."""
    t = os.times()
    return t.user + t.system


# -- Redis counters -----------------------------------------------------------------------------


@dataclass
class RedisSnapshot:
    """What Redis reports about itself at one moment."""

    commands: dict[str, int]
    cpu: float
    memory: int

    @classmethod
    def take(cls, client: redis.Redis | RedisCluster) -> RedisSnapshot:
        """The server's figures; on a cluster, added up over its masters (a cluster client
        asks INFO of one node unless told otherwise)."""
        if isinstance(client, RedisCluster):
            nodes = [client.get_redis_connection(n) for n in client.get_primaries()]
            return cls.added(cls.take(node) for node in nodes)
        stats = client.info("commandstats")
        commands = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        cpu = client.info("cpu")
        memory = client.info("memory")["used_memory"]
        return cls(commands, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), memory)

    @classmethod
    def added(cls, snapshots: Iterable[RedisSnapshot]) -> RedisSnapshot:
        """Several servers' snapshots as one."""
        total = cls({}, 0.0, 0)
        for s in snapshots:
            for k, v in s.commands.items():
                total.commands[k] = total.commands.get(k, 0) + v
            total.cpu += s.cpu
            total.memory += s.memory
        return total

    def since(self, before: RedisSnapshot) -> RedisDelta:
        # The snapshots' own INFO calls are not the workload's: leave them out.
        calls = {
            k: v - before.commands.get(k, 0)
            for k, v in self.commands.items()
            if k != "info" and v - before.commands.get(k, 0) > 0
        }
        return RedisDelta(calls, self.cpu - before.cpu, self.memory - before.memory)


@dataclass
class RedisDelta:
    """Commands (script-internal ones included), CPU seconds and memory spent between two
    snapshots."""

    calls: dict[str, int]
    cpu: float
    memory: int

    @classmethod
    def total(cls, deltas: list[RedisDelta]) -> RedisDelta:
        """Several deltas added up."""
        calls: dict[str, int] = {}
        for d in deltas:
            for k, v in d.calls.items():
                calls[k] = calls.get(k, 0) + v
        return cls(calls, sum(d.cpu for d in deltas), sum(d.memory for d in deltas))

    @property
    def commands(self) -> int:
        return sum(self.calls.values())

    def top(self, n: int = 6) -> dict[str, int]:
        return dict(sorted(self.calls.items(), key=lambda kv: -kv[1])[:n])


class RoundTrips:
    """Counts client round trips to Redis made in this process: one per command sent on its
    own, one per pipeline, one per EVALSHA (and one more if it falls back to EVAL).

    redis-py writes every request, single command or whole pipeline, with one
    ``send_packed_command`` call, so wrapping that method counts exactly the round trips.
    """

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()
        self._original = None

    def __enter__(self) -> RoundTrips:
        from redis.connection import AbstractConnection

        self._original = original = AbstractConnection.send_packed_command
        counter = self

        def counting(conn, command, check_health=True):
            with counter._lock:
                counter.count += 1
            return original(conn, command, check_health)

        AbstractConnection.send_packed_command = counting
        return self

    def __exit__(self, *exc) -> None:
        from redis.connection import AbstractConnection

        AbstractConnection.send_packed_command = self._original


# -- latency and tables ---------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def latency_ms(latencies: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of latencies given in seconds."""
    values = sorted(latencies)
    return {
        f"p{int(q * 100)}_ms": round(percentile(values, q) * 1000, 2) for q in (0.5, 0.95, 0.99)
    } | {"max_ms": round(values[-1] * 1000, 2) if values else float("nan")}


def knee(levels: list[dict], key: str = "rate", share: float = 0.9) -> dict:
    """The lowest concurrency that reaches ``share`` of the best throughput: past it, more
    clients only add queueing delay."""
    best = max(level[key] for level in levels)
    return next(level for level in levels if level[key] >= share * best)


@dataclass
class Table:
    """Rows printed as an aligned text table (also used for the README)."""

    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)

    def add(self, *values) -> None:
        self.rows.append(list(values))

    def render(self) -> str:
        cells = [self.columns] + [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [f"## {self.title}", ""]
        for n, row in enumerate(cells):
            padded = (c.ljust(w) for c, w in zip(row, widths, strict=True))
            lines.append("| " + " | ".join(padded) + " |")
            if n == 0:
                lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        if value != value:  # NaN: not measured
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def log(message: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
