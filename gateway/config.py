"""Settings read from the environment, once, with the defaults the spec promises."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway import redisurl
from gateway.codes import Keyring, keyring

log = logging.getLogger(__name__)


MIN_SECRET_BYTES = 32
_KEY_WAIT = 5.0  # how long a process that lost the race waits for the winner's key


class ConfigError(ValueError):
    """A setting the gateway refuses to start with; the message names the variable."""


def private_dir(path: Path) -> Path:
    """``path`` created (or tightened) to 0700, its files to 0600: it holds the key and the
    data of citizens (an AOF written by an older version may still be 0644)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        path.chmod(0o700)
        for item in path.iterdir():
            if item.is_file() and item.stat().st_mode & 0o077:
                item.chmod(0o600)
    except PermissionError:  # not ours (a mounted volume): the operator decides
        log.warning("cannot make %s private (0700, files 0600)", path)
    return path


def _secret_key(instance_path: Path) -> str:
    """The development key under instance/, created once by whichever process comes first."""
    path = private_dir(instance_path) / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as out:
        out.write(key)
        out.flush()
        os.fsync(out.fileno())
    log.warning("SECRET_KEY unset: generated a development key in %s", path)
    return key


def _read_key(path: Path) -> str:
    """The key another process created; it may still be writing it, so wait for it."""
    deadline = time.monotonic() + _KEY_WAIT
    while True:
        key = path.read_text().strip()
        if key:
            return key
        if time.monotonic() > deadline:
            raise ConfigError(f"SECRET_KEY unset and {path} is empty: delete it or set SECRET_KEY")
        time.sleep(0.01)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Settings:
    """Everything configurable about the gateway; see the README's configuration table."""

    redis_url: str | None = None
    instance_path: Path = Path("instance")
    at_username: str | None = None
    # Secrets stay out of repr: a Settings printed in a log or a traceback shows none.
    at_api_key: str | None = field(default=None, repr=False)
    at_sender_id: str | None = None
    at_base_url: str | None = None
    webhook_token: str | None = field(default=None, repr=False)
    default_region: str = "IN"
    timezone: str = "Asia/Kolkata"
    secret_key: str = field(default="", repr=False)
    secret_key_previous: tuple[str, ...] = field(default=(), repr=False)
    dev: bool = False
    simulator_enabled: bool = True
    simulator_password: str | None = field(default=None, repr=False)
    outbox_concurrency: int = 8
    outbox_rate: float = 50.0
    outbox_max_attempts: int = 8
    # Replies to a booking, VERIFY or DOSE wait until this many replicas have the write
    # (Redis WAIT), at most redis_wait_ms; 0: answer as soon as the master has it.
    redis_wait_replicas: int = 0
    redis_wait_ms: int = 1000
    walkin_daily_limit: int = 60  # WALKIN bookings a vaccinator number may make a day
    clock: Callable[[], float] = time.time  # epoch seconds; tests set the hour they need

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def keyring(self) -> Keyring:
        """SECRET_KEY for new codes, and the earlier keys still accepted for codes texted."""
        return keyring(self.secret_key, self.secret_key_previous)

    @classmethod
    def from_env(
        cls, instance_path: Path | str = "instance", env: Mapping[str, str] | None = None
    ) -> Settings:
        env = os.environ if env is None else env
        instance_path = Path(env.get("INSTANCE_PATH") or instance_path)
        token = env.get("WEBHOOK_TOKEN") or None
        simulator = env.get("SIMULATOR_ENABLED")
        settings = cls(
            redis_url=env.get("REDIS_URL") or None,
            instance_path=instance_path,
            at_username=env.get("AT_USERNAME") or None,
            at_api_key=env.get("AT_API_KEY") or None,
            at_sender_id=env.get("AT_SENDER_ID") or None,
            at_base_url=env.get("AT_BASE_URL") or None,
            webhook_token=token,
            default_region=env.get("DEFAULT_REGION") or "IN",
            timezone=env.get("TIMEZONE") or "Asia/Kolkata",
            secret_key=env.get("SECRET_KEY") or "",
            secret_key_previous=tuple(
                k.strip() for k in (env.get("SECRET_KEY_PREVIOUS") or "").split(",") if k.strip()
            ),
            dev=_flag(env.get("TIKALINE_DEV")),
            # With a webhook token we are in production: the simulator must be asked for.
            simulator_enabled=_flag(simulator) if simulator is not None else token is None,
            outbox_concurrency=int(env.get("OUTBOX_CONCURRENCY") or 8),
            outbox_rate=float(env.get("OUTBOX_RATE") or 50),
            outbox_max_attempts=int(env.get("OUTBOX_MAX_ATTEMPTS") or 8),
            redis_wait_replicas=_count(env, "REDIS_WAIT_REPLICAS", 0),
            redis_wait_ms=_count(env, "REDIS_WAIT_TIMEOUT_MS", 1000),
            simulator_password=env.get("SIMULATOR_PASSWORD") or None,
            walkin_daily_limit=_count(env, "WALKIN_DAILY_LIMIT", 60),
        )
        ZoneInfo(settings.timezone)  # fail at start, not on the first request
        _check_redis_url(settings.redis_url)
        _check_secrets(settings)
        if not settings.secret_key:
            settings.secret_key = _secret_key(instance_path)
        try:
            settings.keyring  # noqa: B018 -- two keys with one id: refuse now, not at VERIFY
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return settings


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number of 0 or more from the environment, or a clear refusal to start."""
    raw = (env.get(name) or "").strip() or str(default)
    if not raw.isdigit():
        raise ConfigError(f"{name} must be a whole number of 0 or more, not {raw!r}")
    return int(raw)


def _check_redis_url(url: str | None) -> None:
    """A cluster URL is read now: a malformed one stops the start, not the first request."""
    if url and redisurl.is_cluster(url):
        try:
            redisurl.parse_cluster(url)
        except redisurl.RedisURLError as exc:
            raise ConfigError(f"REDIS_URL: {exc}") from None


def _check_secrets(settings: Settings) -> None:
    """With a webhook token (production) the key and the simulator's password must be real."""
    if not settings.webhook_token:
        return
    size = len(settings.secret_key.encode())
    if size < MIN_SECRET_BYTES:
        raise ConfigError(
            f"SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes when WEBHOOK_TOKEN is set "
            f"({'unset' if not size else f'{size} bytes'}); e.g. python -c "
            f"'import secrets; print(secrets.token_hex(32))'"
        )
    if settings.simulator_enabled and len(settings.simulator_password or "") < 12:
        raise ConfigError(
            "SIMULATOR_PASSWORD (12 characters or more) is required when "
            "SIMULATOR_ENABLED=1 and WEBHOOK_TOKEN is set: the simulator shows "
            "every phone's codes"
        )


def check_server(settings: Settings, role: str) -> None:
    """Refuse a web server that would leave a door open; ``role`` says who serves:
    ``wsgi`` (gunicorn or any WSGI server), ``flask-run``, ``first-run`` or ``command``."""
    if role in ("wsgi", "flask-run") and not settings.webhook_token and not settings.dev:
        raise ConfigError(
            "WEBHOOK_TOKEN is not set: a web server refuses to start without it (anyone could "
            "post USSD and VERIFY/DOSE); set WEBHOOK_TOKEN, or TIKALINE_DEV=1 for development"
        )
    if role == "wsgi" and not settings.redis_url:
        raise ConfigError(
            "REDIS_URL is not set: the embedded Redis is for the single-process first run "
            "(python app.py); gunicorn's workers need one shared Redis in REDIS_URL"
        )
