"""The first run: ``python app.py`` with nothing configured brings up a working gateway."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from gateway.config import Settings
from tests.app_process import ROOT, AppProcess, listening


@pytest.fixture
def first_run(tmp_path):
    """``python app.py`` from a fresh directory: no REDIS_URL, no keys, an empty instance/."""
    app = AppProcess(tmp_path, INSTANCE_PATH=str(tmp_path / "instance"))
    yield app
    if app.proc:
        app.stop()


def test_first_run_brings_up_gateway_with_demo_data_on_loopback_only(first_run, tmp_path):
    first_run.start()

    assert first_run.get("/healthz")[0] == 200
    assert "loaded demo data: 5 centres" in first_run.banner("Data")
    assert "+919800000001  A. Kumar, centre C100 PHC Saket, pincode 110017" in first_run.output
    assert "+919800000002" in first_run.output
    status, page = first_run.get("/simulator/")
    assert status == 200 and "A. Kumar, PHC Saket (C100)" in page
    status, screen = first_run.post("/ussd", {
        "sessionId": "ATUid_first", "serviceCode": "*384*1#", "phoneNumber": "+919811111111",
        "networkCode": "99999", "text": ""})
    assert status == 200 and screen.startswith("CON ")

    # Nobody else on the network can reach a first run.
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to list listening sockets")
    assert listening(first_run.port) == ["0100007F"]  # 127.0.0.1, and no IPv6 socket
    assert "127.0.0.1:" in first_run.banner("Listening on")

    # The embedded Redis keeps its data under instance/ (AOF), and stops with the app.
    assert "embedded redis-server" in first_run.banner("Redis")
    socket_file = first_run.banner("Redis").rsplit("socket ", 1)[1]
    assert first_run.stop() == 0
    assert "Stopping TikaLine." in first_run.output
    assert not Path(socket_file).exists(), "the embedded redis-server outlived the app"
    assert (tmp_path / "instance" / "appendonly.aof").exists()
    assert (tmp_path / "instance" / "secret_key").exists()


def test_restart_keeps_the_data_and_does_not_reload_the_demo(first_run, tmp_path):
    first_run.start()
    first_run.stop()

    again = AppProcess(tmp_path, INSTANCE_PATH=str(tmp_path / "instance")).start()
    try:
        assert "kept the 5 centres already in Redis" in again.banner("Data")
        assert again.get("/healthz")[0] == 200
    finally:
        assert again.stop() == 0


def test_bad_port_is_refused_with_a_clear_message(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=tmp_path,
                            env={"PORT": "http", "INSTANCE_PATH": str(tmp_path / "i"),
                                 "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "PORT must be a port number" in result.stderr


@pytest.mark.parametrize("env, reachable", [
    ({}, True),                                              # development: on
    ({"WEBHOOK_TOKEN": "s3cret"}, False),                    # production: off unless asked
    ({"WEBHOOK_TOKEN": "s3cret", "SIMULATOR_ENABLED": "0"}, False),
    ({"WEBHOOK_TOKEN": "s3cret", "SIMULATOR_ENABLED": "1"}, True),
])
def test_simulator_exists_only_when_allowed(redis_url, tmp_path, env, reachable):
    settings = Settings.from_env(tmp_path, env={"REDIS_URL": redis_url, "SECRET_KEY": "k",
                                                **env})
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()

    for path in ("/simulator/", "/simulator/inbox?phone=%2B919811111111",
                 "/simulator/static/simulator.js"):
        assert client.get(path).status_code == (200 if reachable else 404), path


def test_banner_says_when_the_simulator_is_off(tmp_path):
    app = AppProcess(tmp_path, INSTANCE_PATH=str(tmp_path / "instance"),
                     WEBHOOK_TOKEN="s3cret", DEMO_DATA="0").start()
    try:
        assert app.banner("Phone simulator").startswith("off (WEBHOOK_TOKEN is set")
        assert app.get("/simulator/")[0] == 404
        assert "demo data not loaded (DEMO_DATA=0)" in app.banner("Data")
    finally:
        app.stop()
