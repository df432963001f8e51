"""The error family: user mistakes become re-prompts or 4xx, internal failures are logged."""

import redis
from redis.exceptions import RedisClusterException

# Redis trouble, whichever the topology: a cluster client raises RedisClusterException, which
# is no RedisError, when no node answers or no master serves a slot.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)


class TikaLineError(Exception):
    """Base of every error the gateway raises on purpose."""


class DataError(TikaLineError):
    """Reference data that cannot be loaded; the message names each bad row and field.
    ``rest_loaded``: the rows it does not name were written (a booking raced the load)."""

    def __init__(self, message: str, rest_loaded: bool = False):
        super().__init__(message)
        self.rest_loaded = rest_loaded


class BadRequest(TikaLineError):
    """A webhook request that is malformed; answered with a 4xx that says what is wrong."""

    status = 400

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class ConfigurationError(TikaLineError):
    """The provider or the environment is set up wrongly; retrying will not help."""
