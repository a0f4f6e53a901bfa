"""Envelope encryption of record values at rest: per-identity data keys under each pool's master key.

* Each identity pool gets a KMS master key (made on first need, ``owner = "pool:<id>"``, id kept in the pool's hash).
* Each identity gets a data key generated under it (GenerateDataKey, encryption context ``{"pool", "identity"}``)
  and stored only wrapped, in the identity's slot (``IdentityKeyspace.data_keys``). Deleting that hash destroys the
  identity's data everywhere it was copied — outbox, backups, consumers holding ciphertext (crypto-shredding).
* A record value is stored as ``e1:`` + base64(version | nonce | AES-256-GCM ciphertext and tag), with the pool,
  identity, dataset, record key and data key version as associated data: a value copied to another record, dataset
  or identity does not decrypt.
* Unwrapped data keys live in a :class:`DataKeyCache` (LRU, with a maximum age, uses and bytes per key, like the AWS
  Encryption SDK's caching materials manager), so the write path makes no KMS call while a key is cached; past a
  limit the key is dropped and unwrapped again through KMS on the next use. Deleting an identity deletes its
  wrapped data keys (``RedisStore.purge_identity``); an instance that cached one forgets it within the maximum age.

* A record's **name** (its key) is personal data as often as its value, so it is not stored either: Redis holds a
  token in its place (HMAC-SHA256 under a names key derived from the identity's first data key, 144 bits in
  base64url: the same name gives the same token, so the write scripts find records by it) and the name itself
  sealed beside the record (``n1:``, as a value, bound to its token). Shredding the data key shreds the names too.
  Identities whose data key was made before names were tokenised (no ``names`` field in their data key hash) keep
  plain names: a name cannot move to its token without every device's next write of it missing the stored record.
  Dataset names stay plain: they are part of Redis key names and of the merge-prefix queries.

Values written before encryption existed (no ``e1:`` prefix) are read as they are; ``syncsvc keys reencrypt`` is the
way to seal them.

Where the wrapped data keys and the pools' master key ids are kept is :class:`DataKeys`' business (in Redis:
``syncsvc.store.datakeys``); this module talks to KMS and to that, never to Redis itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pybase64
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from syncsvc import metrics
from syncsvc.errors import InvalidConfigurationError, KmsError, SyncsvcError
from syncsvc.kms import material
from syncsvc.kms.keyservice import KeyService
from syncsvc.model import Record
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.datakeys import WrappedDataKeys

SEALED = "e1:"
_CACHE_HIT = metrics.DATA_KEY_CACHE.labels("hit")
_CACHE_MISS = metrics.DATA_KEY_CACHE.labels("miss")
SEALED_NAME = "n1:"
_NONCE = 12
#: Bytes of a name's HMAC kept in its token (144 bits: 24 base64url characters).
_TOKEN_BYTES = 18
#: Data key bytes: AES-256.
_DATA_KEY_BYTES = 32


class UnreadableValueError(SyncsvcError):
    """A sealed value that does not open: moved from another record, altered, or its data key destroyed. A request
    that meets one fails whole with a 500 (InternalErrorException): the store was tampered with, not the request."""

    code = "InternalErrorException"
    status = 500


@dataclass(frozen=True, slots=True)
class CacheLimits:
    entries: int = 10_000
    max_age_seconds: float = 300.0
    max_uses: int = 1_000_000
    max_bytes: int = 1 << 30


@dataclass(slots=True)
class _Entry:
    cipher: IdentityCipher
    created: float
    uses: int = 0
    bytes: int = 0


class DataKeyCache:
    """Unwrapped data keys by identity, least recently used first out; an entry past its age, uses or bytes is
    dropped (the next use unwraps the key through KMS again)."""

    def __init__(self, limits: CacheLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> IdentityCipher | None:
        entry = self._entries.get(name)
        if entry is not None and self._clock() - entry.created > self.limits.max_age_seconds:
            del self._entries[name]
            entry = None
        if entry is None:
            self.misses += 1
            _CACHE_MISS.inc()
            return None
        self.hits += 1
        _CACHE_HIT.inc()
        self._entries.move_to_end(name)
        return entry.cipher

    def put(self, name: str, cipher: IdentityCipher) -> None:
        self._entries[name] = _Entry(cipher, self._clock())
        self._entries.move_to_end(name)
        while len(self._entries) > self.limits.entries:
            self._entries.popitem(last=False)

    def charge(self, name: str, size: int, uses: int = 1) -> None:
        """Counts ``uses`` messages of ``size`` bytes in all; drops the entry once it reaches a limit."""
        entry = self._entries.get(name)
        if entry is None:
            return
        entry.uses += uses
        entry.bytes += size
        if entry.uses >= self.limits.max_uses or entry.bytes >= self.limits.max_bytes:
            del self._entries[name]

    def forget(self, name: str) -> None:
        self._entries.pop(name, None)


@dataclass(slots=True)
class IdentityCipher:
    """One identity's record values and names: sealed under its current data key, opened under any of its versions;
    names tokenised with ``names`` (None: an identity whose names are stored plain, see the module docstring)."""

    keyspace: IdentityKeyspace
    current: int
    keys: dict[int, AESGCM]
    #: Counts uses of the data key: (identity, plaintext bytes, messages); ``DataKeyCache.charge``.
    charge: Callable[[str, int, int], None] = field(default=lambda name, size, uses: None)
    names: bytes | None = None

    def seal(self, dataset: str, key: str, value: str) -> str:
        plaintext = value.encode()
        self.charge(self.keyspace.base, len(plaintext), 1)
        return SEALED + self._seal(plaintext, f"{self._value_aad(dataset)}{key}\0{self.current}".encode())

    def open(self, dataset: str, key: str, value: str | None) -> str | None:
        if value is None or not value.startswith(SEALED):
            return value
        plaintext = self._open(value, self._value_aad(dataset), key)
        if plaintext is None:
            raise UnreadableValueError(f"record '{key[:100]}' of dataset '{dataset}' does not decrypt here")
        self.charge(self.keyspace.base, len(plaintext), 1)
        return plaintext.decode()

    def open_records(self, dataset: str, records: Sequence[Record]) -> list[Record]:
        """``records`` as the store read them (names and values sealed) with both opened: what :meth:`open_name` and
        :meth:`open` do to each, in one pass over a page (a full pull opens 1,024 records; the associated data's
        common part is built once and the page is charged to the data key once)."""
        value_aad, name_aad = self._value_aad(dataset), self._name_aad(dataset)
        opened: list[Record] = []
        size = 0
        for record in records:
            name, value = record.key, record.value
            sealed_name = record.sealed_name
            if sealed_name is not None and sealed_name.startswith(SEALED_NAME):
                plain_name = self._open(sealed_name, name_aad, name)
                if plain_name is None:
                    raise UnreadableValueError(f"a record name of dataset '{dataset}' does not decrypt here")
                name = plain_name.decode()
            if value is not None and value.startswith(SEALED):
                plaintext = self._open(value, value_aad, name)
                if plaintext is None:
                    raise UnreadableValueError(f"record '{name[:100]}' of dataset '{dataset}' does not decrypt here")
                size += len(plaintext)
                value = plaintext.decode()
            opened.append(
                Record(
                    name,
                    value,
                    record.sync_count,
                    record.last_modified_ms,
                    record.last_modified_by,
                    record.device_last_modified_ms,
                    record.version_vector,
                )
            )
        if size:
            self.charge(self.keyspace.base, size, len(opened))
        return opened

    def token(self, dataset: str, key: str) -> str:
        """What Redis holds in place of the record name ``key`` (the name itself for plain-named identities)."""
        if self.names is None:
            return key
        digest = hmac.digest(self.names, f"{dataset}\0{key}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest[:_TOKEN_BYTES]).decode()

    def seal_name(self, dataset: str, key: str) -> str | None:
        """The name sealed to be stored beside its token; None for plain-named identities."""
        if self.names is None:
            return None
        token = self.token(dataset, key)
        return SEALED_NAME + self._seal(key.encode(), f"{self._name_aad(dataset)}{token}\0{self.current}".encode())

    def open_name(self, dataset: str, stored_key: str, sealed: str | None) -> str:
        """The record name of a record stored under ``stored_key`` (a token, or a plain name) with ``sealed``."""
        if sealed is None or not sealed.startswith(SEALED_NAME):
            return stored_key
        plaintext = self._open(sealed, self._name_aad(dataset), stored_key)
        if plaintext is None:
            raise UnreadableValueError(f"a record name of dataset '{dataset}' does not decrypt here")
        return plaintext.decode()

    def _seal(self, plaintext: bytes, aad: bytes) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self.keys[self.current].encrypt(nonce, plaintext, aad)
        return pybase64.b64encode(self.current.to_bytes(4, "big") + nonce + sealed).decode()

    def _open(self, sealed: str, aad: str, subject: str) -> bytes | None:
        """The plaintext of ``sealed`` (``e1:…`` or ``n1:…``, both prefixes three characters), whose associated data
        is ``aad`` + ``subject`` + NUL + the data key version; None when it does not authenticate."""
        try:
            raw = pybase64.b64decode(sealed[3:], validate=True)
        except binascii.Error:
            return None
        version = int.from_bytes(raw[:4], "big")
        data_key = self.keys.get(version)
        if data_key is None:
            raise UnreadableValueError(f"no data key version {version} for identity {self.keyspace.identity_id}")
        try:
            return data_key.decrypt(raw[4 : 4 + _NONCE], raw[4 + _NONCE :], f"{aad}{subject}\0{version}".encode())
        except InvalidTag:
            return None

    def _value_aad(self, dataset: str) -> str:
        """A value's associated data up to its record's name: pool, identity, dataset."""
        return f"syncsvc-record\0{self.keyspace.identity_pool_id}\0{self.keyspace.identity_id}\0{dataset}\0"

    def _name_aad(self, dataset: str) -> str:
        """A sealed name's associated data up to its token: pool, identity, dataset."""
        return f"syncsvc-record-name\0{self.keyspace.identity_pool_id}\0{self.keyspace.identity_id}\0{dataset}\0"


def _names_key(first_data_key: bytes) -> bytes:
    """The key that tokenises an identity's record names, derived from its first data key (which never changes)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"syncsvc record names").derive(first_data_key)


class DataKeys(Protocol):
    """Where the envelope keeps identities' wrapped data keys and pools' master key ids (``RedisDataKeys``)."""

    async def wrapped(self, keyspace: IdentityKeyspace) -> WrappedDataKeys: ...

    async def add_first(self, keyspace: IdentityKeyspace, wrapped: bytes) -> None: ...

    async def replace(self, keyspace: IdentityKeyspace, version: int, wrapped: bytes) -> None: ...

    async def master_key_id(self, identity_pool_id: str) -> str | None: ...

    async def claim_master_key(self, identity_pool_id: str, key_id: str) -> bool: ...


class Envelope:
    """Gives each identity's cipher: from the cache, else by unwrapping (or first generating) its data key."""

    def __init__(self, kms: KeyService, stored: DataKeys, cache: DataKeyCache) -> None:
        self._kms = kms
        self._stored = stored
        self.cache = cache
        self._pool_keys: dict[str, str] = {}

    async def cipher(self, keyspace: IdentityKeyspace, *, create: bool = True) -> IdentityCipher:
        """The identity's cipher. Its first data key is made here, unless ``create`` is False (a reader of stored
        values: no key means the identity's data was shredded, so UnreadableValueError)."""
        cached = self.cache.get(keyspace.base)
        if cached is not None:
            return cached
        wrapped = await self._stored.wrapped(keyspace)
        if not wrapped.versions:
            if not create:
                raise UnreadableValueError(
                    f"identity {keyspace.identity_id} has no data key (deleted: its data is shredded)"
                )
            wrapped = await self._new_data_key(keyspace)
        context = _data_key_context(keyspace)
        try:
            unwrapped = {
                version: (await self._kms.decrypt(blob, context))[0] for version, blob in wrapped.versions.items()
            }
        except KmsError as exc:
            raise InvalidConfigurationError(
                f"The master key of identity pool {keyspace.identity_pool_id} cannot unwrap its data keys: "
                f"{exc.message}"
            ) from None
        names = _names_key(unwrapped[min(unwrapped)]) if wrapped.tokenised else None
        ciphers = {version: AESGCM(key) for version, key in unwrapped.items()}
        cipher = IdentityCipher(keyspace, wrapped.current, ciphers, self.cache.charge, names)
        self.cache.put(keyspace.base, cipher)
        return cipher

    async def rewrap(self, keyspace: IdentityKeyspace) -> int:
        """Re-encrypts the identity's wrapped data keys under the newest backing key of its pool's master key (the
        values they seal stay as they are); returns how many moved. For ``syncsvc keys reencrypt`` after a
        rotation, so that nothing depends on older backing keys any more."""
        wrapped = await self._stored.wrapped(keyspace)
        if not wrapped.versions:
            return 0
        master = await self._kms.key(await self.pool_key(keyspace.identity_pool_id))
        moved = 0
        for version, blob in wrapped.versions.items():
            if material.blob_header(blob).version == master.current_version:
                continue
            context = _data_key_context(keyspace)
            sealed, _, _ = await self._kms.crypto.re_encrypt(
                blob, master.key_id, source_context=context, destination_context=context
            )
            await self._stored.replace(keyspace, version, sealed)
            moved += 1
        return moved

    async def _new_data_key(self, keyspace: IdentityKeyspace) -> WrappedDataKeys:
        """Generates the identity's first data key; a concurrent first write elsewhere may win (its key is used)."""
        master = await self.pool_key(keyspace.identity_pool_id)
        try:
            data_key = await self._kms.generate_data_key(
                master, _data_key_context(keyspace), number_of_bytes=_DATA_KEY_BYTES
            )
        except KmsError as exc:
            raise InvalidConfigurationError(
                f"The master key of identity pool {keyspace.identity_pool_id} cannot make data keys: {exc.message}"
            ) from None
        await self._stored.add_first(keyspace, data_key.blob)
        return await self._stored.wrapped(keyspace)

    async def rotate_pool_key(self, pool_id: str) -> int | None:
        """Rotates the pool's master key: new data keys are made under a new backing key, older ones still unwrap
        (``rewrap`` moves them). The new backing key's version, or None when the pool has no key yet. Pool keys are
        not on the public KMS API: this (``syncsvc keys rotate``) is how an operator rotates them."""
        stored = await self._stored.master_key_id(pool_id)
        if stored is None:
            return None
        return (await self._kms.rotate(stored)).current_version

    async def pool_key(self, pool_id: str) -> str:
        """The pool's master key id, made on first need (a pool key made concurrently elsewhere wins)."""
        known = self._pool_keys.get(pool_id)
        if known is not None:
            return known
        stored = await self._stored.master_key_id(pool_id)
        if stored is None:
            made = await self._kms.lifecycle.create_key(
                description=f"syncsvc identity pool {pool_id}", owner=f"pool:{pool_id}"
            )
            if not await self._stored.claim_master_key(pool_id, made.key_id):
                # another instance made the pool's key first: this one was never used
                await self._kms.discard(made.key_id)
            stored = await self._stored.master_key_id(pool_id)
        key_id = stored or ""
        self._pool_keys[pool_id] = key_id
        return key_id


def _data_key_context(keyspace: IdentityKeyspace) -> dict[str, str]:
    return {"pool": keyspace.identity_pool_id, "identity": keyspace.identity_id}
