"""App layer (real Redis): the app factory: the web process refuses to start with an open door; the
first run and the operator's commands keep working without a token."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import urllib.request

import pytest

from app import create_app
from gateway.config import ConfigError, Settings
from tests.app_process import ROOT
from tests.servers import free_port

KEY = "k" * 32
# Variables a test's own environment must not lend to the process under test.
_CLEARED = (
    "REDIS_URL",
    "WEBHOOK_TOKEN",
    "SECRET_KEY",
    "SECRET_KEY_PREVIOUS",
    "TIKALINE_DEV",
    "SIMULATOR_ENABLED",
    "SIMULATOR_PASSWORD",
    "INSTANCE_PATH",
    "FLASK_APP",
)


def _env(tmp_path, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    return {**base, "INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONPATH": str(ROOT), **env}


def _gunicorn(tmp_path, timeout: float = 60, **env: str) -> subprocess.Popen:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--no-control-socket",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(ROOT),
            "app:create_app()",
        ],
        cwd=ROOT,
        env=_env(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc.port = port
    return proc


def _refused(tmp_path, **env: str) -> str:
    """Run gunicorn as the Procfile does; it must stop by itself: its output."""
    proc = _gunicorn(tmp_path, **env)
    try:
        output, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        raise AssertionError(f"gunicorn kept running:\n{output}") from None
    assert proc.returncode != 0, output
    return output


def _refusals(output: str) -> list[str]:
    return sorted({line for line in output.splitlines() if "TikaLine cannot start" in line})


def test_gunicorn_without_a_webhook_token_refuses_to_start(tmp_path, redis_url):
    output = _refused(tmp_path, REDIS_URL=redis_url)

    [line] = _refusals(output)
    assert "WEBHOOK_TOKEN is not set" in line
    # No traceback through our code (gunicorn's master may print its own while it halts).
    assert f'"{ROOT}/app.py"' not in output and f'"{ROOT}/gateway/' not in output


def test_gunicorn_without_redis_url_refuses_instead_of_an_embedded_redis_per_worker(tmp_path):
    output = _refused(tmp_path, WEBHOOK_TOKEN="s3cret", SECRET_KEY=KEY)

    [line] = _refusals(output)
    assert "REDIS_URL is not set" in line
    assert not (tmp_path / "instance" / "appendonly.aof").exists()


@pytest.mark.parametrize(
    "url, says",
    [
        ("redis+cluster://127.0.0.1:7000/2", "REDIS_URL: a Redis Cluster has only database 0"),
        ("redis+cluster://127.0.0.1:{port}", "REDIS_URL: Redis Cluster cannot be connected"),
    ],
)
def test_gunicorn_refuses_a_cluster_it_cannot_use_in_one_line(tmp_path, url, says):
    env = {"WEBHOOK_TOKEN": "s3cret", "SECRET_KEY": KEY}
    output = _refused(tmp_path, REDIS_URL=url.format(port=free_port()), **env)

    [line] = _refusals(output)
    assert says in line
    assert f'"{ROOT}/app.py"' not in output and f'"{ROOT}/gateway/' not in output


@pytest.mark.parametrize("key", ["", "x", "k" * 31])
def test_gunicorn_with_a_token_refuses_a_missing_or_short_secret_key(tmp_path, redis_url, key):
    output = _refused(tmp_path, REDIS_URL=redis_url, WEBHOOK_TOKEN="s3cret", SECRET_KEY=key)

    [line] = _refusals(output)
    assert "SECRET_KEY must be at least 32 bytes" in line


@pytest.mark.parametrize(
    "env",
    [
        {"WEBHOOK_TOKEN": "s3cret", "SECRET_KEY": KEY},
        {"TIKALINE_DEV": "1"},  # asked for explicitly: no token, development
    ],
)
def test_gunicorn_starts_when_nothing_is_left_open(tmp_path, redis_url, env):
    proc = _gunicorn(tmp_path, REDIS_URL=redis_url, **env)
    try:
        assert _healthz(proc) == 200
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert not _refusals(output)


def _healthz(proc, attempts: int = 600) -> int:
    """/healthz of a starting gunicorn, polled until it answers (or gunicorn exits)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(attempts):
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read())
        try:
            with opener.open(f"http://127.0.0.1:{proc.port}/healthz", timeout=5) as response:
                return response.status
        except OSError:
            try:
                proc.wait(0.1)  # not up yet: a tenth of a second, or until gunicorn exits
            except subprocess.TimeoutExpired:
                pass
    raise AssertionError("gunicorn did not answer /healthz")


def _flask(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_flask_run_without_a_webhook_token_refuses_to_start(tmp_path, redis_url):
    result = _flask(tmp_path, "run", "--port", str(free_port()), REDIS_URL=redis_url)

    [line] = _refusals(result.stderr)
    assert result.returncode != 0 and "WEBHOOK_TOKEN is not set" in line


def test_operator_commands_need_no_webhook_token(tmp_path, redis_url, r):
    result = _flask(tmp_path, "remove-vaccinator", "+919800000009", REDIS_URL=redis_url)

    assert "+919800000009 is not a registered vaccinator" in result.stderr
    assert "cannot start" not in result.stderr


def test_settings_refuse_a_short_secret_key_with_a_token(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY must be at least 32 bytes"):
        Settings.from_env(tmp_path, env={"WEBHOOK_TOKEN": "t", "SECRET_KEY": "k" * 31})
    ok = Settings.from_env(tmp_path, env={"WEBHOOK_TOKEN": "t", "SECRET_KEY": "é" * 16})
    assert ok.secret_key == "é" * 16  # bytes count, not characters
    assert not (tmp_path / "secret_key").exists()


def test_an_unset_webhook_token_is_warned_about_at_start(settings, caplog):
    with caplog.at_level(logging.WARNING):
        create_app({"SETTINGS": settings})
    assert "WEBHOOK_TOKEN unset" in caplog.text


def test_a_set_webhook_token_starts_quietly(settings, caplog):
    with caplog.at_level(logging.WARNING):
        create_app({"SETTINGS": dataclasses.replace(settings, webhook_token="s3cret")})
    assert "WEBHOOK_TOKEN" not in caplog.text


def test_the_first_runs_access_log_never_shows_the_webhook_token():
    from gateway.firstrun import redact_token

    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        __file__,
        1,
        '"%s" %s %s',
        ("POST /sms/inbound?token=s3cret&x=1 HTTP/1.1", "200", "-"),
        None,
    )
    assert redact_token(record)
    line = record.getMessage()
    assert "s3cret" not in line and "/sms/inbound?token=***&x=1" in line


def test_settings_never_show_their_secrets(tmp_path):
    settings = Settings.from_env(
        tmp_path,
        env={
            "WEBHOOK_TOKEN": "tok-123",
            "SECRET_KEY": "s" * 32,
            "SECRET_KEY_PREVIOUS": "p" * 32,
            "AT_API_KEY": "atkey-456",
            "SIMULATOR_ENABLED": "1",
            "SIMULATOR_PASSWORD": "correct horse battery",
        },
    )
    shown = repr(settings)
    assert all(
        secret not in shown
        for secret in ("tok-123", "s" * 32, "p" * 32, "atkey-456", "correct horse")
    )


def _hop_log(client, capsys) -> str:
    from tests.conversation_helpers import Phone

    capsys.readouterr()
    phone = Phone(client)
    phone.dial()
    phone.press("1")  # the menu's machine leaves main, the booking's enters name
    return capsys.readouterr().err


@pytest.mark.parametrize("level", [None, "INFO", "warning"])
def test_a_ussd_hop_logs_one_line_and_no_state_machine_chatter(
    settings, r, monkeypatch, capsys, level
):
    if level:
        monkeypatch.setenv("LOG_LEVEL", level)
    else:
        monkeypatch.delenv("LOG_LEVEL", raising=False)
    log = _hop_log(create_app({"SETTINGS": settings}).test_client(), capsys)
    assert "transitions" not in log
    assert log.count("event=ussd_hop") == (0 if level == "warning" else 2)


def test_at_debug_the_state_machines_say_what_they_do(settings, r, monkeypatch, capsys):
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    log = _hop_log(create_app({"SETTINGS": settings}).test_client(), capsys)
    assert "transitions.core: Finished processing state main exit callbacks." in log
