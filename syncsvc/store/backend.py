"""How Redis failures look to the rest of the service: one context manager shared by every store module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from syncsvc.errors import BackendUnavailableError, SyncsvcError
from syncsvc.store.connection import RedisClient


@asynccontextmanager
async def backend() -> AsyncIterator[None]:
    """Turns driver failures into :class:`BackendUnavailableError` (503 + Retry-After); lets the service's own
    errors through. Use around every Redis call: ``async with backend(): ...``."""
    try:
        yield
    except SyncsvcError:
        raise
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise BackendUnavailableError(f"The data store is unavailable ({type(exc).__name__}); retry") from exc
    except RedisError as exc:
        raise BackendUnavailableError(f"The data store failed ({type(exc).__name__}); retry") from exc


def text(value: bytes | str) -> str:
    """A reply item as text (the client returns bytes; its stubs say bytes | str)."""
    return value.decode() if isinstance(value, bytes) else value


def register(client: RedisClient, name: str) -> AsyncScript:
    """The script ``lua/<name>`` registered on ``client`` (EVALSHA, loaded again by redis-py after a restart)."""
    source = resources.files("syncsvc.store").joinpath("lua", name).read_text(encoding="utf-8")
    script: AsyncScript = client.register_script(source)
    return script
