"""Resilience layer, Redis Cluster failover: each test on a cluster of its own, 3 masters with a
replica each, and a master killed under the gateway. The whole gateway under load (the web app
and an outbox worker, each with its own client): callers get polite answers while the master is
down and book again once its replica is promoted, from the same app, clients and worker, and
nothing is lost, doubled or overbooked. One request at a time: what goes to one master of its
own (REDIS_WAIT_REPLICAS's WAIT, the workers' names behind /healthz) follows the failover too,
and a booking answered with REDIS_WAIT_REPLICAS=1 is on the replica already. Runs on either
topology of the suite (the cluster is its own)."""

from __future__ import annotations

import itertools
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import redis
from redis.crc import key_slot

from app import create_app
from flows import lifecycle, messages
from gateway.config import Settings
from gateway.outbox import health, worker
from gateway.sample import sample_data
from gateway.store import Outcome, Store, booking, keys
from gateway.store.redisconn import connect, disconnect
from gateway.store.reference import load
from tests.conversation_helpers import appointments, booked_counts
from tests.outbox_helpers import in_outbox, pending, running, wait_for
from tests.servers import Cluster, redis_cluster

CENTRE = "C100"  # PHC Saket, the one centre 110017 offers someone born in 1990
BUSY = "END " + messages.text("ussd.busy")
BOOKED = re.compile(r"^END Booked .*Ref (\d{5} \d{5})")
CODE_SMS = re.compile(r"Ref (\d{5} \d{5}) Code \d{4}")


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


# -- the whole gateway under load: the callers -----------------------------------------------------


@dataclass
class Seen:
    """What the callers saw: each booking acknowledged, each polite refusal, anything else."""

    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    booked: list[tuple[str, float, float]] = field(default_factory=list)  # ref, asked, answered
    refused: list[tuple[str, float]] = field(default_factory=list)  # "ussd busy" or "sms 503", when
    impolite: list[str] = field(default_factory=list)  # a 500, a reply without CON/END, …

    def acknowledged(self, since: float = 0.0) -> list[tuple[str, float, float]]:
        """Bookings whose confirming request was sent after ``since`` (monotonic)."""
        with self.lock:
            return [b for b in self.booked if b[1] >= since]

    def note(self, what: str) -> None:
        with self.lock:
            self.impolite.append(what)

    def refuse(self, what: str) -> None:
        with self.lock:
            self.refused.append((what, time.monotonic()))


def ussd_caller(app, seen: Seen, series: int) -> None:
    """Books again and again, a new mobile each time, as long as the load runs."""
    web, pick = app.test_client(), random.Random(series)
    for n in itertools.count():
        if seen.stop.is_set():
            return
        mobile = f"+917{series:02d}{n:07d}"
        date, slot = str(pick.randint(1, 7)), str(pick.randint(1, 3))
        try:
            ussd_booking(web, seen, mobile, ["1", "Asha Devi", "1990", "110017", "1", date, slot])
        except Exception as exc:  # the test client raised: a bug in the view
            seen.note(f"{mobile}: {type(exc).__name__}: {exc}")


def ussd_booking(web, seen: Seen, mobile: str, answers: list[str]) -> None:
    """One dial through to "Booked … Ref …", or the first END (busy, most likely)."""
    session, typed = f"ATUid_{mobile[1:]}", []
    for answer in [None, *answers, "1"]:
        typed += [answer] if answer is not None else []
        asked = time.monotonic()
        form = {"sessionId": session, "serviceCode": "*384*1#", "phoneNumber": mobile}
        reply = web.post("/ussd", data={**form, "networkCode": "40410", "text": "*".join(typed)})
        body = reply.get_data(as_text=True)
        if reply.status_code != 200 or not body.startswith(("CON ", "END ")):
            seen.note(f"ussd {reply.status_code}: {body[:120]}")
            return
        if body.startswith("END"):
            booked = BOOKED.match(body)
            if booked:
                with seen.lock:
                    seen.booked.append((booked.group(1), asked, time.monotonic()))
            else:
                seen.refuse("ussd busy" if body == BUSY else body)
            return


def sms_texter(app, seen: Seen, series: int) -> None:
    """Books over SMS, each text sent again with its id until answered 200, as the provider
    does with a callback answered 503."""
    web, ids = app.test_client(), itertools.count()
    for n in itertools.count():
        mobile = f"+918{series:02d}{n:07d}"
        for text in ("BOOK 110017", "Ravi Kumar", "1990", "1", "1", "1", "YES"):
            message_id = f"ec9adc86-{series:04d}-{next(ids):08d}"
            while not seen.stop.is_set() and not sms_applied(web, seen, mobile, text, message_id):
                seen.stop.wait(0.05)  # the provider's pause between retries
            if seen.stop.is_set():
                return


def sms_applied(web, seen: Seen, mobile: str, text: str, message_id: str) -> bool:
    form = {"from": mobile, "to": "56767", "text": text, "id": message_id}
    reply = web.post("/sms/inbound", data={**form, "date": "2026-12-01T06:04:45Z"})
    if reply.status_code == 503:
        seen.refuse("sms 503")
    elif reply.status_code != 200:
        seen.note(f"sms {reply.status_code}: {reply.get_data(as_text=True)[:120]}")
    return reply.status_code == 200


@contextmanager
def callers(app, ussd: int = 3, sms: int = 1) -> Iterator[Seen]:
    """``ussd`` callers and ``sms`` texters booking in threads until the block ends."""
    seen = Seen()
    threads = [threading.Thread(target=ussd_caller, args=(app, seen, i)) for i in range(ussd)]
    threads += [threading.Thread(target=sms_texter, args=(app, seen, i)) for i in range(sms)]
    for thread in threads:
        thread.start()
    try:
        yield seen
    finally:
        seen.stop.set()
        for thread in threads:
            thread.join(30)
        assert not any(t.is_alive() for t in threads), "a caller did not stop"


# -- what Redis holds in the end -------------------------------------------------------------------


def code_sms_per_ref(fake) -> Counter:
    """How many code SMS the provider was handed for each booking reference."""
    found = (CODE_SMS.search(d["message"]) for d in list(fake.delivered))
    return Counter(m.group(1).replace(" ", "") for m in found if m)


def in_flight(r) -> int:
    """Bookings reserved on a mobile and not yet settled, over every bucket."""
    with r.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.zcard(keys.reserved(p))
        return sum(pipe.execute())


# -- the whole gateway under load: the test --------------------------------------------------------


def test_a_master_killed_mid_load_is_followed_by_the_same_gateway(
    cluster, tmp_path, clock, fake, monkeypatch
):
    """With REDIS_WAIT_REPLICAS=1 an acknowledged booking is on the replica that takes over,
    so every "Booked" a caller was told must still be there afterwards."""
    monkeypatch.setattr(worker, "SETTLE_EVERY", 0.2)  # sweep half-done bookings often
    settings = gateway_settings(cluster, tmp_path, clock, fake, redis_wait_replicas=1)
    app = create_app({"SETTINGS": settings, "TESTING": True})
    web = app.extensions["tikaline"]
    load(web.store, sample_data(web.store.now().date()))
    own = connect(cluster.url, tmp_path)  # the worker's process has a client of its own
    try:
        with running(own, settings) as sender:
            with callers(app) as seen:
                kill_mid_load(cluster, seen)
            booked = {ref.replace(" ", "") for ref, _, _ in seen.acknowledged()}
            wait_for(lambda: booked <= set(code_sms_per_ref(fake)), "their code SMS", 20)
            clock.advance(booking.IN_FLIGHT + 1)  # what a failed request left in flight is due
            wait_for(lambda: in_flight(web.redis) == 0, "the sweeper to settle bookings", 20)
            wait_for(lambda: in_outbox(own) == 0, "the outbox to drain", 20)
            wait_for(lambda: worker_state(web.redis, sender.name) == "ok", "a worker at ease")
        assert seen.impolite == []
        assert {what for what, _ in seen.refused} <= {"ussd busy", "sms 503"}
        assert seen.refused, "no caller met the failover"
        audit(web.redis, fake, booked)
    finally:
        disconnect(own)
        disconnect(web.redis)


def kill_mid_load(cluster: Cluster, seen: Seen) -> None:
    """Once bookings flow, kill the centre's master; return once bookings flow again through
    its promoted replica, saying how long that took."""
    wait_for(lambda: len(seen.acknowledged()) >= 10, "bookings before the kill")
    dead, _ = cluster.kill_master_of(centre_slot())
    killed, promoted = cluster.killed_at[dead], time.monotonic()
    wait_for(
        lambda: len(seen.acknowledged(since=promoted)) >= 6,
        "bookings on the promoted master",
        timeout=20,
    )
    first = min(answered for _, _, answered in seen.acknowledged(since=killed))
    print(
        f"\nreplica promoted {promoted - killed:.1f} s after the kill, first booking"
        f" {first - killed:.1f} s after it; refusals: {dict(Counter(w for w, _ in seen.refused))}"
    )


def audit(r, fake, booked: set[str]) -> None:
    """Every acknowledged booking in Redis, one code SMS sent for each booking and none for
    anything else, no slot over its capacity, no SMS left pending."""
    # A booking the sweeper voided (its centre step never ran) leaves only a tombstone.
    stored = {ref: a for ref, a in appointments(r).items() if a["state"] != "void"}
    assert booked <= set(stored)  # every "Booked" a caller was told survived the failover
    sms = code_sms_per_ref(fake)
    assert {ref: sms[ref] for ref in stored if sms[ref] != 1} == {}  # one code SMS each
    assert set(sms) <= set(stored)  # and none for a booking that is not there
    per_slot = Counter((a["sid"], int(a["slot"])) for a in stored.values())
    for slot, (counted, capacity) in booked_counts(r).items():
        assert per_slot[slot] == counted <= capacity, slot
    assert pending(r) == 0
