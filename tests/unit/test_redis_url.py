"""Unit layer: reading REDIS_URL (gateway/redisurl.py): a ``redis+cluster://`` URL taken apart
into its seed nodes and the URL of the first, and a malformed one refused at start with the
variable named. No Redis."""

from __future__ import annotations

import re

import pytest
import redis

from gateway import redisurl
from gateway.config import ConfigError, Settings
from gateway.store.redisconn import node_connection


@pytest.mark.parametrize(
    "url, cluster",
    [
        ("redis+cluster://10.0.0.1:7000", True),
        ("rediss+cluster://10.0.0.1:7000", True),
        ("REDIS+CLUSTER://10.0.0.1:7000", True),
        ("redis://10.0.0.1:6379/0", False),
        ("rediss://10.0.0.1:6379", False),
        ("unix:///tmp/redis.sock", False),
    ],
)
def test_only_a_cluster_scheme_names_a_cluster(url, cluster):
    assert redisurl.is_cluster(url) is cluster


@pytest.mark.parametrize(
    "url, node_url, seeds, tls",
    [
        (
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002",
            "redis://10.0.0.1:7000/0",
            (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("10.0.0.3", 7002)),
            False,
        ),
        ("redis+cluster://redis-a", "redis://redis-a:6379/0", (("redis-a", 6379),), False),
        (
            "rediss+cluster://app:p%40ss,w0rd@a.example:7000, b.example:7001/0?ssl_cert_reqs=none",
            "redis://app:p%40ss,w0rd@a.example:7000/0?ssl_cert_reqs=none",
            (("a.example", 7000), ("b.example", 7001)),
            True,
        ),
        (
            "redis+cluster://[::1]:7000,[fd00::2]:7001/",
            "redis://[::1]:7000/0",
            (("::1", 7000), ("fd00::2", 7001)),
            False,
        ),
    ],
)
def test_a_cluster_url_gives_every_seed_and_the_first_as_a_node_url(url, node_url, seeds, tls):
    assert redisurl.parse_cluster(url) == redisurl.ClusterURL(node_url, seeds, tls)


@pytest.mark.parametrize("tls", [False, True])
@pytest.mark.parametrize("interval", [0, 30])
def test_every_node_connection_of_a_cluster_keeps_tls_and_the_health_check(tls, interval):
    connection = node_connection(tls, interval)(host="10.0.0.1", port=7000)
    assert isinstance(connection, redis.SSLConnection) is tls
    assert connection.health_check_interval == interval


@pytest.mark.parametrize(
    "url, complaint",
    [
        ("redis+cluster://", "has no host"),
        ("redis+cluster://10.0.0.1:7000,", "has no host"),
        ("redis+cluster://10.0.0.1:70000", "no valid port"),
        ("redis+cluster://10.0.0.1:seven", "no valid port"),
        ("redis+cluster://[::1:7000", "Invalid IPv6 URL"),
        ("redis+cluster://[::1]7000", "is not [address]:port"),
        ("redis+cluster://10.0.0.1:7000/3", "only database 0"),
        ("redis+cluster://10.0.0.1:7000?db=2", "only database 0"),
        ("redis+cluster://10.0.0.1:7000?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
        ("cluster://10.0.0.1:7000", "starts with redis+cluster:// or rediss+cluster://"),
    ],
)
def test_a_malformed_cluster_url_is_refused_saying_what_is_wrong(url, complaint):
    with pytest.raises(redisurl.RedisURLError, match=re.escape(complaint)):
        redisurl.parse_cluster(url)


def test_a_malformed_cluster_url_stops_the_start_naming_redis_url(tmp_path):
    env = {"REDIS_URL": "redis+cluster://10.0.0.1:7000,10.0.0.2", "SECRET_KEY": "k" * 32}
    assert Settings.from_env(tmp_path, env=env).redis_url == env["REDIS_URL"]
    with pytest.raises(ConfigError, match=r"^REDIS_URL: cluster node '10.0.0.2:x' has no valid"):
        Settings.from_env(tmp_path, env={**env, "REDIS_URL": "redis+cluster://10.0.0.2:x"})


def test_a_password_in_the_url_is_not_repeated_in_a_complaint():
    with pytest.raises(redisurl.RedisURLError) as refused:
        redisurl.parse_cluster("redis+cluster://app:s3cret@10.0.0.1:7000/5")
    assert "s3cret" not in str(refused.value)
