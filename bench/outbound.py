"""Outbound SMS per second: one worker process pushing the outbox through the real
Africa's Talking SDK to the local fake API, at concurrency 1, 8 and 32, over the SDK's own
transport for comparison, with every SMS on one partition's stream instead of spread over all
of them, and at the defaults (concurrency 8 with the 50/s send-rate cap); and what an idle
worker costs Redis (commands and CPU per second, sweeping every partition's stream).

Run ``python bench/outbound.py [--quick]``; ``bench/run.py`` calls ``measure()``. A private
redis-server and the fake API (in its own process, so it does not share this one's CPU and
GIL) run on loopback and stop by themselves; each level is bounded in count and in time.

Each level also says where the time went: CPU of this process (the worker), of the fake API
and of Redis, as cores busy over the run (1.0 is one core all along; a worker near 1.0 is
held by its GIL), the worker's own round trips per SMS (its connections only, not the
polling here) and the Redis commands per SMS, scripts' inner calls included.
"""

# ruff: noqa: E402  (the path must be set before the project's modules are imported)

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from africastalking.SMS import SMSService

from bench.common import (
    SECRET_KEY,
    RedisServer,
    RedisSnapshot,
    Table,
    log,
    own_cpu_seconds,
    process_cpu_seconds,
)
from gateway.config import Settings
from gateway.outbox import Worker, counters, make_provider, stats
from gateway.providers.africastalking import SMSClient
from gateway.store import keys
from gateway.store.redisconn import from_url

LEVELS = (1, 8, 32)
NAN = float("nan")  # a figure a run did not measure: shown as "-"
PARAMS = json.dumps(
    {
        "name": "Asha Devi",
        "centre": "PHC Saket",
        "date": "2026-12-01",
        "time": "09:00-11:00",
        "ref": "123456782",
        "ver": 0,
    }
)


class _CountingConnection(redis.Connection):
    """A connection that counts its round trips: redis-py writes every request, one command
    or a whole pipeline, with one ``send_packed_command``."""

    sent = 0
    _lock = threading.Lock()

    def send_packed_command(self, command, check_health=True):
        with _CountingConnection._lock:
            _CountingConnection.sent += 1
        return super().send_packed_command(command, check_health)


def _serve_fake(port_out, stop) -> None:
    from tests.fake_at import FakeAT

    with FakeAT() as fake:
        port_out.put((fake.base_url, fake.username, fake.api_key))
        stop.wait()


def _queue(client: redis.Redis, count: int, tag: str, spread: bool = True) -> None:
    # The booking confirmation, the SMS that matters most, as book.lua queues it: on the
    # partition of the change that promised it (here the mobile's), or all on partition 0.
    with client.pipeline(transaction=False) as pipe:
        for i in range(count):
            to = f"+9198{i:08d}"
            p = keys.partition_of(to) if spread else 0
            pipe.xadd(
                keys.outbox(p),
                {"k": f"bench:{tag}:{i}", "to": to, "t": "sms.booked", "l": "en", "p": PARAMS},
            )
            pipe.hincrby(keys.sms_counts(p), "queued", 1)
        pipe.execute()


class CountingProvider:
    """The real provider, counting the sends it answered, so waiting for them reads no Redis."""

    def __init__(self, provider):
        self.provider = provider
        self.sends = 0
        self._lock = threading.Lock()

    def send(self, to: str, text: str, entry: dict):
        result = self.provider.send(to, text, entry)
        with self._lock:
            self.sends += 1
        return result


class SDKTransportClient(SMSClient):
    """The gateway's SMS client over the SDK's own transport (a new connection per SMS), only
    for comparison: the gateway always sends over its keep-alive pool."""

    def __init__(self, username: str, api_key: str, *, base_url: str | None = None, **options):
        super().__init__(username, api_key, base_url=base_url, **options)
        self._service = SMSService(username, api_key)
        if base_url:
            self._service._baseUrl = base_url.rstrip("/")


def _level(
    url: str,
    settings: Settings,
    count: int,
    concurrency: int,
    rate: float,
    limit_s: float,
    fake_pid: int,
    keep_alive: bool = True,
    spread: bool = True,
) -> dict:
    client = from_url(url)
    client.flushdb()
    _queue(client, count, f"c{concurrency}", spread)
    # Only the worker's own requests are counted, not this loop's polling.
    worker_client = from_url(url, socket_timeout=30, connection_class=_CountingConnection)
    provider = CountingProvider(
        make_provider(settings, worker_client, pool_size=concurrency)
        if keep_alive
        else SDKTransportClient.from_settings(settings)
    )
    worker = Worker(worker_client, settings, provider, concurrency=concurrency, rate=rate)
    thread = threading.Thread(target=worker.run, daemon=True)
    trips_before = _CountingConnection.sent
    redis_before = RedisSnapshot.take(client)
    cpu_before, fake_before = own_cpu_seconds(), process_cpu_seconds(fake_pid)
    started = time.monotonic()
    thread.start()
    idle = threading.Event()
    sent = 0
    while time.monotonic() - started < limit_s:
        # Sends answered, then recorded: polling a counter another thread moves (no event to
        # await), Redis only at the very end.
        if provider.sends >= count and counters(client)["sent"] >= count:
            break
        idle.wait(0.01 if provider.sends < count else 0.002)
    seconds = time.monotonic() - started
    worker_cpu = own_cpu_seconds() - cpu_before
    fake_cpu = process_cpu_seconds(fake_pid) - fake_before
    spent = RedisSnapshot.take(client).since(redis_before)
    trips = _CountingConnection.sent - trips_before
    worker.stop()
    thread.join(30)
    figures = stats(client)
    sent = figures["sent"]
    polls = spent.calls.get("hgetall", 0)  # this loop's, not the worker's
    worker_client.close()
    client.close()
    return {
        "concurrency": concurrency,
        "rate_cap": rate or None,
        "transport": "keep-alive" if keep_alive else "sdk",
        "partitions": "spread" if spread else "one",
        "messages": count,
        "sent": sent,
        "not_sent": figures["dead"] + figures["waiting_retry"],
        "seconds": round(seconds, 2),
        "sms_per_s": round(sent / seconds, 1),
        # CPU seconds per second of run: 1.0 is one core busy all along.
        "worker_cpu": round(worker_cpu / seconds, 2),
        "fake_cpu": round(fake_cpu / seconds, 2),
        "redis_cpu": round(spent.cpu / seconds, 2),
        "redis_ms_per_sms": round(spent.cpu * 1000 / max(sent, 1), 3),
        "round_trips_per_sms": round(trips / max(sent, 1), 2),
        "redis_commands_per_sms": round((spent.commands - polls) / max(sent, 1), 2),
        "redis_commands": spent.top(12),
    }


def idle_cost(url: str, settings: Settings, seconds: float) -> dict:
    """What one worker with nothing to send costs: Redis commands and CPU per second."""
    client = from_url(url)
    client.flushdb()
    worker = Worker(from_url(url), settings, CountingProvider(None), rate=0)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    pause = threading.Event()
    pause.wait(1.0)  # past its start-up: one sweep, one search for abandoned entries
    before, cpu_before = RedisSnapshot.take(client), own_cpu_seconds()
    pause.wait(seconds)  # measuring a span of idleness: nothing to await
    spent, worker_cpu = RedisSnapshot.take(client).since(before), own_cpu_seconds() - cpu_before
    worker.stop()
    thread.join(30)
    client.close()
    return {
        "seconds": seconds,
        "partitions": keys.PARTITIONS,
        "idle_wait_s": worker.idle,
        "redis_commands_per_s": round(spent.commands / seconds, 1),
        "redis_cpu_ms_per_s": round(spent.cpu * 1000 / seconds, 2),
        "worker_cpu": round(worker_cpu / seconds, 3),
        "redis_commands": {k: round(v / seconds, 1) for k, v in spent.top(6).items()},
    }


def measure(quick: bool = False, count: int | None = None, limit_s: float = 60.0) -> dict:
    """SMS/s at each concurrency (no rate cap) and at the defaults; prints a table."""
    count = count or (300 if quick else 3000)
    ctx = multiprocessing.get_context("spawn")
    port_out, stop = ctx.Queue(), ctx.Event()
    fake = ctx.Process(target=_serve_fake, args=(port_out, stop), daemon=True)
    fake.start()
    try:
        base_url, username, api_key = port_out.get(timeout=30)
        with RedisServer() as server:
            settings = Settings(
                redis_url=server.url,
                secret_key=SECRET_KEY,
                at_username=username,
                at_api_key=api_key,
                at_sender_id="TIKALINE",
                at_base_url=base_url,
            )
            levels = []
            for concurrency in LEVELS:
                log(f"outbound: {count} SMS at concurrency {concurrency}, no rate cap")
                levels.append(
                    _level(server.url, settings, count, concurrency, 0, limit_s, fake.pid)
                )
            log(f"outbound: {count} SMS at concurrency 8 over the SDK's own transport")
            sdk_own = _level(server.url, settings, count, 8, 0, limit_s, fake.pid, keep_alive=False)
            log(f"outbound: {count} SMS at concurrency 8, all on one partition")
            one = _level(server.url, settings, count, 8, 0, limit_s, fake.pid, spread=False)
            defaults = Settings()
            default_count = min(count, int(defaults.outbox_rate * 5))  # about 5 s at the cap
            log(f"outbound: {default_count} SMS at the defaults")
            default = _level(
                server.url,
                settings,
                default_count,
                defaults.outbox_concurrency,
                defaults.outbox_rate,
                limit_s,
                fake.pid,
            )
            idle_s = 3.0 if quick else 10.0
            log(f"outbound: an idle worker for {idle_s:.0f} s")
            idle = idle_cost(server.url, settings, idle_s)
    finally:
        stop.set()
        fake.join(10)
    result = {
        "levels": levels,
        "default": default,
        "sdk_transport": sdk_own,
        "one_partition": one,
        "idle": idle,
        "note": "one worker process, the real africastalking SDK's SMSService over a "
        "keep-alive urllib3 pool (sdk_transport: its own requests.post, a new "
        "connection per SMS); the fake API in another process; SMS spread over the "
        f"{keys.PARTITIONS} partitions by mobile unless one_partition",
    }
    print(table(result).render())
    print(
        f"idle worker: {idle['redis_commands_per_s']} Redis commands/s, "
        f"{idle['redis_cpu_ms_per_s']} ms Redis CPU/s, worker CPU {idle['worker_cpu']}"
    )
    return result


def table(result: dict) -> Table:
    """The measured figures as a table."""
    t = Table(
        "Outbound SMS through the real SDK to a local fake API (one worker process)",
        [
            "concurrency",
            "rate cap /s",
            "transport",
            "partitions",
            "messages",
            "seconds",
            "SMS/s",
            "worker CPU",
            "fake API CPU",
            "Redis CPU",
            "Redis ms/SMS",
            "round trips/SMS",
            "Redis commands/SMS",
        ],
    )
    # Results from before the per-partition outbox have no one_partition run and fewer fields.
    one = [result["one_partition"]] if "one_partition" in result else []
    rows = [*result["levels"], result["sdk_transport"], *one, result["default"]]
    for row in rows:
        t.add(
            row["concurrency"],
            row["rate_cap"] or "none",
            row["transport"],
            row.get("partitions", "one"),
            row["sent"],
            row["seconds"],
            row["sms_per_s"],
            row["worker_cpu"],
            row["fake_cpu"],
            row["redis_cpu"],
            row.get("redis_ms_per_sms", NAN),
            row["round_trips_per_sms"],
            row["redis_commands_per_sms"],
        )
    return t


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 messages per level")
    parser.add_argument("--count", type=int, default=None, help="messages per level")
    args = parser.parse_args()
    measure(quick=args.quick, count=args.count)
