"""The Lua scripts of ``lua/`` as the store calls them, with the deployment's write durability.

``register(client, "update_records.lua")`` gives a :class:`Script`: calling it runs the script with EVALSHA (loaded
again after a restart or a failover to a node that never saw it). When the deployment asks replicas to confirm
writes (``SYNCSVC_REDIS_REPLICA_ACKS`` > 0, see :class:`Durability`), a *writing* script is followed by ``WAIT
<replicas> <timeout>`` on the same connection, in the same round trip, and the call fails with
:class:`~syncsvc.errors.ReplicationUnconfirmedError` (503 + Retry-After) when fewer replicas confirmed it in time. The
caller then answers an error instead of an acknowledgement: the change is on the primary and may or may not survive
its loss, so the client retries (a retried UpdateRecords is recognised by its writer's fingerprint and answered with
the first result).

Why here: a write is acknowledged only after this confirmation, and every write of user data, identities and KMS
keys is one script, so one place gives every write the same promise. Reads pass ``writes=False`` and never wait.
Writes that are not scripts go through :func:`confirmed` (a pool's creation, a login's claim, a signing key, an
identity's purge). Some writes need no wait of their own: an identity's data key is in the identity's slot, and the
record write sealed under it is confirmed after it on the same master (replication keeps a master's order); a pool's
``kms`` field names a KMS key whose creation was confirmed, and every data key names its KMS key itself; deployment
facts (shard count, token secret) are written once at first start-up.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from syncsvc.errors import ReplicationUnconfirmedError
from syncsvc.store.connection import RedisClient


@dataclass(frozen=True, slots=True)
class Durability:
    """How many replicas must confirm a write before it is acknowledged, and how long to wait for them."""

    replicas: int = 0
    timeout_ms: int = 1000


_DURABILITY: weakref.WeakKeyDictionary[Any, Durability] = weakref.WeakKeyDictionary()


def set_durability(client: RedisClient, durability: Durability) -> None:
    """Writes through ``client``'s scripts wait for ``durability`` from now on (set once, when the store connects)."""
    _DURABILITY[client] = durability


def durability_of(client: RedisClient) -> Durability:
    return _DURABILITY.get(client, Durability())


def register(client: RedisClient, name: str, *, writes: bool = True) -> Script:
    """The script ``lua/<name>`` on ``client``; ``writes=False`` for a script whose writes are bookkeeping only."""
    source = resources.files("syncsvc.store").joinpath("lua", name).read_text(encoding="utf-8")
    return Script(client, client.register_script(source), writes=writes)


class Script:
    def __init__(self, client: RedisClient, script: AsyncScript, *, writes: bool) -> None:
        self._client = client
        self._script = script
        self._writes = writes

    async def __call__(self, *, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's reply, once the replicas the deployment requires confirmed what it wrote."""
        if not self._writes or durability_of(self._client).replicas <= 0:
            return await self._script(keys=keys, args=args)

        def queue(pipe: Any) -> object:
            return pipe.evalsha(self._script.sha, len(keys), *keys, *args)

        try:
            (reply,) = await confirmed(self._client, keys[0], queue)
        except NoScriptError:
            # Refused, not run (a node that never saw the script: a restart, a promoted replica): load it, run again.
            await self._client.script_load(self._script.script)
            (reply,) = await confirmed(self._client, keys[0], queue)
        return reply


async def confirmed(client: RedisClient, key: str, queue: Callable[[Any], object]) -> list[Any]:
    """Runs the commands ``queue`` adds to a pipeline (every one on ``key``'s slot) and returns their replies, once
    the replicas the deployment requires confirmed them: ``WAIT`` on the same connection (the slot's master on a
    cluster), in the same round trip. Without a requirement it is a plain pipeline."""
    durability = durability_of(client)
    pipe: Any = client.pipeline(transaction=False)
    queue(pipe)
    if durability.replicas <= 0:
        replies: list[Any] = await pipe.execute()
        return replies
    wait = ("WAIT", durability.replicas, durability.timeout_ms)
    if isinstance(client, RedisCluster):
        pipe.execute_command(*wait, target_nodes=client.get_node_from_key(key))
    else:
        pipe.execute_command(*wait)
    *replies, acknowledged = await pipe.execute()
    if int(acknowledged) < durability.replicas:
        raise ReplicationUnconfirmedError(
            f"The change is stored on the Redis primary but {int(acknowledged)} of the {durability.replicas} "
            f"replicas required confirmed it within {durability.timeout_ms} ms; retry the request"
        )
    return replies
