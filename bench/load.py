"""A closed-loop load generator: N asyncio clients, each playing scripts over HTTP.

A *script* is a generator that yields the form of its next request and is sent back
``(status, body)``; it returns True when it reached its goal (a booking made, a dose
recorded). The same scripts run in-process against Flask's test client to count Redis round
trips, so what is timed here and what is counted there are the same conversations.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import aiohttp

from bench.common import latency_ms, own_cpu_seconds

Script = Generator[dict, tuple[int, str], bool]
DRAIN_S = 15.0


@dataclass
class LoadResult:
    """What one load level did: requests, scripts finished, errors and latencies."""

    clients: int
    seconds: float = 0.0
    requests: int = 0
    scripts: int = 0
    goals: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        """The figures that go into results.json."""
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "rate": round(self.rate, 1),
            "scripts_done": self.scripts,
            "goals": self.goals,
            "errors": self.errors,
            **latency_ms(self.latencies),
            # CPU per request, ms: the server's cost, free of load-generator saturation.
            "server_cpu_ms": round(1000 * self.server_cpu / self.requests, 3)
            if self.requests
            else None,
            "client_cpu_share": round(self.client_cpu / self.seconds, 2) if self.seconds else None,
            **({"first_error": self.first_error} if self.first_error else {}),
        }


def merge(parts: list[LoadResult]) -> LoadResult:
    """Several runs at one level as one result (runs alternate with the baseline's, so both
    see the same drift in machine load)."""
    total = LoadResult(parts[0].clients)
    for part in parts:
        for name in (
            "seconds",
            "requests",
            "scripts",
            "goals",
            "errors",
            "client_cpu",
            "server_cpu",
        ):
            setattr(total, name, getattr(total, name) + getattr(part, name))
        total.latencies.extend(part.latencies)
        total.first_error = total.first_error or part.first_error
    return total


async def _client(session, url, factory, ids, deadline, budget, result: LoadResult) -> None:
    # No script starts after the deadline; one under way finishes (a journey cut short would
    # never book), unless it runs past DRAIN_S more.
    hard_stop = deadline + DRAIN_S
    while time.monotonic() < deadline and result.requests < budget:
        script = factory(next(ids))
        try:
            form = next(script)
        except StopIteration:
            continue
        while True:
            started = time.perf_counter()
            try:
                async with session.post(url, data=form) as response:
                    body = await response.text()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                result.errors += 1
                result.first_error = result.first_error or repr(exc)
                break
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            if status != 200:
                result.errors += 1
                result.first_error = result.first_error or f"HTTP {status}: {body[:200]}"
                break
            if time.monotonic() >= hard_stop:
                break
            try:
                form = script.send((status, body))
            except StopIteration as done:
                result.scripts += 1
                result.goals += bool(done.value)
                break


async def _run(url, clients, factory, seconds, budget, server_cpu) -> LoadResult:
    result = LoadResult(clients)
    ids = itertools.count()
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        cpu0, server0, t0 = own_cpu_seconds(), server_cpu(), time.monotonic()
        deadline = t0 + seconds
        await asyncio.gather(
            *(_client(session, url, factory, ids, deadline, budget, result) for _ in range(clients))
        )
        result.seconds = time.monotonic() - t0
        result.client_cpu = own_cpu_seconds() - cpu0
        result.server_cpu = server_cpu() - server0
    return result


def run(
    url: str,
    clients: int,
    factory: Callable[[int], Script],
    *,
    seconds: float,
    budget: int = 10**9,
    server_cpu: Callable[[], float] = lambda: 0.0,
) -> LoadResult:
    """Play scripts from ``factory(n)`` with ``clients`` concurrent clients for ``seconds``
    (or until ``budget`` requests), and time every request."""
    return asyncio.run(_run(url, clients, factory, seconds, budget, server_cpu))


def play(client, path: str, script: Script) -> tuple[int, bool]:
    """Play one script through a Flask test client; returns (requests, goal reached)."""
    requests = 0
    try:
        form = next(script)
        while True:
            response = client.post(path, data=form)
            requests += 1
            form = script.send((response.status_code, response.get_data(as_text=True)))
    except StopIteration as done:
        return requests, bool(done.value)
