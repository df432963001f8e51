"""The Redis connection: the one in REDIS_URL (one server, or a Redis Cluster with
``redis+cluster://``, see gateway/redisurl.py), or an embedded server for a first run."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import MovedError
from redis.retry import Retry

from gateway import embedded, redisurl

Client = redis.Redis | RedisCluster
"""A client of either topology: annotate with this wherever a client is passed around."""

HEALTH_CHECK_INTERVAL = 30  # a connection idle this long is pinged before it is used
# The gateway's own timeouts: a stalled Redis fails a request rather than hanging it.
TIMEOUTS: dict[str, Any] = {
    "health_check_interval": HEALTH_CHECK_INTERVAL,
    "socket_timeout": 5,
    "socket_connect_timeout": 5,
}
# A cluster client retries a command that met a closed connection, a refused one or a
# cluster that is down (each time after refreshing its map of the slots), so a failover is
# followed by the next command. It follows MOVED and ASK by itself, up to 16 redirections.
CLUSTER_RETRIES = 3
# What sends a command pinned to one node back to the slot map: the node is gone, or it no
# longer serves the slot (a master that failed and came back as its successor's replica).
NODE_GONE = (redis.ConnectionError, redis.TimeoutError, MovedError)
T = TypeVar("T")


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=0.05, cap=1.0)


def connect(url: str | None, instance_path: Path) -> Client:
    """A client for ``url``, or for the embedded server when ``url`` is None."""
    url = url or embedded.shared(instance_path).url
    return from_url(url, **TIMEOUTS)


def from_url(url: str, **options: Any) -> Client:
    """A client of the server or cluster ``url`` names, with redis-py ``options`` (nothing
    is added: ``connect`` brings the gateway's timeouts)."""
    if redisurl.is_cluster(url):
        return cluster_from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def cluster_from_url(
    url: str, cls: type[RedisCluster] = RedisCluster, **options: Any
) -> RedisCluster:
    """A cluster client seeded with every node of a ``redis+cluster://`` URL; it connects
    now, to learn which node serves which slot (RedisClusterException if none answers)."""
    parsed = redisurl.parse_cluster(url)
    interval = options.pop("health_check_interval", 0)
    options.setdefault("connection_class", node_connection(parsed.tls, interval))
    return cls(
        url=parsed.node_url,
        startup_nodes=[_node(host, port) for host, port in parsed.seeds[1:]],
        retry=Retry(_backoff(), CLUSTER_RETRIES),
        # A partly covered cluster still serves the slots it covers.
        require_full_coverage=False,
        **options,
    )


def node_connection(tls: bool, interval: float = 0) -> type[redis.Connection]:
    """The class of a cluster node's connections: TLS or not, and pinging a connection idle
    ``interval`` s before use (RedisCluster hands no ``health_check_interval`` to its nodes'
    connections, so their class carries it)."""
    if not interval:
        return redis.SSLConnection if tls else redis.Connection
    base = _CheckedTLS if tls else _Checked
    return type(base.__name__, (base,), {"interval": interval})


class _Checked(redis.Connection):
    interval: float = HEALTH_CHECK_INTERVAL

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("health_check_interval", self.interval)
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]


class _CheckedTLS(redis.SSLConnection):
    interval: float = HEALTH_CHECK_INTERVAL

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("health_check_interval", self.interval)
        super().__init__(**kwargs)


def at_master_of(client: Client, key: str, call: Callable[[redis.Redis], T]) -> T:
    """``call`` with the one server that holds ``key``: the Redis itself, or the master of the
    key's slot on a cluster, for commands that must reach that very server (WAIT). A master
    gone, or no longer serving the slot, makes the cluster client re-read its slot map and
    ``call`` the one that took over, up to CLUSTER_RETRIES times: what the client does for its
    own commands, and a pinned call would otherwise keep going to the dead master until some
    other command sent the client to those slots."""
    if not isinstance(client, RedisCluster):
        return call(client)
    for failures in itertools.count(1):
        master = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
        try:
            return call(client.get_redis_connection(master))
        except NODE_GONE:
            if failures > CLUSTER_RETRIES:
                raise
            client.nodes_manager.initialize()
            time.sleep(_backoff().compute(failures))
    raise AssertionError("unreachable")


def disconnect(client: Client) -> None:
    """Close every connection ``client`` holds (to every node of a cluster)."""
    if isinstance(client, RedisCluster):
        client.disconnect_connection_pools()  # type: ignore[no-untyped-call]
    else:
        client.connection_pool.disconnect()


def _node(host: str, port: int) -> ClusterNode:
    return ClusterNode(host, port)  # type: ignore[no-untyped-call]
