"""How Redis failures look to the rest of the service: one context manager shared by every store module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from syncsvc import metrics
from syncsvc.errors import BackendUnavailableError, StoreOutOfMemoryError, SyncsvcError


@asynccontextmanager
async def backend() -> AsyncIterator[None]:
    """Turns driver failures into :class:`BackendUnavailableError` (503 + Retry-After), a write Redis refused for
    want of memory into :class:`StoreOutOfMemoryError` (its subclass, naming the cause); lets the service's own errors
    through. Use around every Redis call: ``async with backend(): ...``."""
    try:
        yield
    except SyncsvcError:
        raise
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        metrics.REDIS_ERRORS.labels(type(exc).__name__).inc()
        raise BackendUnavailableError(f"The data store is unavailable ({type(exc).__name__}); retry") from exc
    except RedisError as exc:
        metrics.REDIS_ERRORS.labels(type(exc).__name__).inc()
        if out_of_memory(exc):
            raise StoreOutOfMemoryError(
                "The data store is out of memory: writes are refused until memory is freed; retry later"
            ) from exc
        raise BackendUnavailableError(f"The data store failed ({type(exc).__name__}); retry") from exc


def out_of_memory(exc: RedisError) -> bool:
    """Redis refused a write with ``OOM command not allowed when used memory > 'maxmemory'``: as a reply of its own
    (OutOfMemoryError, also from a script on Redis 7), or wrapped in a script's error (older Redis)."""
    return isinstance(exc, OutOfMemoryError) or (
        isinstance(exc, ResponseError) and "OOM command not allowed" in str(exc)
    )


def text(value: bytes | str) -> str:
    """A reply item as text (the client returns bytes; its stubs say bytes | str)."""
    return value.decode() if isinstance(value, bytes) else value
