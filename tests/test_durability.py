"""REDIS_WAIT_REPLICAS: a booking, VERIFY or DOSE is answered once a replica has it."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from contextlib import contextmanager

import pytest
import redis

from flows import lifecycle
from gateway.store import Store, keys
from gateway.store.reference import load
from tests.servers import free_port, redis_server

pytestmark = pytest.mark.single_redis(reason="a master and its replica of its own")


@contextmanager
def master_and_replica(tmp_path):
    ports = free_port(), free_port()
    master = redis_server(ports[0], tmp_path / "m")
    replica = redis_server(ports[1], tmp_path / "r", "--replicaof", "127.0.0.1", str(ports[0]))
    try:
        clients = [redis.Redis(port=p) for p in ports]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # waiting for the link, not timing anything
            try:
                if clients[1].info("replication").get("master_link_status") == "up":
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.05)
        yield clients, replica
    finally:
        for proc in (master, replica):
            proc.kill()
            proc.wait(10)


@pytest.fixture
def dirs(tmp_path):
    for name in ("m", "r"):
        (tmp_path / name).mkdir()
    return tmp_path


def test_a_booking_is_on_the_replica_when_it_is_answered(dirs, settings):
    with master_and_replica(dirs) as ((master, replica), _):
        store = Store(master, dataclasses.replace(settings, redis_wait_replicas=1), lifecycle)
        data = load_sample(store)
        booked = store.book(
            mobile="+919811111111",
            name="Asha Devi",
            birth_year=1990,
            session_id=data["sessions"][0]["id"],
            slot=0,
        )
        assert booked.ok
        assert replica.hget(keys.appointment(booked.value), "state") == b"booked"


def test_a_replica_that_does_not_answer_in_time_delays_the_reply_only_that_long(
    dirs, settings, caplog
):
    with master_and_replica(dirs) as ((master, replica), replica_proc):
        wait = dataclasses.replace(settings, redis_wait_replicas=1, redis_wait_ms=200)
        store = Store(master, wait, lifecycle)
        data = load_sample(store)
        os.kill(replica_proc.pid, signal.SIGSTOP)
        try:
            with caplog.at_level(logging.WARNING, logger="tikaline.store"):
                booked = store.book(
                    mobile="+919811111111",
                    name="Asha Devi",
                    birth_year=1990,
                    session_id=data["sessions"][0]["id"],
                    slot=0,
                )
        finally:
            os.kill(replica_proc.pid, signal.SIGCONT)
        assert booked.ok  # answered: the master has it
        assert master.hget(keys.appointment(booked.value), "state") == b"booked"
        assert "event=replicas_lagging script=book replicas=0 wanted=1" in caplog.text


def load_sample(store):
    from gateway.sample import sample_data

    data = sample_data(store.now().date())
    load(store, data)
    return data
