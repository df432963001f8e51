"""What the outbound-SMS tests share: queueing like the store does, running a worker, waiting."""

from __future__ import annotations

import contextlib
import json
import threading
import time

from gateway import keys
from gateway.outbox import Worker


def queue_sms(r, message_key: str, to: str, template: str = "sms.locked",
              params: dict | None = None, lang: str = "en") -> None:
    """Append an outbox entry exactly as ``queue_sms`` in gateway/lua/common.lua does."""
    params = {"name": "Asha Devi", "ref": "123456782"} if params is None else params
    with r.pipeline(transaction=True) as pipe:
        pipe.xadd(keys.OUTBOX, {"k": message_key, "to": to, "t": template, "l": lang,
                                "p": json.dumps(params)})
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
    worker = Worker(r, settings, **options)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive(), "worker did not stop"
