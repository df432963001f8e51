"""The Redis connection: the one in REDIS_URL, or an embedded server for a first run."""

from __future__ import annotations

from pathlib import Path

import redis

from gateway import embedded


def connect(url: str | None, instance_path: Path) -> redis.Redis:
    """A client for ``url``, or for the embedded server when ``url`` is None."""
    url = url or embedded.shared(instance_path).url
    return redis.Redis.from_url(
        url, health_check_interval=30, socket_timeout=5, socket_connect_timeout=5
    )
