"""Fixtures: a real Redis (REDIS_URL, or a private redis-server on a free port), flushed per
test; settings and a store bound to it."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import redis

from flows import lifecycle
from gateway.config import Settings
from gateway.store import Store
from tests.clock import Clock
from tests.servers import free_port, redis_server


@pytest.fixture(scope="session")
def redis_url():
    """REDIS_URL when set, otherwise a private redis-server for this test run."""
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
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
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
    app.extensions["tikaline"].redis.connection_pool.disconnect()


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
