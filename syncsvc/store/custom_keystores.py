"""KMS custom key stores in Redis: one hash per store, its name and token unique among the stores, its connection state.

A store's hash (:func:`keystore_key`) holds ``name``, ``token`` (the PKCS#11 token label: KMS's CloudHsmClusterId),
``trust`` (TrustAnchorCertificate as given), ``created`` (epoch ms), ``state`` (KMS's ConnectionState), ``error`` (its
ConnectionErrorCode, '' unless FAILED), ``pin`` (the token's user PIN, sealed by the root key: never in the clear here)
and ``keys`` (how many KMS keys live in the store; absent = 0). Two hashes map names and tokens to store ids; a sorted
set lists the ids in order. Every write is one script (``kms_keystore_*.lua``): creation, a state move, an update and a
deletion are each atomic, so instances racing on one store never both win. Every name shares the ``{kms}`` hash tag,
with the KMS keys (``rediskeys.kms_key``): a KMS key made in a store is stored and counted in ``keys`` by one script
(``kms_keystore_add_key.lua``, only while the store is CONNECTED), and deleted and uncounted by another
(``kms_keystore_remove_key.lua``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from syncsvc import rediskeys
from syncsvc.rediskeys import PREFIX
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient
from syncsvc.store.kms import WriteStatus
from syncsvc.store.scripts import register

KEYSTORE_IDS = f"{PREFIX}:{{kms}}:keystores"
KEYSTORE_NAMES = f"{PREFIX}:{{kms}}:keystore-names"
KEYSTORE_TOKENS = f"{PREFIX}:{{kms}}:keystore-tokens"

#: What a conditional write found: done; gone (no such store); state (the store is not in a state the write allows);
#: name or token (another store has it); quota (as many stores as allowed exist).
KeystoreWrite = Literal["done", "gone", "state", "name", "token", "quota"]
_CREATED: dict[int, KeystoreWrite] = {1: "done", -1: "name", -2: "token", -3: "quota"}
_CHANGED: dict[int, KeystoreWrite] = {1: "done", 0: "state", -1: "gone", -2: "state", -3: "name", -4: "token"}
#: What deleting a KMS key of a store did, as for any KMS key (``syncsvc.store.kms.WriteStatus``).
_REMOVED: dict[int, WriteStatus] = {1: "written", 0: "stale", -1: "gone"}


def keystore_key(store_id: str) -> str:
    return f"{PREFIX}:{{kms}}:keystore:{store_id}"


@dataclass(frozen=True, slots=True)
class StoredKeystore:
    store_id: str
    name: str
    token: str
    trust_anchor: str
    created_ms: int
    state: str
    error: str
    sealed_pin: bytes
    keys: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """A conditional write's result, with the store's connection state as the script found it ('' when gone)."""

    status: KeystoreWrite
    state: str


class RedisCustomKeystores:
    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._create = register(client, "kms_keystore_create.lua")
        self._transition = register(client, "kms_keystore_transition.lua")
        self._update = register(client, "kms_keystore_update.lua")
        self._delete = register(client, "kms_keystore_delete.lua")
        self._add_key = register(client, "kms_keystore_add_key.lua")
        self._remove_key = register(client, "kms_keystore_remove_key.lua")

    async def create(self, stored: StoredKeystore, *, quota: int) -> KeystoreWrite:
        """``done``; ``name`` / ``token`` when another store has the name / token; ``quota`` at the quota."""
        fields: list[str | bytes | int] = [
            "name", stored.name, "token", stored.token, "trust", stored.trust_anchor, "created", stored.created_ms,
            "state", stored.state, "error", stored.error, "pin", stored.sealed_pin,
        ]  # fmt: skip
        keys = [keystore_key(stored.store_id), KEYSTORE_NAMES, KEYSTORE_TOKENS, KEYSTORE_IDS]
        async with backend():
            done = await self._create(keys=keys, args=[stored.store_id, stored.name, stored.token, quota, *fields])
        return _CREATED[int(done)]

    async def load(self, store_id: str) -> StoredKeystore | None:
        async with backend():
            fields = await self._client.hgetall(keystore_key(store_id))
        return _stored(store_id, fields) if fields else None

    async def store_id_named(self, name: str) -> str | None:
        async with backend():
            found = await self._client.hget(KEYSTORE_NAMES, name)
        return None if found is None else text(found)

    async def store_ids(self, *, after: str | None, limit: int) -> list[str]:
        """Store ids in order, the first ``limit`` after ``after``."""
        start = f"({after}" if after is not None else "-"
        async with backend():
            return [text(found) for found in await self._client.zrangebylex(KEYSTORE_IDS, start, "+", 0, limit)]

    async def move(self, store_id: str, *, from_states: tuple[str, ...], to: str, error: str = "") -> Outcome:
        """Moves the store to state ``to`` if it is in one of ``from_states`` (``state``: it is not; ``gone``)."""
        async with backend():
            done, state = await self._transition(keys=[keystore_key(store_id)], args=[" ".join(from_states), to, error])
        return Outcome(_CHANGED[int(done)], text(state))

    async def update(self, store_id: str, *, name: str | None, token: str | None, sealed_pin: bytes | None) -> Outcome:
        """Changes what is given of a DISCONNECTED store, or the name alone of a CONNECTED one (``state`` otherwise;
        ``name`` / ``token`` when another store has them; ``gone``)."""
        args = [store_id, name or "", token or "", sealed_pin or b""]
        async with backend():
            done, state = await self._update(keys=[keystore_key(store_id), KEYSTORE_NAMES, KEYSTORE_TOKENS], args=args)
        return Outcome(_CHANGED[int(done)], text(state))

    async def delete(self, store_id: str) -> Outcome:
        """Removes a DISCONNECTED store that holds no keys (``state``: not disconnected; ``token``: it holds keys)."""
        keys = [keystore_key(store_id), KEYSTORE_NAMES, KEYSTORE_TOKENS, KEYSTORE_IDS]
        async with backend():
            done, state = await self._delete(keys=keys, args=[store_id])
        status: KeystoreWrite = "token" if int(done) == -3 else _CHANGED[int(done)]
        return Outcome(status, text(state))

    async def add_key(self, store_id: str, key_id: str, meta: bytes, *, quota: int) -> Outcome:
        """Stores a new KMS key (metadata JSON ``meta``, no material: it is in the store's token) and counts it in the
        store, if the store is CONNECTED (``state`` otherwise; ``gone``) and fewer than ``quota`` KMS keys exist
        (``quota``)."""
        keys = [keystore_key(store_id), rediskeys.kms_key(key_id), rediskeys.KMS_KEYS]
        async with backend():
            done, state = await self._add_key(keys=keys, args=[key_id, meta, quota])
        status: KeystoreWrite = "quota" if int(done) == -3 else _CHANGED[int(done)]
        return Outcome(status, text(state))

    async def remove_key(self, store_id: str, key_id: str, *, revision: int | None) -> WriteStatus:
        """Deletes a KMS key of the store (and its aliases) and uncounts it, if its revision is still ``revision``
        (None: whatever it is): ``written``, ``stale`` (it changed meanwhile) or ``gone``."""
        keys = [keystore_key(store_id), rediskeys.kms_key(key_id), rediskeys.KMS_KEYS, rediskeys.KMS_ALIASES]
        async with backend():
            done = await self._remove_key(keys=keys, args=[key_id, "" if revision is None else str(revision)])
        return _REMOVED[int(done)]


def _stored(store_id: str, fields: dict[bytes | str, bytes | str]) -> StoredKeystore:
    values = {text(name): value for name, value in fields.items()}
    pin = values["pin"]
    return StoredKeystore(
        store_id=store_id,
        name=text(values["name"]),
        token=text(values["token"]),
        trust_anchor=text(values["trust"]),
        created_ms=int(values["created"]),
        state=text(values["state"]),
        error=text(values.get("error", b"")),
        sealed_pin=pin if isinstance(pin, bytes) else pin.encode(),
        keys=int(values.get("keys", 0)),
    )
