"""Reading ``REDIS_URL``: a single Redis (``redis://``, ``rediss://``, ``unix://``, read by
redis-py itself) or a Redis Cluster, ``redis+cluster://`` (``rediss+cluster://`` for TLS)
followed by one or more seed nodes, comma-separated::

    redis+cluster://[user:password@]host:port[,host:port...][/0][?option=value...]

Any one reachable seed is enough: the client learns the others from the cluster. Credentials
and options (redis-py's URL options, e.g. ``ssl_cert_reqs=none``) apply to every node. A
cluster has only database 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from redis.connection import parse_url

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
DEFAULT_PORT = 6379


class RedisURLError(ValueError):
    """A ``REDIS_URL`` that cannot be connected to; the message says what is wrong."""


@dataclass(frozen=True)
class ClusterURL:
    """A cluster URL taken apart: the first seed as a ``redis://`` node URL (credentials and
    options included), every seed's address, and whether the nodes speak TLS (a connection
    class says so: redis-py would let a ``rediss://`` URL override the class)."""

    node_url: str
    seeds: tuple[tuple[str, int], ...]
    tls: bool


def is_cluster(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster rather than one server."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def parse_cluster(url: str) -> ClusterURL:
    """The seeds and node URL of a ``redis+cluster://`` URL, or RedisURLError."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [IPv6 address
        raise RedisURLError(f"cluster URL: {exc}") from None
    scheme = CLUSTER_SCHEMES.get(parts.scheme)
    if scheme is None:
        raise RedisURLError(f"a cluster URL starts with {' or '.join(_schemes())}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    seeds = tuple(_seed(entry) for entry in hosts.split(","))
    if parts.path not in ("", "/", "/0"):
        raise RedisURLError(f"a Redis Cluster has only database 0, not {parts.path[1:]!r}")
    userinfo = f"{credentials}@" if credentials else ""
    query = f"?{parts.query}" if parts.query else ""
    node_url = f"redis://{userinfo}{_netloc(*seeds[0])}/0{query}"
    _check_options(node_url)
    return ClusterURL(node_url, seeds, tls=scheme == "rediss")


def _seed(entry: str) -> tuple[str, int]:
    """``host:port``, ``[v6 address]:port`` or ``host`` (port 6379) of one seed node."""
    entry = entry.strip()
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise RedisURLError(f"cluster node {entry!r} is not [address]:port")
        port = rest[1:]
    else:
        host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "")
    if not host:
        raise RedisURLError(f"cluster node {entry!r} has no host (host:port,host:port)")
    return host, _port(entry, port)


def _port(entry: str, port: str) -> int:
    if not port:
        return DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise RedisURLError(f"cluster node {entry!r} has no valid port (1-65535)")
    return int(port)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_options(node_url: str) -> None:
    """redis-py's own reading of the options, now rather than at the first connection."""
    try:
        options = parse_url(node_url)
    except ValueError as exc:
        raise RedisURLError(str(exc)) from None
    if options.get("db", 0) != 0:
        raise RedisURLError(f"a Redis Cluster has only database 0, not db={options['db']}")


def _schemes() -> list[str]:
    return [f"{scheme}://" for scheme in CLUSTER_SCHEMES]
