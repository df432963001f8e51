"""Process layer: the first run: ``python app.py`` with nothing configured brings up a working
gateway."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
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
    # Vaccinator numbers are masked (the simulator lists them in full, on this machine only).
    assert "+9198******01  A. Kumar, centre C100 PHC Saket, pincode 110017" in first_run.output
    assert "+9198******02" in first_run.output and "+919800000001" not in first_run.output
    status, page = first_run.get("/simulator/")
    assert status == 200 and "A. Kumar, PHC Saket (C100)" in page
    status, screen = first_run.post(
        "/ussd",
        {
            "sessionId": "ATUid_first",
            "serviceCode": "*384*1#",
            "phoneNumber": "+919811111111",
            "networkCode": "99999",
            "text": "",
        },
    )
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
    # instance/ holds names, phones, birth years and the key: this user's only.
    assert _mode(tmp_path / "instance") == 0o700
    assert {p.name: _mode(p) for p in (tmp_path / "instance").rglob("*") if p.is_file()} == {
        p.name: 0o600 for p in (tmp_path / "instance").rglob("*") if p.is_file()
    }


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


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
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env={"PORT": "http", "INSTANCE_PATH": str(tmp_path / "i"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "PORT must be a port number" in result.stderr


@pytest.mark.parametrize(
    "env, reachable",
    [
        ({}, True),  # development: on
        ({"WEBHOOK_TOKEN": "s3cret"}, False),  # production: off unless asked
        ({"WEBHOOK_TOKEN": "s3cret", "SIMULATOR_ENABLED": "0"}, False),
        ({"WEBHOOK_TOKEN": "s3cret", "SIMULATOR_ENABLED": "1"}, True),
    ],
)
def test_simulator_exists_only_when_allowed(redis_url, tmp_path, env, reachable):
    settings = Settings.from_env(
        tmp_path,
        env={
            "REDIS_URL": redis_url,
            "SECRET_KEY": "k" * 32,
            "SIMULATOR_PASSWORD": "correct horse battery",
            **env,
        },
    )
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    if reachable and "WEBHOOK_TOKEN" in env:  # a deployment: behind its login
        client.post("/simulator/login", data={"password": "correct horse battery"})

    for path in (
        "/simulator/",
        "/simulator/inbox?phone=%2B919811111111",
        "/simulator/static/simulator.js",
    ):
        assert client.get(path).status_code == (200 if reachable else 404), path


def test_banner_says_when_the_simulator_is_off(tmp_path):
    app = AppProcess(
        tmp_path,
        INSTANCE_PATH=str(tmp_path / "instance"),
        WEBHOOK_TOKEN="s3cret",
        SECRET_KEY="k" * 32,
        DEMO_DATA="0",
    ).start()
    try:
        assert app.banner("Phone simulator").startswith("off (WEBHOOK_TOKEN is set")
        assert app.get("/simulator/")[0] == 404
        assert "demo data not loaded (DEMO_DATA=0)" in app.banner("Data")
    finally:
        app.stop()


def test_the_first_run_on_an_open_address_needs_a_token(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env={
            "HOST": "0.0.0.0",
            "PORT": "0",
            "PATH": "/usr/bin:/bin",
            "INSTANCE_PATH": str(tmp_path / "i"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "WEBHOOK_TOKEN is not set and HOST=0.0.0.0 is not loopback" in line
    assert not (tmp_path / "i").exists()  # refused before anything was started or written


def _derive_key(instance: str, barrier, out) -> None:
    barrier.wait()  # every process asks for the key at the same moment
    out.put(Settings.from_env(instance, env={}).secret_key)


def test_processes_started_together_agree_on_one_development_key(tmp_path):
    ctx = multiprocessing.get_context("fork")
    trials = []
    for trial in range(10):
        instance = tmp_path / f"instance{trial}"
        barrier, out = ctx.Barrier(6), ctx.Queue()
        procs = [
            ctx.Process(target=_derive_key, args=(str(instance), barrier, out)) for _ in range(6)
        ]
        for p in procs:
            p.start()
        trials.append((instance, [out.get(timeout=30) for _ in procs]))
        for p in procs:
            p.join(10)
    disagreed = [keys for _, keys in trials if len(set(keys)) != 1 or not all(keys)]
    assert not disagreed, f"{len(disagreed)} of 10 trials: {disagreed[0]}"
    for instance, keys in trials:
        assert (instance / "secret_key").read_text() == keys[0] and len(keys[0]) == 64
        assert _mode(instance / "secret_key") == 0o600 and _mode(instance) == 0o700


def _embedded_server(app: AppProcess) -> psutil.Process:
    """The redis-server behind the banner's socket (found by its directory, whoever started
    it), the one that is not a zombie."""
    where = str(Path(app.banner("Redis").rsplit("socket ", 1)[1]).parent)
    [server] = [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "redis-server"
        and not _gone(p)
        and where in " ".join(p.info["cmdline"] or [])
    ]
    return server


def _until(condition, what: str, timeout: float = 30) -> None:
    """Poll ``condition`` (a bounded wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {timeout}s"
        time.sleep(0.05)


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _hop(app: AppProcess, session: str) -> tuple[int, str]:
    return app.post(
        "/ussd",
        {
            "sessionId": session,
            "serviceCode": "*384*1#",
            "phoneNumber": "+919811111111",
            "networkCode": "99999",
            "text": "",
        },
    )


def test_the_first_run_restarts_its_embedded_redis_when_it_dies(first_run):
    first_run.start()
    server = _embedded_server(first_run)

    server.kill()  # SIGKILL: no clean shutdown

    _until(
        lambda: (
            first_run.get("/healthz")[0] == 200 and _embedded_server(first_run).pid != server.pid
        ),
        "healthy again with a new redis-server",
    )
    status, screen = _hop(first_run, "ATUid_after_restart")
    assert status == 200 and screen.startswith("CON ")
    assert "restarting it" in first_run.output
    # The data came back from the AOF: the demo's vaccinators are still there.
    assert "A. Kumar, PHC Saket (C100)" in first_run.get("/simulator/")[1]
    assert first_run.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_embedded_redis_never_outlives_the_first_run(first_run, sig):
    first_run.start()
    server = _embedded_server(first_run)

    first_run.proc.send_signal(sig)
    first_run.proc.wait(30)

    _until(lambda: _gone(server), "gone: the embedded redis-server outlived python app.py")


def test_ctrl_c_in_a_terminal_stops_the_worker_before_its_redis(first_run):
    first_run.start()

    os.killpg(first_run.proc.pid, signal.SIGINT)  # a terminal sends Ctrl+C to the whole group

    assert first_run.proc.wait(30) == 0
    _until(lambda: "event=outbox_worker_stopped" in first_run.output, "stopped the worker")
    assert "outbox_stuck" not in first_run.output, first_run.output


def test_a_command_beside_the_first_run_uses_its_embedded_redis(first_run, tmp_path):
    first_run.start()
    server = _embedded_server(first_run)
    env = {k: v for k, v in first_run.env.items() if k != "PORT"}

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            str(ROOT / "app.py"),
            "remove-vaccinator",
            "+919800000002",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "+919800000002 is no longer a vaccinator" in result.stdout
    # Seen by the first run at once: one server, no second one on the same AOF.
    assert "+919800000002" not in first_run.get("/simulator/")[1]
    # Read through process_iter's info: another test's zombie redis-server has no cmdline.
    assert [
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "redis-server" and str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ] == [server.pid]


def test_an_instance_from_an_older_version_is_made_private(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    (instance / "appendonly.aof").write_text("*1\r\n$4\r\nPING\r\n")
    (instance / "appendonly.aof").chmod(0o644)

    Settings.from_env(instance, env={})

    assert _mode(instance) == 0o700 and _mode(instance / "appendonly.aof") == 0o600
