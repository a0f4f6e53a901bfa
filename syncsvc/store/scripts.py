"""The Lua scripts of ``lua/`` as the store calls them, with the deployment's write durability.

``register(client, "update_records.lua")`` gives a :class:`Script`: calling it runs the script with EVALSHA (loaded
again after a restart or a failover to a node that never saw it). When the deployment asks replicas to confirm
writes (``SYNCSVC_REDIS_REPLICA_ACKS`` > 0, see :class:`Durability`), a *writing* script is followed by ``WAIT
<replicas> <timeout>`` and ``ROLE`` on the same connection, in the same round trip, and the call fails with
:class:`~syncsvc.errors.ReplicationUnconfirmedError` (503 + Retry-After) when fewer replicas confirmed it in time. The
caller then answers an error instead of an acknowledgement: the change is on the primary and may or may not survive
its loss, so the client retries (a retried UpdateRecords is recognised by its writer's fingerprint and answered with
the first result).

Why here: a write is acknowledged only after this confirmation, and every write of user data, identities and KMS
keys is one script, so one place gives every write the same promise. Reads pass ``writes=False`` and never wait,
except ListRecords' page, which a device takes as stored: it is confirmed like a write (list_records.lua's fence),
and so is a retried UpdateRecords answered from its first commit (update_records.lua writes its entry again).
Writes that are not scripts go through :func:`confirmed` (a pool's creation, a login's claim, a signing key, an
identity's purge). Some writes need no wait of their own: an identity's data key is in the identity's slot, and the
record write sealed under it is confirmed after it on the same master (replication keeps a master's order); a pool's
``kms`` field names a KMS key whose creation was confirmed, and every data key names its KMS key itself; deployment
facts (shard count, token secret) are written once at first start-up.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from syncsvc import metrics, tracing
from syncsvc.errors import ReplicationUnconfirmedError
from syncsvc.store.connection import RedisClient


@dataclass(frozen=True, slots=True)
class Durability:
    """How many replicas must confirm a write before it is acknowledged, and how long to wait for them.

    ``replicas`` is a floor: a write also waits for every replica its master lists as online (``ROLE``), so that
    whichever of them Sentinel or the cluster promotes holds it. Waiting for only *n* of more replicas is not enough:
    the failover picks a replica by the replication offset it last *polled* (Sentinel: an ``INFO`` up to seconds
    old), which may be one that had not confirmed the newest writes, and the others then resynchronise from it,
    dropping writes that were acknowledged (seen in this project's Sentinel fault test: two replicas, ``WAIT 1``).
    """

    replicas: int = 0
    timeout_ms: int = 1000


@dataclass(slots=True)
class _Replication:
    durability: Durability
    #: Replicas each master listed as online after the last confirmed write on it (by node name; "" for the one
    #: master of a single node or Sentinel deployment): how many the next write there waits for.
    online: dict[str, int] = field(default_factory=dict)


_REPLICATION: weakref.WeakKeyDictionary[Any, _Replication] = weakref.WeakKeyDictionary()


def set_durability(client: RedisClient, durability: Durability) -> None:
    """Writes through ``client``'s scripts wait for ``durability`` from now on (set once, when the store connects)."""
    _REPLICATION[client] = _Replication(durability)


def durability_of(client: RedisClient) -> Durability:
    replication = _REPLICATION.get(client)
    return replication.durability if replication is not None else Durability()


def register(
    client: RedisClient, name: str, *, writes: bool = True, subject: str = "The change is stored on"
) -> Script:
    """The script ``lua/<name>`` on ``client``; ``writes=False`` for a script whose writes are bookkeeping only.
    ``subject`` starts the message of an unconfirmed call ("… the Redis primary but 0 of the 1 replicas …")."""
    source = resources.files("syncsvc.store").joinpath("lua", name).read_text(encoding="utf-8")
    return Script(client, client.register_script(source), writes=writes, subject=subject, name=name)


class Script:
    def __init__(self, client: RedisClient, script: AsyncScript, *, writes: bool, subject: str, name: str) -> None:
        self._client = client
        self._script = script
        self._writes = writes
        self._subject = subject
        self._name = name.removesuffix(".lua")
        self._timer = metrics.REDIS_SCRIPT_SECONDS.labels(self._name)
        self._span_attributes = {
            "db.system.name": "redis",
            "db.operation.name": "EVALSHA",
            "db.stored_procedure.name": self._name,
        }

    def queue(self, pipe: Any, *, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Adds the script to ``pipe`` (a MULTI with reads of its own; no replica wait: for calls that need none).
        A node that never saw the script refuses it (NoScriptError): :meth:`load` it, then run the MULTI again."""
        pipe.evalsha(self._script.sha, len(keys), *keys, *args)

    async def load(self) -> None:
        await self._client.script_load(self._script.script)

    async def __call__(self, *, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's reply, once the replicas the deployment requires confirmed what it wrote (timed for
        ``syncsvc.metrics``: a failed run is counted by ``backend()`` instead), in a span of its own when traced."""
        started = time.perf_counter()
        with tracing.span(f"EVALSHA {self._name}", self._span_attributes):
            reply = await self._run(keys, args)
        self._timer.observe(time.perf_counter() - started)
        return reply

    async def _run(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if not self._writes or durability_of(self._client).replicas <= 0:
            return await self._script(keys=keys, args=args)

        def queue(pipe: Any) -> object:
            return pipe.evalsha(self._script.sha, len(keys), *keys, *args)

        try:
            (reply,) = await confirmed(self._client, keys[0], queue, subject=self._subject)
        except NoScriptError:
            # Refused, not run (a node that never saw the script: a restart, a promoted replica): load it, run again.
            await self._client.script_load(self._script.script)
            (reply,) = await confirmed(self._client, keys[0], queue, subject=self._subject)
        return reply


async def confirmed(
    client: RedisClient, key: str, queue: Callable[[Any], object], *, subject: str = "The change is stored on"
) -> list[Any]:
    """Runs the commands ``queue`` adds to a pipeline (every one on ``key``'s slot) and returns their replies, once
    the replicas the deployment requires confirmed them: ``WAIT`` on the same connection (the slot's master on a
    cluster), in the same round trip. Without a requirement it is a plain pipeline."""
    replication = _REPLICATION.get(client)
    pipe: Any = client.pipeline(transaction=False)
    queue(pipe)
    if replication is None or replication.durability.replicas <= 0:
        replies: list[Any] = await pipe.execute()
        return replies
    durability = replication.durability
    node = client.get_node_from_key(key) if isinstance(client, RedisCluster) else None
    name = node.name if node is not None else ""
    # Every replica online at the last write here (at least the floor): one round trip, no second WAIT, which
    # would have to run on this same connection to cover this write.
    expected = max(durability.replicas, replication.online.get(name, 0))
    for command in (("WAIT", expected, durability.timeout_ms), ("ROLE",)):
        if node is not None:
            pipe.execute_command(*command, target_nodes=node)
        else:
            pipe.execute_command(*command)
    *replies, acknowledged, role = await pipe.execute()
    online = len(role[2]) if _text(role[0]) == "master" else 0
    replication.online[name] = online
    # A replica that went away since needs no confirmation; one that came online since is waited for from the
    # next write on (it joined after this write reached the master, so its copy is in flight to it).
    required = max(durability.replicas, min(expected, online))
    if int(acknowledged) < required:
        raise ReplicationUnconfirmedError(
            f"{subject} the Redis primary but {int(acknowledged)} of the {required} "
            f"replicas required confirmed it within {durability.timeout_ms} ms; retry the request"
        )
    return replies


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
