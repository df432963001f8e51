"""Worker layer, partitions: every partition's outbox is read by every worker, each SMS is sent
once however many workers run, what a dead worker left is taken over, and OUTBOX_RATE is the
rate of the whole fleet, against a real Redis."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from redis.cluster import RedisCluster

from gateway.outbox import FleetRate, dead_letters, requeue, stats
from gateway.providers.result import SENT, SendResult
from gateway.store import keys
from tests.fake_at import INVALID_PHONE
from tests.outbox_helpers import in_outbox, pending, queue_sms, running, status, wait_for

PHONE = "+919811111111"


class Handset:
    """A provider that records what each phone received, answering every send as sent."""

    def __init__(self):
        self.received: list[str] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def send(self, to: str, text: str, entry: dict) -> SendResult:
        with self._lock:
            self.received.append(entry["k"])
            return SendResult(SENT, message_id=f"ATXid_{next(self._ids)}", detail="101 Success")


def _queue_spread(r, n: int, tag: str) -> list[str]:
    """``n`` SMS to ``n`` phones, on partitions spread over the whole range."""
    made = []
    for i in range(n):
        queue_sms(r, f"lock:{tag}{i}", f"+9198111{i:05d}", partition=i * keys.PARTITIONS // n)
        made.append(f"lock:{tag}{i}")
    return made


def test_sms_on_distant_partitions_are_each_sent_once_by_one_worker(r, settings):
    handset = Handset()
    queue_sms(r, "lock:p0", PHONE, partition=0)
    queue_sms(r, "lock:p200", "+919811111112", partition=200)
    with running(r, settings, provider=handset):
        wait_for(lambda: stats(r)["sent"] == 2, "both SMS")
    assert sorted(handset.received) == ["lock:p0", "lock:p200"]
    assert r.exists(keys.message(0, "lock:p0")) and r.exists(keys.message(200, "lock:p200"))
    assert in_outbox(r) == 0 and pending(r) == 0


def test_two_workers_never_send_one_message_twice(r, settings):
    handset = Handset()
    sent = _queue_spread(r, 120, "two")
    with running(r, settings, provider=handset, concurrency=4, name="one"):
        with running(r, settings, provider=handset, concurrency=4, name="two"):
            wait_for(lambda: stats(r)["sent"] == 120, "every SMS")
    assert sorted(handset.received) == sorted(sent)  # each once, none lost
    assert stats(r)["queued"] == 120 and in_outbox(r) == 0


def test_entries_a_dead_worker_left_pending_are_taken_over(r, settings, caplog):
    handset = Handset()
    for p in (0, 200):
        queue_sms(r, f"lock:left{p}", f"+91981111{p:04d}", partition=p)
        r.xgroup_create(keys.outbox(p), keys.OUTBOX_GROUP, id="0")
        # A worker read them, then died before sending: they wait in its pending list.
        r.xreadgroup(keys.OUTBOX_GROUP, "dead-worker", {keys.outbox(p): ">"})
    assert pending(r) == 2
    with caplog.at_level("WARNING"), running(r, settings, provider=handset, claim_idle=0.1):
        wait_for(lambda: stats(r)["sent"] == 2, "the two taken over")
    assert sorted(handset.received) == ["lock:left0", "lock:left200"]
    assert pending(r) == 0 and "event=outbox_took_over" in caplog.text


def test_a_dead_letter_is_named_by_its_partition_and_requeued_by_that_name(r, at_settings, fake):
    fake.script(INVALID_PHONE)
    queue_sms(r, "lock:d200", PHONE, partition=200)
    with running(r, at_settings):
        wait_for(lambda: dead_letters(r), "the dead letter")
        [letter] = dead_letters(r)
        partition, _, stream_id = letter["id"].partition(":")
        assert partition == "200" and r.xrange(keys.dead(200), stream_id, stream_id)
        assert requeue(r, letter["id"]) == ["lock:d200"]
        wait_for(lambda: status(r, "lock:d200").get("status") == "sent", "the requeued SMS")
    assert requeue(r, letter["id"]) == [] and dead_letters(r) == []


def test_an_idle_worker_only_sweeps_the_streams_now_and_then(r, settings):
    before = _calls(r)
    started = time.monotonic()
    with running(r, settings, idle=0.05) as worker:
        wait_for(lambda: _calls(r).get("xlen", 0) - before.get("xlen", 0) >= 5 * 256, "sweeps")
        worker.stop()
    elapsed = time.monotonic() - started
    spent = {name: n - before.get(name, 0) for name, n in _calls(r).items()}
    assert spent.get("xreadgroup", 0) == 0  # nothing holds entries: nothing is read
    assert spent.get("xautoclaim", 0) == 0  # nor searched for abandoned ones
    # At most one sweep (an XLEN per partition) per idle interval, never a spin.
    assert spent["xlen"] % keys.PARTITIONS == 0
    assert spent["xlen"] / keys.PARTITIONS <= elapsed / 0.05 + 2


def _calls(r) -> dict[str, int]:
    """Commands Redis ran so far, by name (on a cluster: on all its masters)."""
    if isinstance(r, RedisCluster):
        servers = r.info("commandstats", target_nodes=RedisCluster.PRIMARIES).values()
    else:
        servers = [r.info("commandstats")]
    calls: dict[str, int] = {}
    for server in servers:
        for name, value in server.items():
            name = name.removeprefix("cmdstat_")
            calls[name] = calls.get(name, 0) + value["calls"]
    return calls


# -- the fleet's rate -----------------------------------------------------------------------


def test_the_bucket_grants_the_rate_over_any_window(r, clock):
    rate = FleetRate(r, 50, clock=clock)
    assert _drain(rate) == 10  # a fifth of a second's worth at once
    clock.advance(0.1)
    assert _drain(rate) == 5
    clock.advance(0.5)
    assert _drain(rate) == 10  # refilled, never beyond a fifth of a second's worth
    for _ in range(10):  # a second, asked for every tenth of it: the rate, no more
        clock.advance(0.1)
        assert _drain(rate) == 5
    clock.advance(-5)  # a worker whose clock is behind the last caller's refills nothing
    assert _drain(rate) == 0


def _drain(rate: FleetRate) -> int:
    total = 0
    while (got := rate._take()[0]) > 0:
        total += got
    return total


@pytest.mark.parametrize("per_second", [10, 25])
def test_two_workers_together_keep_to_the_fleet_rate(r, settings, clock, per_second):
    handset = Handset()
    total = 3 * per_second
    for i in range(total):
        queue_sms(r, f"lock:rate{i}", f"+9198222{i:05d}")
    options = {"provider": handset, "rate": per_second, "clock": clock, "concurrency": 4}
    bucket = FleetRate(r, per_second).capacity  # what the bucket holds: a fifth of a second's
    with running(r, settings, name="one", **options), running(r, settings, name="two", **options):
        # The clock stands still, then moves on a fifth of a second at a time: however often
        # the two workers ask, together they send a fifth of a second's worth each time.
        for step in range(1, 6):
            wait_for(lambda n=step * bucket: len(handset.received) >= n, "the next sends")
            _asked_again(r, lambda: False)
            assert len(handset.received) == step * bucket
            clock.advance(0.2)
        # Past one second, the rate's worth was sent (and the first fifth of a second's).
        wait_for(lambda: len(handset.received) >= per_second + bucket, "a second's worth")
        # The last few: a worker may keep a token or two it took for sends that then went to
        # the other (never more than a batch), so the rest may take a little longer.
        while stats(r)["sent"] < total:
            clock.advance(0.2)
            _asked_again(r, lambda: stats(r)["sent"] == total)
    assert sorted(handset.received) == sorted(f"lock:rate{i}" for i in range(total))


def _asked_again(r, done) -> None:
    """Wait until the workers asked the bucket 8 more times (or ``done()``)."""
    asked = _calls(r).get("evalsha", 0)
    wait_for(lambda: done() or _calls(r)["evalsha"] >= asked + 8, "the workers to ask again")
