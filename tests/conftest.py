"""Fixtures: a real Redis, flushed per test; settings and a store bound to it.

The topology is chosen by the environment: ``TIKALINE_TEST_REDIS=cluster`` runs the suite on a
private 3-master Redis Cluster (or on the cluster a ``redis+cluster://`` REDIS_URL names);
otherwise REDIS_URL, or a private redis-server on a free port. Tests marked
``single_redis`` need one server and are skipped on a cluster, with their reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import redis

from flows import lifecycle
from gateway import redisurl
from gateway.config import Settings
from gateway.store import Store
from gateway.store.redisconn import disconnect, from_url
from tests.clock import Clock
from tests.servers import free_port, redis_cluster, redis_server

TOPOLOGIES = ("single", "cluster")


def topology() -> str:
    """``cluster`` when TIKALINE_TEST_REDIS=cluster or REDIS_URL names a cluster, else
    ``single``."""
    chosen = os.environ.get("TIKALINE_TEST_REDIS") or "single"
    if chosen not in TOPOLOGIES:
        raise pytest.UsageError(f"TIKALINE_TEST_REDIS={chosen!r}: one of {', '.join(TOPOLOGIES)}")
    url = os.environ.get("REDIS_URL")
    if chosen == "cluster" and url and not redisurl.is_cluster(url):
        raise pytest.UsageError(
            "TIKALINE_TEST_REDIS=cluster but REDIS_URL names one server: unset REDIS_URL "
            "(the tests start a cluster) or give a redis+cluster:// URL"
        )
    return "cluster" if url and redisurl.is_cluster(url) else chosen


def pytest_report_header(config) -> str:
    return f"redis topology: {topology()} (TIKALINE_TEST_REDIS=single|cluster)"


def pytest_collection_modifyitems(config, items):
    """On a cluster, skip what needs one server (``@pytest.mark.single_redis(reason=...)``)."""
    if topology() != "cluster":
        return
    for item in items:
        marker = item.get_closest_marker("single_redis")
        if marker:
            reason = marker.kwargs.get("reason") or (marker.args or ["one server"])[0]
            item.add_marker(pytest.mark.skip(reason=f"needs a single Redis: {reason}"))


@pytest.fixture(scope="session")
def private_cluster():
    """The private 3-master cluster of a cluster run when no REDIS_URL names one, else None."""
    if topology() != "cluster" or os.environ.get("REDIS_URL"):
        yield None
        return
    with redis_cluster(masters=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_url(private_cluster):
    """The cluster of a cluster run, REDIS_URL when set, else a private redis-server."""
    if private_cluster is not None:
        yield private_cluster.url
        return
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="tikaline-redis-")
    proc = redis_server(port, workdir)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.025)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def r(redis_url):
    """A client of the test Redis (on a cluster: of every node), flushed around the test."""
    client = from_url(redis_url)
    client.flushdb()  # on a cluster: on every primary
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def clock() -> Clock:
    """The store's clock: today in Asia/Kolkata at 08:00, before any slot, until moved."""
    return Clock("Asia/Kolkata", "08:00")


@pytest.fixture
def settings(redis_url, tmp_path: Path, clock) -> Settings:
    return Settings(
        redis_url=redis_url,
        instance_path=tmp_path,
        secret_key="test-secret",
        timezone="Asia/Kolkata",
        clock=clock,
    )


@pytest.fixture
def store(r, settings) -> Store:
    return Store(r, settings, lifecycle)


@pytest.fixture
def sample(store):
    """The demo data loaded for the current week (today in TIMEZONE first)."""
    from gateway.sample import sample_data
    from gateway.store.reference import load

    data = sample_data(store.now().date())
    load(store, data)
    return data


@pytest.fixture
def client(settings, r):
    """A test client of the whole app, on the test Redis (flushed around each test)."""
    from app import create_app

    app = create_app({"SETTINGS": settings, "TESTING": True})
    yield app.test_client()
    disconnect(app.extensions["tikaline"].redis)


@pytest.fixture
def fake():
    """A local HTTP server playing the Africa's Talking SMS API, on loopback."""
    from tests.fake_at import FakeAT

    with FakeAT() as server:
        yield server


@pytest.fixture
def at_settings(settings, fake):
    """Settings that send through the real SDK to ``fake``."""
    settings.at_username = fake.username
    settings.at_api_key = fake.api_key
    settings.at_sender_id = "TIKALINE"
    settings.at_base_url = fake.base_url
    return settings
