"""Numbers in the environment are checked at start, with a message naming the variable."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, Settings
from gateway.store.keys import _partitions

pytestmark = pytest.mark.unit


def test_wait_replicas_is_read_from_the_environment(tmp_path):
    env = {"REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT_MS": "250", "SECRET_KEY": "k" * 32}
    settings = Settings.from_env(tmp_path, env)
    assert (settings.redis_wait_replicas, settings.redis_wait_ms) == (1, 250)


@pytest.mark.parametrize("value", ["-1", "one", "1.5"])
def test_a_wait_that_is_not_a_count_stops_the_start(tmp_path, value):
    with pytest.raises(ConfigError, match="REDIS_WAIT_REPLICAS must be a whole number"):
        Settings.from_env(tmp_path, {"REDIS_WAIT_REPLICAS": value, "SECRET_KEY": "k" * 32})


@pytest.mark.parametrize("value", ["0", "16385", "x"])
def test_partitions_out_of_range_are_refused(value):
    with pytest.raises(ValueError, match="TIKALINE_PARTITIONS must be a whole number"):
        _partitions(value)


def test_the_walk_in_limit_is_read_from_the_environment(tmp_path):
    key = {"SECRET_KEY": "k" * 32}
    assert Settings.from_env(tmp_path, key).walkin_daily_limit == 60
    assert Settings.from_env(tmp_path, {**key, "WALKIN_DAILY_LIMIT": "5"}).walkin_daily_limit == 5
    with pytest.raises(ConfigError, match="WALKIN_DAILY_LIMIT must be a whole number"):
        Settings.from_env(tmp_path, {**key, "WALKIN_DAILY_LIMIT": "lots"})
