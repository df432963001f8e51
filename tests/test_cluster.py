"""Infrastructure layer, Redis Cluster: the gateway's client of a ``redis+cluster://`` URL on
a real 3-master cluster (the one of a cluster run, else one of its own): every slot served, keys
landing on every master, one seed enough, and a master's death followed by the same client once
its replica is promoted. Runs on either topology of the suite."""

from __future__ import annotations

import pytest
import redis
from redis.crc import key_slot

from gateway.store.redisconn import TIMEOUTS, connect, disconnect
from tests.servers import SLOTS, Cluster, redis_cluster


@pytest.fixture(scope="module")
def cluster(private_cluster, tmp_path_factory):
    """The cluster run's cluster, or a private 3-master one for this module."""
    if private_cluster is not None:
        yield private_cluster
        return
    with redis_cluster(masters=3, workdir=tmp_path_factory.mktemp("cluster")) as own:
        yield own


@pytest.fixture
def client(cluster, tmp_path):
    """The gateway's client of the cluster, every node a seed; the cluster flushed around."""
    client = connect(cluster.url, tmp_path)
    client.flushdb()
    yield client
    client.flushdb()
    disconnect(client)


def keys_on_each_master(cluster: Cluster, port: int | None = None) -> dict[int, str]:
    """For each master (as node ``port`` sees them), a key in a slot that master serves."""
    found: dict[int, str] = {}
    masters = cluster.masters(port)
    for i in range(10_000):
        key = f"probe:{i}"
        slot = key_slot(key.encode())
        owner = next(m for m, slots in masters.items() if any(slot in s for s in slots))
        found.setdefault(owner, key)
        if len(found) == len(masters):
            return found
    raise AssertionError("no key found for some master")


def test_the_cluster_has_three_masters_serving_every_slot_once(cluster):
    masters = cluster.masters()
    served = sorted(slot for slots in masters.values() for r in slots for slot in r)
    assert len(masters) == 3
    assert served == list(range(SLOTS))
    for port in cluster.live():
        info = cluster.node(port).cluster("INFO")
        assert info["cluster_state"] == "ok" and int(info["cluster_slots_ok"]) == SLOTS


def test_a_client_from_the_url_writes_keys_that_land_on_every_master(cluster, client):
    placed = keys_on_each_master(cluster)
    for master, key in placed.items():
        client.set(key, f"on {master}")
    for master, key in placed.items():
        assert client.get(key) == f"on {master}".encode()
        # The key is on that master itself, nowhere else.
        assert cluster.node(master).get(key) == f"on {master}".encode()
    assert sum(cluster.node(m).dbsize() for m in placed) == len(placed)


def test_one_seed_node_is_enough_to_reach_every_key(cluster, client, tmp_path):
    placed = keys_on_each_master(cluster)
    seed = cluster.ports[0]
    elsewhere = next(key for master, key in placed.items() if master != seed)
    with pytest.raises(redis.exceptions.MovedError):  # a plain client of the seed is sent on
        cluster.node(seed).set(elsewhere, "x")
    one_seed = connect(f"redis+cluster://127.0.0.1:{seed}", tmp_path)
    try:
        for master, key in placed.items():
            one_seed.set(key, master)
        assert {m: int(client.get(k)) for m, k in placed.items()} == {m: m for m in placed}
    finally:
        disconnect(one_seed)


def test_every_node_connection_keeps_the_gateways_timeouts_and_health_checks(client):
    """RedisCluster hands no health_check_interval to its nodes: the gateway's client does."""
    client.ping(target_nodes=client.ALL_NODES)
    for node in client.get_nodes():
        pool = node.redis_connection.connection_pool
        connection = pool.get_connection()
        try:
            assert connection.socket_timeout == TIMEOUTS["socket_timeout"]
            assert connection.health_check_interval == TIMEOUTS["health_check_interval"]
        finally:
            pool.release(connection)


def test_the_same_client_serves_a_slot_again_once_its_replica_is_promoted(tmp_path):
    """A master with a replica is killed: after the promotion, the client made before goes on
    reading what was written and writing, without being made again."""
    with redis_cluster(masters=3, replicas_per_master=1, workdir=tmp_path / "nodes") as cluster:
        client = connect(cluster.url, tmp_path)
        key = "patient:{C100}"
        slot = key_slot(key.encode())
        before = {f"{{C100}}:{i}": str(i) for i in range(20)}
        client.mset(before)
        master = cluster.master_of(slot)
        assert cluster.node(master).wait(1, 5000) == 1  # the replica has every write
        dead, promoted = cluster.kill_master_of(slot)
        assert promoted != dead and promoted in cluster.live()
        assert client.mget(list(before)) == [v.encode() for v in before.values()]
        client.set(key, "after the failover")
        assert cluster.node(promoted).get(key) == b"after the failover"
        assert client.get_node_from_key(key).port == promoted  # its map of the slots followed
        disconnect(client)
