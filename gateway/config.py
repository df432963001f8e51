"""Settings read from the environment, once, with the defaults the spec promises."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)


def _secret_key(instance_path: Path) -> str:
    """A development key, generated once and kept under instance/ so codes survive restarts."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    log.warning("SECRET_KEY unset: generated a development key in %s", path)
    return key


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Settings:
    """Everything configurable about the gateway; see the README's configuration table."""

    redis_url: str | None = None
    instance_path: Path = Path("instance")
    at_username: str | None = None
    at_api_key: str | None = None
    at_sender_id: str | None = None
    at_base_url: str | None = None
    webhook_token: str | None = None
    default_region: str = "IN"
    timezone: str = "Asia/Kolkata"
    secret_key: str = ""
    simulator_enabled: bool = True
    outbox_concurrency: int = 8
    outbox_rate: float = 50.0
    outbox_max_attempts: int = 8
    clock: Callable[[], float] = time.time  # epoch seconds; tests set the hour they need
    extra: dict = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, instance_path: Path | str = "instance", env=None) -> Settings:
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
            # With a webhook token we are in production: the simulator must be asked for.
            simulator_enabled=_flag(simulator) if simulator is not None else token is None,
            outbox_concurrency=int(env.get("OUTBOX_CONCURRENCY") or 8),
            outbox_rate=float(env.get("OUTBOX_RATE") or 50),
            outbox_max_attempts=int(env.get("OUTBOX_MAX_ATTEMPTS") or 8),
        )
        ZoneInfo(settings.timezone)  # fail at start, not on the first request
        if not settings.secret_key:
            settings.secret_key = _secret_key(instance_path)
        return settings
