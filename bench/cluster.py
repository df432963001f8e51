"""Partitioned keys on one Redis and on a 3-master Redis Cluster, measured in one run.

    python bench/cluster.py                      # the full run, about 5 minutes on 2 cores
    python bench/cluster.py --quick              # every part with small numbers
    python bench/cluster.py --markdown /tmp/c.md # also the README section

On one private redis-server and on a private cluster of 3 masters (both started from the
machine's redis-server by ``tests/servers.py``, both up at once, taking turns phase by phase so
that a shared machine's drift weighs on both alike) it measures:

1. **Redis CPU per operation**, from INFO before and after (``used_cpu_sys`` +
   ``used_cpu_user``, and ``commandstats``) added up over every master, less Redis's own idle
   CPU over the same wall time (an idle window of the same length follows each measured one):
   per USSD hop and per whole USSD booking (the bench's booking journeys played through the
   real app in this process, then their code SMS sent by an outbox ``Worker`` through the real
   SDK to the local fake API), per SMS sent (less the idle worker's own polling, measured
   apart), and per availability search of a pincode with 10 centres × 7 days, among 50
   centres in all and among 5,000 others.
2. **Spread**: each master's share of the keys (DBSIZE), of the commands and of the Redis CPU
   of the USSD and SMS load.
3. **Capacity**: USSD bookings/s through the same gunicorn web processes on 1 and 3 masters,
   how busy each master was meanwhile, and from the costs per operation the masters CoWIN's
   peak would need (each kept at ``MASTER_BUDGET`` of a core).
4. **The race audit** (``bench/booking.py``): 2,000 clients, 0 overbooked, 0 duplicates, one
   code SMS per booking, every confirmed booking found.

It prints the tables and writes the ``cluster`` entry of ``bench/results.json``, keeping the
rest. Everything runs on 127.0.0.1 and stops by itself.
"""
# ruff: noqa: E402  (the path must be set before the project's modules are imported)

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from redis.crc import key_slot

from bench import booking, data, load, scripts
from bench.common import (
    ROOT,
    SECRET_KEY,
    WEBHOOK_TOKEN,
    Gunicorn,
    RedisServer,
    RoundTrips,
    Table,
    log,
)
from bench.outbound import CountingProvider
from gateway import redisurl
from gateway.config import Settings
from gateway.store import keys
from gateway.store.redisconn import disconnect, from_url
from gateway.store.scripts import sources
from tests.servers import SLOTS, cluster_binaries, redis_cluster

RESULTS = ROOT / "bench" / "results.json"
MASTERS = 3
MASTER_BUDGET = 0.7  # share of one core a master is kept at, leaving room for bursts
COWIN_HOPS_PER_S = 55_000  # CoWIN's peak requests/s, taken as USSD hops
COWIN_BOOKINGS_PER_DAY = 13_200_000
PEAK_FACTOR = 4  # the peak hour against the day's average
SEND_RATE = 1300  # OUTBOX_RATE for the SMS measured: CoWIN's SMS/s, above what one worker sends
IGNORED = {"info", "dbsize"}  # the snapshots' own commands


@dataclass(frozen=True)
class Scale:
    """How much of each thing one run does."""

    journeys: int = 400  # USSD booking journeys measured (9 hops each)
    extra_sms: int = 2000  # more code SMS queued by store bookings, so the SMS run is long
    searches: int = 2000
    other_centres: int = 5000  # centres elsewhere for the large search
    few_days: int = 7  # days of sessions of the 40 other centres of the small search
    race_clients: int = 2000
    race_processes: int = 4
    race_threads: int = 25
    capacity_clients: int = 16
    capacity_s: float = 12.0
    worker_idle_s: float = 6.0
    idle_cap_s: float = 20.0  # longest idle window; a longer load window scales it


SCALES = {
    "full": Scale(),
    "quick": Scale(
        journeys=120,
        extra_sms=500,
        searches=500,
        other_centres=1000,
        race_clients=400,
        capacity_s=4.0,
        worker_idle_s=2.0,
    ),
    "tiny": Scale(
        journeys=6,
        extra_sms=20,
        searches=20,
        other_centres=50,
        few_days=1,
        race_clients=60,
        race_processes=2,
        race_threads=4,
        capacity_clients=2,
        capacity_s=1.0,
        worker_idle_s=0.3,
        idle_cap_s=1.0,
    ),
}


# -- what Redis says about itself, master by master ------------------------------------------


@dataclass
class NodeStats:
    """One server at one moment: commands (calls, microseconds), CPU seconds, keys."""

    calls: dict[str, int]
    usec: dict[str, int]
    cpu: float
    keys: int

    @classmethod
    def take(cls, client: redis.Redis) -> NodeStats:
        stats = client.info("commandstats")
        cpu = client.info("cpu")
        names = {name.removeprefix("cmdstat_"): v for name, v in stats.items()}
        return cls(
            {k: int(v["calls"]) for k, v in names.items()},
            {k: int(v["usec"]) for k, v in names.items()},
            float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
            int(client.dbsize()),
        )


def _minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {
        k: v - before.get(k, 0)
        for k, v in after.items()
        if k not in IGNORED and v - before.get(k, 0) > 0
    }


@dataclass
class Spent:
    """What the masters spent over one measured window, and over an idle one as long."""

    wall: float
    cpu: list[float]  # CPU seconds per master over the window
    idle: list[float]  # per master, Redis's idle CPU over the same wall time
    calls: list[dict[str, int]]
    usec: list[dict[str, int]]
    keys: list[int]  # DBSIZE per master at the end
    polling: list[float] = field(default_factory=list)  # per master, others' background cost

    def net(self) -> list[float]:
        """CPU seconds per master that the measured work cost."""
        polling = self.polling or [0.0] * len(self.cpu)
        return [max(0.0, c - i - p) for c, i, p in zip(self.cpu, self.idle, polling, strict=True)]

    def total_calls(self) -> dict[str, int]:
        return _added(self.calls)

    def total_usec(self) -> dict[str, int]:
        return _added(self.usec)


def _added(per_master: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in per_master:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


class Masters:
    """A plain client of each master of the Redis (or cluster) at ``url``, ordered by port."""

    def __init__(self, url: str):
        self.url = url
        if redisurl.is_cluster(url):
            cluster = from_url(url)
            nodes = sorted((n.host, n.port) for n in cluster.get_primaries())
            disconnect(cluster)
            self.clients = [redis.Redis(host=h, port=p, socket_timeout=30) for h, p in nodes]
        else:
            self.clients = [redis.Redis.from_url(url, socket_timeout=30)]

    def __len__(self) -> int:
        return len(self.clients)

    def snapshot(self) -> list[NodeStats]:
        return [NodeStats.take(c) for c in self.clients]

    def flush(self) -> None:
        for c in self.clients:
            c.flushall()

    def slots(self) -> list[int]:
        """How many of the partitions each master serves (all of them on one Redis)."""
        if len(self.clients) == 1:
            return [keys.PARTITIONS]
        ranges = self.clients[0].cluster("SLOTS")  # [[first, last, [host, port, id], ...]]
        slots = [key_slot(f"{{p{p}}}".encode()) for p in range(keys.PARTITIONS)]
        owned = []
        for c in self.clients:
            port = c.connection_pool.connection_kwargs["port"]
            mine = [(a, b) for a, b, master, *_ in ranges if int(master[1]) == port]
            owned.append(sum(1 for s in slots if any(a <= s <= b for a, b in mine)))
        return owned

    def close(self) -> None:
        for c in self.clients:
            c.close()


def window(masters: Masters, work: Callable[[], object]) -> tuple[object, Spent]:
    """Run ``work`` between two snapshots of every master: what they spent meanwhile."""
    before = masters.snapshot()
    started = time.monotonic()
    result = work()
    wall = time.monotonic() - started
    after = masters.snapshot()
    return result, Spent(
        wall=wall,
        cpu=[a.cpu - b.cpu for a, b in zip(after, before, strict=True)],
        idle=[0.0] * len(after),
        calls=[_minus(a.calls, b.calls) for a, b in zip(after, before, strict=True)],
        usec=[_minus(a.usec, b.usec) for a, b in zip(after, before, strict=True)],
        keys=[a.keys for a in after],
    )


def measure(masters: Masters, work: Callable[[], object], idle_cap: float) -> tuple[object, Spent]:
    """``window``, then an idle window as long (at most ``idle_cap`` s, scaled up to the same
    wall time): what Redis spent on its own meanwhile is left out of ``Spent.net``."""
    result, spent = window(masters, work)
    spent.idle = [rate * spent.wall for rate in idle_cpu(masters, min(spent.wall, idle_cap))]
    return result, spent


def idle_cpu(masters: Masters, seconds: float) -> list[float]:
    """Each master's CPU seconds per second while nothing is asked of it."""
    before = masters.snapshot()
    started = time.monotonic()
    threading.Event().wait(seconds)  # a span of idleness is what is measured: nothing to await
    wall = time.monotonic() - started
    after = masters.snapshot()
    return [(a.cpu - b.cpu) / wall for a, b in zip(after, before, strict=True)]


# -- the operations -----------------------------------------------------------------------------


def _in_process_app(url: str, instance: str):
    from bench.run import in_process_app  # run.py imports this module lazily: no cycle

    return in_process_app(url, instance)


def play_journeys(app, count: int, series: int) -> dict:
    """``count`` USSD booking journeys through the app in this process: hops, bookings and
    the app's round trips to Redis."""
    client = app.test_client()
    path = f"/ussd?token={WEBHOOK_TOKEN}"
    hops = bookings = 0
    with RoundTrips() as trips:
        for n in range(count):
            done, booked = load.play(client, path, scripts.ussd_booking(n, series=series))
            hops += done
            bookings += booked
    return {"journeys": count, "hops": hops, "bookings": bookings, "round_trips": trips.count}


class OutboxWorker:
    """An outbox Worker (concurrency 8, the fleet's rate SEND_RATE) sending through the real
    SDK to the fake API, in a thread. Its client connects when it is made (on a cluster:
    CLUSTER SLOTS, COMMAND), so a measured window holds only what sending costs."""

    def __init__(self, url: str, settings: Settings):
        from gateway.outbox import Worker, make_provider

        self.client = from_url(url, socket_timeout=30)
        self.provider = CountingProvider(make_provider(settings, self.client, pool_size=8))
        self.worker = Worker(self.client, settings, self.provider, concurrency=8, rate=SEND_RATE)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    @contextlib.contextmanager
    def running(self) -> Iterator[CountingProvider]:
        """The worker runs meanwhile; on exit it stops, its sends finished and recorded."""
        self.thread.start()
        try:
            yield self.provider
        finally:
            self.worker.stop()
            self.thread.join(60)

    def drain(self, expected: int, limit_s: float = 300.0) -> int:
        """Run until ``expected`` SMS are sent; how many were."""
        with self.running() as provider:
            started, pause = time.monotonic(), threading.Event()
            while provider.sends < expected and time.monotonic() - started < limit_s:
                pause.wait(0.01)  # the sends are counted in memory: polling costs Redis nothing
        return provider.sends

    def close(self) -> None:
        disconnect(self.client)


def send_all(url: str, settings: Settings, expected: int) -> int:
    """A worker run until it has sent ``expected`` SMS; how many it sent."""
    worker = OutboxWorker(url, settings)
    try:
        return worker.drain(expected)
    finally:
        worker.close()


def worker_polling(url: str, masters: Masters, settings: Settings, seconds: float) -> dict:
    """What an idle worker costs each master per second, beyond Redis's own idle CPU (measured
    as long right after it stops)."""
    pause, worker = threading.Event(), OutboxWorker(url, settings)
    with worker.running():
        pause.wait(min(1.0, seconds))  # past its start-up sweep
        _, spent = window(masters, lambda: pause.wait(seconds))  # idleness is what is measured
    worker.close()
    spent.idle = [rate * spent.wall for rate in idle_cpu(masters, spent.wall)]
    per_s = [n / spent.wall for n in spent.net()]
    return {
        "seconds": round(spent.wall, 2),
        "redis_cpu_ms_per_s": round(1000 * sum(per_s), 3),
        "per_master_ms_per_s": [round(1000 * x, 3) for x in per_s],
        "redis_commands_per_s": round(sum(spent.total_calls().values()) / spent.wall, 1),
        "cpu_per_s": per_s,
    }


def queued(client) -> int:
    """SMS waiting in every partition's outbox."""
    from gateway.outbox import stats

    return stats(client)["in_outbox"]


def searches(store, count: int) -> dict:
    """``count`` availability searches of SEARCH_PINCODE; checks each saw its 10 centres."""
    seen = set()
    with RoundTrips() as trips:
        for _ in range(count):
            found = store.availability(data.SEARCH_PINCODE)
            seen.add((len(found), sum(len(c["sessions"]) for c in found)))
    return {"searches": count, "round_trips": trips.count, "seen": sorted(seen)}


# -- one topology -------------------------------------------------------------------------------


def per_op(spent: Spent, count: int) -> dict:
    """Redis CPU (ms, net of idle), commands and where they went, per operation."""
    calls, usec = spent.total_calls(), spent.total_usec()
    top = sorted(usec, key=lambda k: -usec[k])[:8]
    return {
        "count": count,
        "wall_s": round(spent.wall, 2),
        "redis_cpu_ms": round(1000 * sum(spent.net()) / max(count, 1), 4),
        "redis_cpu_ms_gross": round(1000 * sum(spent.cpu) / max(count, 1), 4),
        "idle_ms": round(1000 * sum(spent.idle) / max(count, 1), 4),
        "commands": round(sum(calls.values()) / max(count, 1), 2),
        # Microseconds Redis spent inside each command (a script's own line includes the
        # commands it ran, which also have their lines): the rest of the CPU is reading,
        # parsing and answering requests.
        "top_commands": {
            k: {
                "calls": round(calls.get(k, 0) / max(count, 1), 2),
                "usec": round(usec[k] / max(count, 1), 2),
            }
            for k in top
        },
    }


def search_costs(url: str, masters: Masters, scale: Scale) -> dict:
    """Redis CPU per search of a pincode with 10 centres × 7 days, among 50 centres in all
    (40 others with ``scale.few_days`` days of sessions), then among ``scale.other_centres``
    others (the rest with a session each, to keep the load short)."""
    store = booking._store(url)
    today = store.now().date()
    masters.flush()
    few = 40
    data.load_all(
        store, data.search_pincode(today), data.other_centres(today, few, days=scale.few_days)
    )
    out = {"few": search_cost(store, masters, scale)}
    for first in range(few, scale.other_centres, 1000):
        count = min(1000, scale.other_centres - first)
        data.load_all(store, data.other_centres(today, count, start=first))
    out["many"] = search_cost(store, masters, scale)
    disconnect(store.r)
    return out


def search_cost(store, masters: Masters, scale: Scale) -> dict:
    """Redis CPU per search of SEARCH_PINCODE with the data as it is now."""
    total = len(store.centre_ids())
    store.availability(data.SEARCH_PINCODE)  # warm: connections to every master
    found, spent = measure(masters, lambda: searches(store, scale.searches), scale.idle_cap_s)
    if found["seen"] != [(10, 70)]:
        raise RuntimeError(f"a search saw {found['seen']}, not 10 centres × 7 days")
    figures = per_op(spent, scale.searches) | {
        "centres_in_all": total,
        "round_trips": round(found["round_trips"] / scale.searches, 2),
    }
    log(f"search among {total:,} centres: {figures['redis_cpu_ms']} ms Redis CPU")
    return figures


def booking_costs(url: str, masters: Masters, scale: Scale, at: dict, instance: str) -> dict:
    """Redis CPU per USSD hop, per code SMS sent and per whole booking; each master's share."""
    store = booking._store(url)
    today = store.now().date()
    masters.flush()
    scaled = data.scaled(today)
    data.load_all(store, scaled)
    app = _in_process_app(url, instance)
    settings = Settings(redis_url=url, secret_key=SECRET_KEY, timezone="Asia/Kolkata", **at)
    # Warm: scripts loaded on every master, connections open, the outbox groups made.
    play_journeys(app, max(4, scale.journeys // 20), series=61)
    send_all(url, settings, queued(store.r))
    idle = idle_cpu(masters, min(5.0, scale.idle_cap_s))
    polling = worker_polling(url, masters, settings, scale.worker_idle_s)
    log(f"idle: Redis {1000 * sum(idle):.2f} ms/s, an idle worker {polling['redis_cpu_ms_per_s']}")
    played, hops = measure(
        masters, lambda: play_journeys(app, scale.journeys, series=62), scale.idle_cap_s
    )
    bulk_book(store, scaled, scale.extra_sms)
    waiting, worker = queued(store.r), OutboxWorker(url, settings)
    sent, sms = measure(masters, lambda: worker.drain(waiting), scale.idle_cap_s)
    worker.close()
    sms.polling = [rate * sms.wall for rate in polling.pop("cpu_per_s")]
    out = figures(played, hops, sent, waiting, sms)
    out["ussd_hop"]["by_script"] = script_costs(app, masters, max(5, scale.journeys // 8))
    out["ussd_hop"]["round_trip_floor_ms"] = round_trip_floor(masters, scale)
    disconnect(app.extensions["tikaline"].redis)
    disconnect(store.r)
    return out | {
        "idle": {
            "redis_cpu_ms_per_s": round(1000 * sum(idle), 3),
            "per_master_ms_per_s": [round(1000 * x, 3) for x in idle],
        },
        "idle_worker": polling,
        "spread": spread(masters, hops, sms),
    }


def script_costs(app, masters: Masters, journeys: int) -> dict:
    """Where a hop's time inside Redis goes, script by script: ``journeys`` more journeys with
    every command in the slow log (a separate pass: logging costs a little); the median call
    of each, times its calls per hop."""
    names = {hashlib.sha1(text.encode()).hexdigest(): n for n, text in sources().items()}
    kept = [c.config_get("slowlog-*") for c in masters.clients]
    for c in masters.clients:
        c.config_set("slowlog-log-slower-than", 0)
        c.config_set("slowlog-max-len", 200 * journeys)
        c.slowlog_reset()
    played = play_journeys(app, journeys, series=65)
    entries = [e for c in masters.clients for e in c.slowlog_get(200 * journeys)]
    for c, old in zip(masters.clients, kept, strict=True):
        c.config_set("slowlog-log-slower-than", old["slowlog-log-slower-than"])
        c.config_set("slowlog-max-len", old["slowlog-max-len"])
    durations: dict[str, list[int]] = {}
    for e in entries:
        words = e["command"].decode(errors="replace").split()
        name = words[0].lower()
        if name == "evalsha" and len(words) > 1:
            name = f"script {names.get(words[1], words[1][:8])}"
        if name not in ("slowlog", "config"):
            durations.setdefault(name, []).append(e["duration"])
    hops = max(played["hops"], 1)
    # The median call: the slow log times wall clock, and on a shared machine a call that
    # lost the CPU midway would weigh as much as hundreds of others.
    per_hop = {
        name: (len(d) / hops, statistics.median(d), statistics.median(d) * len(d) / hops)
        for name, d in durations.items()
    }
    top = sorted(per_hop.items(), key=lambda kv: -kv[1][2])[:8]
    return {
        name: {
            "calls_per_hop": round(calls, 2),
            "usec_per_call": round(median, 1),
            "usec_per_hop": round(us, 1),
        }
        for name, (calls, median, us) in top
    }


def round_trip_floor(masters: Masters, scale: Scale) -> float:
    """Redis CPU (ms) of one PING from one client: the cost of a round trip itself (reading
    the request, answering it, the event loop), which every request pays before any work."""
    client, count = masters.clients[0], max(200, scale.searches)
    client.ping()
    _, spent = measure(masters, lambda: [client.ping() for _ in range(count)], scale.idle_cap_s)
    return round(1000 * sum(spent.net()) / count, 4)


def figures(played: dict, hops: Spent, sent: int, waiting: int, sms: Spent) -> dict:
    """The costs per hop, per SMS and per whole booking from the two measured windows."""
    if sent != waiting:
        raise RuntimeError(f"the worker sent {sent} of {waiting} SMS")
    hop = per_op(hops, played["hops"]) | {
        "round_trips": round(played["round_trips"] / max(played["hops"], 1), 2)
    }
    per_sms = per_op(sms, sent) | {"polling_ms": round(1000 * sum(sms.polling) / sent, 4)}
    journey_ms = 1000 * sum(hops.net()) / max(played["bookings"], 1)
    return {
        "journeys": played,
        "ussd_hop": hop,
        "sms": per_sms,
        "booking": {
            "bookings": played["bookings"],
            "hops_per_booking": round(played["hops"] / max(played["bookings"], 1), 2),
            "journey_ms": round(journey_ms, 4),
            "code_sms_ms": per_sms["redis_cpu_ms"],
            "redis_cpu_ms": round(journey_ms + per_sms["redis_cpu_ms"], 4),
        },
    }


def bulk_book(store, scaled: dict, count: int) -> None:
    """``count`` bookings straight through the store: more code SMS for the worker to send."""
    plan = booking.bulk_plan(scaled, store.now().date())
    for n in range(count):
        sid, slot = plan[n % len(plan)]
        outcome = store.book(
            mobile=booking.mobile(n, series=81),
            name=booking.person(n),
            birth_year=data.BIRTH_YEAR,
            session_id=sid,
            slot=slot,
        )
        if not outcome.ok:
            raise RuntimeError(f"bulk booking refused: {outcome}")


def spread(masters: Masters, hops: Spent, sms: Spent) -> dict:
    """Each master's share (%) of the keys, of the commands and of the Redis CPU of the USSD
    and SMS load, and of the partitions."""

    def shares(values: list[float]) -> list[float]:
        total = sum(values) or 1
        return [round(100 * v / total, 1) for v in values]

    calls = [sum(a.values()) + sum(b.values()) for a, b in zip(hops.calls, sms.calls, strict=True)]
    cpu = [a + b for a, b in zip(hops.net(), sms.net(), strict=True)]
    return {
        "masters": len(masters),
        "partitions": shares(masters.slots()),
        "keys": shares(sms.keys),
        "commands": shares(calls),
        "redis_cpu": shares(cpu),
        "key_counts": sms.keys,
    }


def race(url: str, scale: Scale) -> dict:
    """The race and its audit (bench/booking.py) on this topology's Redis."""
    store = booking._store(url)
    if scale.race_clients >= 2000:  # 20 slots of 25, as bench/run.py's race
        prize = data.race(store.now().date(), sessions=10)
    else:  # places for half the clients
        prize = data.race(store.now().date(), sessions=2, capacity=scale.race_clients // 8)
    data.load_all(store, prize)
    result = booking.race(
        url,
        store.r,
        prize,
        clients=scale.race_clients,
        processes=scale.race_processes,
        threads=scale.race_threads,
    )
    disconnect(store.r)
    return result


def capacity(url: str, masters: Masters, scale: Scale, instance: str) -> dict:
    """USSD booking journeys through the gateway under gunicorn (2 sync workers, as the
    Procfile): bookings/s, and how busy each master and the web workers were."""
    from bench.run import gateway_env

    with Gunicorn("app:create_app()", env=gateway_env(url, instance), workers=2) as web:
        target = f"{web.base}/ussd?token={WEBHOOK_TOKEN}"
        load.run(target, 4, lambda n: scripts.ussd_booking(n, series=63), seconds=1.0)  # warm
        before = masters.snapshot()
        result = load.run(
            target,
            scale.capacity_clients,
            lambda n: scripts.ussd_booking(n, series=64),
            seconds=scale.capacity_s,
            server_cpu=web.cpu_seconds,
        )
        after = masters.snapshot()
    busy = [(a.cpu - b.cpu) / result.seconds for a, b in zip(after, before, strict=True)]
    return {
        "clients": scale.capacity_clients,
        "seconds": round(result.seconds, 2),
        "bookings_per_s": round(result.goals / result.seconds, 1),
        "hops_per_s": round(result.rate, 1),
        "errors": result.errors,
        "p99_ms": result.summary()["p99_ms"],
        "web_cpu_cores": round(result.server_cpu / result.seconds, 2),
        "load_generator_cpu_cores": round(result.client_cpu / result.seconds, 2),
        "redis_busy_per_master": [round(b, 3) for b in busy],
        "redis_headroom_per_master": [round(1 - b, 3) for b in busy],
    }


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Warnings only from the app and the worker in this process while measuring (their INFO
    line per hop and per SMS would lengthen every window); the level restored after."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(level)


PHASES = ("search", "booking", "race", "capacity")


def phase(name: str, url: str, masters: Masters, scale: Scale, at: dict, instance: str) -> dict:
    """One phase's figures on the Redis (or cluster) at ``url``, with the machine's 1-minute
    load average as it began."""
    load = Path("/proc/loadavg").read_text().split()[0]
    log(f"{name} on {len(masters)} master(s)")
    if name == "search":
        out = {"search": search_costs(url, masters, scale)}
    elif name == "booking":
        with quiet():
            out = booking_costs(url, masters, scale, at, instance)
        log(
            f"{out['ussd_hop']['redis_cpu_ms']} ms/hop, {out['booking']['redis_cpu_ms']} "
            f"ms/booking, {out['sms']['redis_cpu_ms']} ms/SMS"
        )
    elif name == "race":
        out = {"race": race(url, scale)}
    else:
        out = {"capacity": capacity(url, masters, scale, instance)}
    return out | {"loadavg": {name: load}}


def topology(url: str, scale: Scale, at: dict, instance: str) -> dict:
    """Every figure of one topology, phase after phase (its Redis is flushed as it goes)."""
    return interleaved({"one": url}, scale, at, instance)["one"]


def interleaved(urls: dict[str, str], scale: Scale, at: dict, instance: str) -> dict:
    """Every figure of each topology in ``urls``, phase by phase, the topologies taking turns
    to go first (A B, B A, ...), so that a machine growing busier weighs on both alike."""
    masters = {name: Masters(url) for name, url in urls.items()}
    out: dict[str, dict] = {name: {"masters": len(m), "loadavg": {}} for name, m in masters.items()}
    try:
        for i, name in enumerate(PHASES):
            for topo in list(urls)[:: 1 if i % 2 == 0 else -1]:
                figures = phase(name, urls[topo], masters[topo], scale, at, instance)
                out[topo]["loadavg"] |= figures.pop("loadavg")
                out[topo] |= figures
    finally:
        for m in masters.values():
            m.close()
    return out


# -- CoWIN's peak ---------------------------------------------------------------------------------


def redis_cli_split(masters: int) -> list[int]:
    """How many of the partitions each master serves when ``redis-cli --cluster create``
    gives each an even range of slots (as its code splits them)."""
    per, first, cursor, owned = SLOTS / masters, 0, 0.0, []
    slots = [key_slot(f"{{p{p}}}".encode()) for p in range(keys.PARTITIONS)]
    for i in range(masters):
        last = round(cursor + per - 1)
        if last > SLOTS or i == masters - 1:
            last = SLOTS - 1
        last = max(last, first)
        owned.append(sum(1 for s in slots if first <= s <= last))
        first, cursor = last + 1, cursor + per
    return owned


def masters_needed(cores: float, budget: float = MASTER_BUDGET) -> dict:
    """Masters for ``cores`` of Redis CPU, each kept within ``budget`` of a core. The busiest
    master decides, and a partition is never split: ``balanced`` with the partitions placed
    evenly (slots moved so each master holds ⌈256/N⌉ at most), ``redis_cli`` with the even
    slot ranges ``redis-cli --cluster create`` gives; None past one master per partition."""
    even = max(1, math.ceil(cores / budget))

    def first(busiest: Callable[[int], int]) -> int | None:
        for n in range(even, keys.PARTITIONS + 1):
            if busiest(n) / keys.PARTITIONS * cores <= budget:
                return n
        return None

    return {
        "even": even,
        "balanced": first(lambda n: math.ceil(keys.PARTITIONS / n)),
        "redis_cli": first(lambda n: max(redis_cli_split(n))),
    }


def projection(hop_ms: float, booking_ms: float, sms_ms: float) -> dict:
    """Masters CoWIN's peak needs from the measured costs: 55,000 hops/s, and 13.2 million
    bookings a day with a 4x peak hour, each master at MASTER_BUDGET of a core."""
    bookings_per_s = COWIN_BOOKINGS_PER_DAY / 86400 * PEAK_FACTOR
    hop_cores = COWIN_HOPS_PER_S * hop_ms / 1000
    booking_cores = bookings_per_s * booking_ms / 1000
    sms_cores = bookings_per_s * sms_ms / 1000
    return {
        "hops_per_s": COWIN_HOPS_PER_S,
        "bookings_per_s": round(bookings_per_s, 1),
        "master_budget": MASTER_BUDGET,
        "hop_cores": round(hop_cores, 3),
        "booking_cores": round(booking_cores, 3),
        "code_sms_cores": round(sms_cores, 3),
        # The peak's 55,000 hops hold the bookings' own journeys (9 hops each), so a booking
        # adds its code SMS: the issue's own sum (0.12 ms x 55,000 = 6.6 cores, 10 masters).
        "masters": masters_needed(hop_cores + sms_cores),
        # Every booking counted again on top of the 55,000 hops: the upper bound.
        "masters_if_bookings_added": masters_needed(hop_cores + booking_cores),
        "per_master_capacity": {
            "hops_per_s": round(MASTER_BUDGET * 1000 / hop_ms) if hop_ms else None,
            "bookings_per_s": round(MASTER_BUDGET * 1000 / booking_ms) if booking_ms else None,
        },
    }


# -- the verdicts and the tables ---------------------------------------------------------------

TARGETS = [
    # (figure, target text, before, path into a topology's figures, test)
    ("Redis CPU per USSD hop, ms", "≤ 0.12", "0.36", ("ussd_hop", "redis_cpu_ms"), 0.12),
    (
        "Redis CPU per whole USSD booking (9 hops + code SMS), ms",
        "≤ 1.2",
        "about 3.3",
        ("booking", "redis_cpu_ms"),
        1.2,
    ),
    (
        "Redis CPU per SMS sent, ms",
        "≤ 0.06",
        "0.11 (issue); 0.23-0.24 (outbound run below)",
        ("sms", "redis_cpu_ms"),
        0.06,
    ),
    (
        "Redis CPU per search, 10 centres × 7 days, 50 centres in all, ms",
        "≤ 0.2",
        "0.9 for 5 centres, 31 for 200 (one script)",
        ("search", "few", "redis_cpu_ms"),
        0.2,
    ),
    (
        "Redis CPU per search, the same among 5,000 other centres, ms",
        "≤ 0.2",
        "grew with the centres",
        ("search", "many", "redis_cpu_ms"),
        0.2,
    ),
]
RACE_FIGURES = [
    ("overbooked", ("overbooked",)),
    ("duplicate bookings", ("duplicate_bookings",)),
    (
        "bookings without exactly one code SMS",
        ("bookings_without_one_code_sms", "code_sms_without_booking", "duplicate_message_keys"),
    ),
    ("confirmed but missing", ("confirmed_but_missing",)),
]


def _at(node, path):
    for key in path:
        node = node[key]
    return node


def verdicts(result: dict) -> list[dict]:
    """Each figure with its target, the figure before, both topologies' and whether met."""
    single, cluster = result["topologies"]["single"], result["topologies"]["cluster"]
    rows = []
    for figure, target, before, path, limit in TARGETS:
        a, b = _at(single, path), _at(cluster, path)
        row = _row(figure, target, before, a, b, max(a, b) <= limit)
        rows.append(row | {"met_single": a <= limit, "met_cluster": b <= limit})
    for kind, label in (("keys", "keys"), ("commands", "commands"), ("redis_cpu", "Redis CPU")):
        shares = cluster["spread"][kind]
        rows.append(
            _row(
                f"each master's share of the {label}, %",
                "33 ± 8",
                "100 on one master (slot 6480)",
                "-",
                " / ".join(f"{s:.0f}" for s in shares),
                all(25 <= s <= 41 for s in shares),
            )
        )
    cap_a, cap_b = single["capacity"], cluster["capacity"]
    rows.append(
        _row(
            "USSD bookings/s through 2 gunicorn workers",
            "report",
            "-",
            cap_a["bookings_per_s"],
            cap_b["bookings_per_s"],
            None,
        )
    )
    rows.append(
        _row(
            "Redis CPU headroom per master meanwhile, % of a core",
            "report",
            "-",
            _percent(cap_a["redis_headroom_per_master"]),
            _percent(cap_b["redis_headroom_per_master"]),
            None,
        )
    )
    need = result["projection"]["masters"]
    rows.append(
        _row(
            "masters for CoWIN's peak (from the cluster's costs)",
            "≤ 10",
            "no number: one slot holds all",
            "-",
            f"{need['balanced']} ({need['redis_cli']} with redis-cli's slot ranges)",
            need["balanced"] is not None and need["balanced"] <= 10,
        )
    )
    for label, names in RACE_FIGURES:
        a = sum(single["race"]["audit"][n] for n in names)
        b = sum(cluster["race"]["audit"][n] for n in names)
        rows.append(_row(f"race, {label}", "0", "0", a, b, a == b == 0))
    return rows


def _row(figure, target, before, single, cluster, met) -> dict:
    return {
        "figure": figure,
        "target": target,
        "before": before,
        "single": single,
        "cluster": cluster,
        "met": met,
    }


def _verdict(row: dict, no: str) -> str:
    """yes, no, - (nothing to meet), or which topology alone met it."""
    if row["met"] is False and row.get("met_single") != row.get("met_cluster"):
        return f"{no} (one Redis: yes)" if row["met_single"] else f"{no} (cluster: yes)"
    return {True: "yes", False: no, None: "-"}[row["met"]]


def _percent(values: list[float]) -> str:
    return " / ".join(f"{100 * v:.0f}" for v in values)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:,.1f}"
    return str(value)


def markdown(result: dict) -> str:
    """The README section's tables: the figures against their targets with the machine's
    load, then where a hop's Redis CPU goes on the cluster."""
    m = result["machine"]
    lines = [
        "| figure | target | before | after: one Redis | after: 3-master cluster | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["targets"]:
        met = _verdict(r, "**no**")
        lines.append(
            f"| {r['figure']} | {r['target']} | {r['before']} | {_cell(r['single'])} | "
            f"{_cell(r['cluster'])} | {met} |"
        )
    loads = [result["topologies"][t]["loadavg"] for t in ("single", "cluster")]
    lines.append(
        "| load average (1 min) as each phase began: "
        + ", ".join(PHASES)
        + " | | | "
        + " | ".join(", ".join(load[p] for p in PHASES) for load in loads)
        + " | |"
    )
    head = (
        f"Measured {result['date']} with `python bench/cluster.py` on {m['cpu']} "
        f"({m['cores']} cores, a shared VM), Redis {m['redis']}: one server and a cluster of "
        f"{MASTERS} masters on the same machine, taking turns phase by phase; load average "
        f"{' '.join(m['loadavg_at_start'])} at start, {' '.join(m['loadavg_at_end'])} at end; "
        f"the run took {result['duration_s']:.0f} s."
    )
    hop = result["topologies"]["cluster"]["ussd_hop"]
    where = [
        "| command or script (cluster) | calls/hop | µs inside/call (median) | µs inside/hop |",
        "|---|---|---|---|",
    ]
    for cmd, v in hop["by_script"].items():
        where.append(
            f"| {cmd} | {v['calls_per_hop']} | {v['usec_per_call']} | {v['usec_per_hop']} |"
        )
    return head + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(where) + "\n"


def tables(result: dict) -> list[Table]:
    """The printed tables: the figures against their targets, then where a hop's Redis CPU
    goes on each topology."""
    t = Table(
        f"Partitioned keys: one Redis and a cluster of {MASTERS} masters",
        ["figure", "target", "before", "one Redis", f"{MASTERS}-master cluster", "met"],
    )
    for r in result["targets"]:
        met = _verdict(r, "NO")
        t.add(r["figure"], r["target"], r["before"], r["single"], r["cluster"], met)
    out = [t]
    for name, figures in result["topologies"].items():
        hop = figures["ussd_hop"]
        c = Table(
            f"Redis per USSD hop, {name}: {hop['redis_cpu_ms']} ms CPU, {hop['commands']} "
            f"commands, {hop['round_trips']} round trips (a PING alone: "
            f"{hop['round_trip_floor_ms']} ms)",
            ["command or script", "calls/hop", "µs inside/call (median)", "µs inside/hop"],
        )
        for cmd, v in hop["by_script"].items():
            c.add(cmd, v["calls_per_hop"], v["usec_per_call"], v["usec_per_hop"])
        out.append(c)
    return out


def print_report(result: dict) -> None:
    for t in tables(result):
        print(t.render(), end="\n\n")
    p = result["projection"]
    print(
        f"CoWIN's peak ({p['hops_per_s']:,} hops/s, {p['bookings_per_s']} bookings/s): "
        f"{p['hop_cores'] + p['code_sms_cores']:.2f} cores of Redis, masters {p['masters']}; "
        f"every booking on top: {p['masters_if_bookings_added']}"
    )


# -- the run ------------------------------------------------------------------------------------


def machine() -> dict:
    from bench.run import machine as described

    return described()


@contextlib.contextmanager
def fake_api() -> Iterator[dict]:
    """The fake Africa's Talking API in its own process (so it does not share this one's CPU
    and GIL); the settings that send to it."""
    from bench.outbound import _serve_fake

    ctx = multiprocessing.get_context("spawn")
    port_out, stop = ctx.Queue(), ctx.Event()
    process = ctx.Process(target=_serve_fake, args=(port_out, stop), daemon=True)
    process.start()
    try:
        base_url, username, api_key = port_out.get(timeout=30)
        yield {
            "at_username": username,
            "at_api_key": api_key,
            "at_sender_id": "TIKALINE",
            "at_base_url": base_url,
        }
    finally:
        stop.set()
        process.join(10)


def run(scale: Scale = SCALES["full"]) -> dict:
    """Both topologies, the projection and the verdicts."""
    started = time.monotonic()
    result: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "scale": asdict(scale),
        "partitions": keys.PARTITIONS,
        "topologies": {},
    }
    server, _ = cluster_binaries()
    instance = tempfile.mkdtemp(prefix="tikaline-bench-instance-")
    try:
        with (
            fake_api() as at,
            RedisServer(binary=server) as single,
            redis_cluster(masters=MASTERS) as cluster,
        ):
            result["machine"]["redis"] = single.client().info("server")["redis_version"]
            urls = {"single": single.url, "cluster": cluster.url}
            result["topologies"] = interleaved(urls, scale, at, instance)
    finally:
        shutil.rmtree(instance, ignore_errors=True)
    t = result["topologies"]["cluster"]
    result["projection"] = projection(
        t["ussd_hop"]["redis_cpu_ms"], t["booking"]["redis_cpu_ms"], t["sms"]["redis_cpu_ms"]
    )
    result["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    result["targets"] = verdicts(result)
    result["duration_s"] = round(time.monotonic() - started, 1)
    return result


def save(result: dict, path: Path = RESULTS) -> None:
    """Write ``result`` as the ``cluster`` entry of the results file, keeping the rest."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results["cluster"] = result
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small numbers, every part")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--markdown", type=Path, default=None, help="also write the README table")
    args = p.parse_args(argv)
    result = run(SCALES["quick" if args.quick else "full"])
    print_report(result)
    save(result, args.out)
    if args.markdown:
        args.markdown.write_text(markdown(result))
    log(f"done in {result['duration_s']} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
