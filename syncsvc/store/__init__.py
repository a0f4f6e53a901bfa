"""The Redis adapter: the only package that talks to Redis. Scripts live in ``lua/`` and are registered once."""

from syncsvc.store.redis import RedisStore
from syncsvc.store.results import UpdateOutcome

__all__ = ["RedisStore", "UpdateOutcome"]
