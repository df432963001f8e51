"""How the outbox is doing, for ``/healthz`` and ``flask sms stats``: each worker's own word,
and how long the oldest SMS has waited.

A worker says how it is through the name of one Redis connection it keeps open
(``CLIENT SETNAME tikaline-outbox|<worker>|ok|<since>|``, or ``…|stuck|<since>|<error>``)
rather than through a key: the faults that stop a worker are the ones where Redis refuses
writes (out of memory, a failed disk under ``MISCONF``, a read-only replica after a failover),
and a connection name is still accepted then. A worker that dies takes its connection, and
so its name, with it; what its SMS wait meanwhile shows in the oldest entry's age. On a Redis
Cluster every worker keeps that connection to one master, the one serving the slot of the
deployment-wide keys (``HOME``), and the operator's views read the names there.
"""

from __future__ import annotations

import logging
import re
import time

import redis
from redis.cluster import RedisCluster

from gateway.logs import clean
from gateway.store import keys, replies
from gateway.store.redisconn import at_master_of

log = logging.getLogger(__name__)
PREFIX = "tikaline-outbox|"
HEARTBEAT = 5  # seconds between a well worker's names: a reconnect drops the name
SLOW = 60  # seconds: an SMS waiting longer than this is worth a line in /healthz
HOME = keys.SEND_RATE  # on a cluster, the master of this key's slot holds the workers' names


# What Redis puts before an error a command raised inside a script.
_IN_SCRIPT = re.compile(r"Error running script \(call to f_\w+\):(?:\s*@\w+:\s*\d+:)*\s*-?")
# The errors a script's command meets when Redis refuses writes, named as redis-py names them.
_REFUSALS = {"OOM": "OutOfMemoryError", "READONLY": "ReadOnlyError"}


def reason(exc: Exception) -> str:
    """``exc`` as an operator reads it: its type and message; for a command refused inside a
    script, that command's error, not the script's preamble (which would push the cause out of
    the connection name's 120 characters)."""
    message = str(exc)
    inner = _IN_SCRIPT.search(message)
    if not inner:
        return f"{type(exc).__name__}: {message}"
    cause = message[inner.end() :]
    return f"{_REFUSALS.get(cause.split(' ', 1)[0], type(exc).__name__)}: {cause}"


class WorkerHealth:
    """One worker's trouble with Redis: logged, backed off, and said through the name of its
    own connection; nothing here raises."""

    def __init__(
        self, client: redis.Redis, worker: str, backoff: tuple[float, float] = (0.5, 30.0)
    ):
        self.client = client
        self.r = _own_connection(client)
        self.worker = worker
        self.backoff = backoff  # first delay and cap, in seconds
        self._trouble: tuple[float, int] | None = None  # (since, failures)
        self._well_since = time.time()
        self._next_say = 0.0

    def failed(self, exc: Exception) -> float:
        """Log and say that a round failed with ``exc``; the seconds to wait before the next."""
        now = time.time()
        since, failures = self._trouble or (now, 0)
        self._trouble = (since, failures + 1)
        delay = min(self.backoff[1], self.backoff[0] * 2**failures)
        error = reason(exc)
        log.error(
            "event=outbox_stuck worker=%s for=%.0fs retry_in=%.1fs error=%s",
            self.worker,
            now - since,
            delay,
            clean(error, 200),
            exc_info=not isinstance(exc, redis.RedisError),
        )  # a bug: its traceback
        self._say("stuck", since, error)
        return delay

    def fine(self) -> None:
        """A round went through: say so at once after trouble, else every HEARTBEAT."""
        if self._trouble:
            log.info(
                "event=outbox_recovered worker=%s after=%.0fs",
                self.worker,
                time.time() - self._trouble[0],
            )
            self._trouble, self._well_since, self._next_say = None, time.time(), 0.0
        if time.monotonic() >= self._next_say:
            self._say("ok", self._well_since)
            self._next_say = time.monotonic() + HEARTBEAT

    def _say(self, state: str, since: float, error: str = "") -> None:
        name = f"{PREFIX}{self.worker}|{state}|{int(since)}|{clean(error, 120)}"
        try:
            # A client name is printable ASCII without spaces.
            self.r.client_setname("".join(ch if "!" <= ch <= "~" else "_" for ch in name))
        except redis.RedisError:
            # Redis away: the log says so, and the name is set again once it is back (on a
            # cluster, maybe on another master after a failover: look again).
            self.close()
            try:
                self.r = _own_connection(self.client)
            except redis.RedisError:
                pass

    def close(self) -> None:
        """Drop the connection, and with it the worker's entry."""
        self.r.connection_pool.disconnect()


def _home(client: redis.Redis) -> redis.Redis:
    """The one server the workers' names live on: the Redis, or a cluster's master of HOME."""
    if isinstance(client, RedisCluster):
        return client.get_redis_connection(client.get_node_from_key(HOME))
    return client


def _own_connection(client: redis.Redis) -> redis.Redis:
    # Its own connection: a pooled one would carry the name into other hands.
    pool = _home(client).connection_pool
    return redis.Redis(
        connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=1, **pool.connection_kwargs
        )
    )


def workers(client: redis.Redis) -> list[dict]:
    """Each connected worker: ``worker``, ``state`` (ok or stuck), ``since``, ``error``."""
    try:  # on a cluster, at HOME's master: its successor if a failover came since
        connections = at_master_of(client, HOME, lambda home: home.client_list())
    except redis.ResponseError:  # CLIENT LIST not allowed to this user: nothing to show
        return []
    found = []
    for conn in connections:
        name = conn.get("name", "")
        parts = name[len(PREFIX) :].split("|", 3) if name.startswith(PREFIX) else []
        if len(parts) == 4 and parts[2].isdigit():
            worker, state, since, error = parts
            found.append(
                {
                    "worker": worker,
                    "state": state,
                    "since": int(since),
                    "error": error.replace("_", " "),
                }
            )
    return sorted(found, key=lambda w: w["worker"])


def oldest_wait(client: redis.Redis, now: float | None = None) -> int:
    """Seconds the oldest SMS not yet handed to the provider has waited, in any partition
    (0: none waits)."""
    with client.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.xrange(keys.outbox(p), count=1)
        firsts = pipe.execute()
    queued = [int(first[0][0].split("-")[0]) for first in map(replies.entries, firsts) if first]
    if not queued:
        return 0
    return max(0, int((now or time.time()) - min(queued) / 1000))


def describe(worker: dict, now: float | None = None) -> str:
    """One line about one worker, e.g. ``stuck for 75 s: OOM command not allowed …``."""
    ago = int((now or time.time()) - worker["since"])
    if worker["state"] == "ok":
        return f"outbox worker {worker['worker']}: ok for {ago} s"
    return f"outbox worker {worker['worker']}: stuck for {ago} s: {worker['error']}"


def problems(client: redis.Redis, now: float | None = None) -> list[str]:
    """What an operator should know about the outbox now; empty when all is well."""
    now = now or time.time()
    found = workers(client)
    lines = [describe(w, now) for w in found if w["state"] != "ok"]
    waited = oldest_wait(client, now)
    if waited > SLOW:
        lines.append(
            f"outbox: the oldest SMS has waited {waited} s"
            + ("" if found else "; no outbox worker is connected")
        )
    return lines
