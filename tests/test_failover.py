"""Resilience layer, Redis Cluster failover: each test on a cluster of its own, 3 masters with a
replica each, and a master killed under the gateway. What goes to one master of its own
(REDIS_WAIT_REPLICAS's WAIT, the workers' names behind /healthz) follows the failover too, and a
booking answered with REDIS_WAIT_REPLICAS=1 is on the replica already. Runs on either topology
of the suite (the cluster is its own)."""

from __future__ import annotations

import itertools
import os
import signal
import threading
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from app import create_app
from flows import lifecycle
from gateway.config import Settings
from gateway.outbox import health
from gateway.sample import sample_data
from gateway.store import Outcome, Store, keys
from gateway.store.redisconn import connect, disconnect
from gateway.store.reference import load
from tests.outbox_helpers import running, wait_for
from tests.servers import Cluster, redis_cluster

CENTRE = "C100"  # PHC Saket, the one centre 110017 offers someone born in 1990


@pytest.fixture
def cluster(tmp_path) -> Iterator[Cluster]:
    """A cluster of its own (a master is killed): 3 masters, a replica each."""
    with redis_cluster(masters=3, replicas_per_master=1, workdir=tmp_path / "nodes") as own:
        yield own


def centre_slot() -> int:
    """The slot of the centre's bucket (``{pN}``): its master is the one killed."""
    return key_slot(keys.centre(CENTRE).encode())


def gateway_settings(cluster: Cluster, tmp_path, clock, fake, **extra) -> Settings:
    return Settings(
        redis_url=cluster.url,
        instance_path=tmp_path,
        secret_key="test-secret",
        timezone="Asia/Kolkata",
        clock=clock,
        at_username=fake.username,
        at_api_key=fake.api_key,
        at_sender_id="TIKALINE",
        at_base_url=fake.base_url,
        **extra,
    )


def book_at_centre(store: Store, mobile: str, session_id: str) -> Outcome:
    return store.book(
        mobile=mobile,
        name="Asha Devi",
        birth_year=1990,
        session_id=session_id,
        centre_id=CENTRE,
        slot=0,
    )


def mobiles_off(cluster: Cluster, master: int, count: int) -> list[str]:
    """Mobiles whose buckets another master than ``master`` serves."""
    found = (f"+91960{n:07d}" for n in itertools.count())
    slot_of = {m: key_slot(keys.beneficiaries(m).encode()) for m in itertools.islice(found, 64)}
    return [m for m, slot in slot_of.items() if cluster.master_of(slot) != master][:count]


# -- one request at a time -------------------------------------------------------------------------


def test_a_waited_booking_follows_its_centre_to_the_promoted_replica(
    cluster, tmp_path, clock, fake
):
    """REDIS_WAIT_REPLICAS pins the centre's step to the master its client believes serves the
    centre's bucket (WAIT must reach the write's own master). Once that master has died and
    its replica taken over, and once it is back as that replica's replica, a booking goes to
    the new master: even when nothing else has sent the client to those slots since."""
    settings = gateway_settings(
        cluster, tmp_path, clock, fake, redis_wait_replicas=1, redis_wait_ms=100
    )
    clients = [connect(cluster.url, tmp_path) for _ in range(2)]
    stores = [Store(client, settings, lifecycle) for client in clients]
    data = sample_data(stores[0].now().date())
    load(stores[0], data)
    session = next(s["id"] for s in data["sessions"] if s["centre_id"] == CENTRE)
    first, second, after_death, after_return = mobiles_off(
        cluster, cluster.master_of(centre_slot()), 4
    )
    # Each client learns where the centre is; the mobiles live on the masters that stay up.
    assert book_at_centre(stores[0], first, session).ok
    assert book_at_centre(stores[1], second, session).ok

    dead, _ = cluster.kill_master_of(centre_slot())
    died = book_at_centre(stores[0], after_death, session)
    cluster.restart(dead)  # the old master, back: a replica now, answering MOVED
    returned = book_at_centre(stores[1], after_return, session)

    assert (died.status, returned.status) == ("ok", "ok")
    for ref in (died.value, returned.value):
        assert clients[0].hget(keys.appointment(ref), "state") == b"booked"
    for client in clients:
        disconnect(client)


def worker_state(r, name: str) -> str | None:
    """What the worker says of itself to an operator (``flask sms stats``, /healthz)."""
    return next((w["state"] for w in health.workers(r) if w["worker"] == name), None)


def test_the_health_views_follow_the_workers_home_to_its_new_master(
    cluster, tmp_path, clock, fake, monkeypatch
):
    """Workers tell their state on the master of one slot (``health.HOME``). Once a failover
    has replaced that master, the worker is listed again there, and /healthz reads it there:
    even from a web process no request has sent to that slot since (a load balancer that
    took the web out on a 503 would send none)."""
    monkeypatch.setattr(health, "HEARTBEAT", 0.2)  # a worker says its state again this often
    settings = gateway_settings(cluster, tmp_path, clock, fake)
    web = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    client = connect(cluster.url, tmp_path)
    with running(client, settings) as sender:
        wait_for(lambda: worker_state(client, sender.name) == "ok", "the worker listed")
        assert web.get("/healthz").get_data(as_text=True) == "ok"
        cluster.kill_master_of(key_slot(health.HOME.encode()))
        wait_for(lambda: worker_state(client, sender.name) == "ok", "the worker listed again")
        healthz = web.get("/healthz")
        assert (healthz.status_code, healthz.get_data(as_text=True)) == (200, "ok")
    disconnect(client)


def test_a_waited_booking_is_on_its_masters_replica_when_it_is_answered(
    cluster, tmp_path, clock, fake
):
    """REDIS_WAIT_REPLICAS=1 on a cluster: the centre's step waits at the centre's own master
    until that master's replica has it, so the replica serves the booking the moment the
    caller is told of it."""
    settings = gateway_settings(cluster, tmp_path, clock, fake, redis_wait_replicas=1)
    client = connect(cluster.url, tmp_path)
    store = Store(client, settings, lifecycle)
    data = sample_data(store.now().date())
    load(store, data)
    session = next(s["id"] for s in data["sessions"] if s["centre_id"] == CENTRE)
    master = cluster.master_of(centre_slot())
    replica = cluster.replica_of(master)
    reader = redis.Redis(port=replica, single_connection_client=True)
    reader.execute_command("READONLY")  # a replica serves reads of its master's slots
    answered: list[Outcome] = []
    caller = threading.Thread(
        target=lambda: answered.append(book_at_centre(store, "+919811111111", session))
    )
    os.kill(cluster.processes[replica].pid, signal.SIGSTOP)  # the replica falls behind
    try:
        caller.start()
        wait_for(
            lambda: cluster.node(master).info("clients")["blocked_clients"] == 1,
            "the booking to wait at the centre's master",
        )
        assert answered == []  # not told while only the master has it
    finally:
        os.kill(cluster.processes[replica].pid, signal.SIGCONT)
    caller.join(10)
    [booked] = answered
    assert booked.ok
    assert reader.hget(keys.appointment(booked.value), "state") == b"booked"
    queued = reader.xrange(keys.outbox(keys.ref_partition(booked.value)))
    assert [f[b"k"] for _, f in queued] == [f"book:{booked.value}:0".encode()]  # its code SMS
    reader.close()
    disconnect(client)
