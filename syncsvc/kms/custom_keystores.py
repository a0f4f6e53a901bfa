"""KMS custom key stores served on PKCS#11 tokens: KMS's CloudHSM key stores, with a token where KMS has a cluster.

A store names a token of the deployment's PKCS#11 module (``SYNCSVC_PKCS11_MODULE``) by its label, which the API
takes as the store's ``CloudHsmClusterId``; the token's user PIN is the ``KeyStorePassword``. The PIN is sealed by the
root key (bound to the store's id) before it is stored, opened only to log in, and never logged.

Connection state (KMS's ConnectionState) lives in Redis, so it holds across instances. Connect moves DISCONNECTED to
CONNECTING, logs in to the token, then moves on to CONNECTED, or to FAILED with KMS's ConnectionErrorCode
(CLUSTER_NOT_FOUND: no such token; INVALID_CREDENTIALS: wrong PIN; USER_LOCKED_OUT: PIN locked; INTERNAL_ERROR:
anything else, e.g. the module cannot load). Each instance opens its own PKCS#11 session lazily, when a CONNECTED store
is first used there (:meth:`CustomKeystores.token`), and closes it when it finds the store no longer connected.

The KMS keys made in a store (``syncsvc.kms.hsm_keys``) are stored and counted in it through
:meth:`CustomKeystores.add_key` and :meth:`CustomKeystores.remove_key`, so a store that holds keys cannot be deleted
(CustomKeyStoreHasCMKsException).

It touches the store's Redis adapter (``syncsvc.store.custom_keystores``), the root key and ``syncsvc.kms.hsm``.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from syncsvc.clock import Clock
from syncsvc.errors import (
    CloudHsmClusterInUseError,
    CloudHsmClusterNotFoundError,
    CustomKeyStoreHasCmksError,
    CustomKeyStoreInvalidStateError,
    CustomKeyStoreNameInUseError,
    CustomKeyStoreNotFoundError,
    KmsLimitExceededError,
    UnsupportedOperationError,
)
from syncsvc.kms import hsm
from syncsvc.kms.hsm import HsmError, HsmFailure, HsmToken, TokenRef
from syncsvc.kms.root import RootKey
from syncsvc.store.custom_keystores import Outcome, RedisCustomKeystores, StoredKeystore
from syncsvc.store.kms import WriteStatus

log = logging.getLogger("syncsvc.kms")

#: Custom key stores per account and Region (KMS's quota).
QUOTA = 10
_CONNECTION_ERRORS: dict[HsmFailure, str] = {
    "token_missing": "CLUSTER_NOT_FOUND",
    "pin_incorrect": "INVALID_CREDENTIALS",
    "pin_locked": "USER_LOCKED_OUT",
}


@dataclass(frozen=True, slots=True)
class CustomKeystore:
    """A custom key store as KMS describes it."""

    store_id: str
    name: str
    token_label: str
    trust_anchor: str
    created_ms: int
    state: str
    error_code: str


def _keystore(stored: StoredKeystore) -> CustomKeystore:
    return CustomKeystore(
        stored.store_id, stored.name, stored.token, stored.trust_anchor, stored.created_ms, stored.state, stored.error
    )


class CustomKeystores:
    """The deployment's custom key stores; ``module`` is the PKCS#11 module's path (None: none configured, and every
    operation that needs a token answers UnsupportedOperationException)."""

    def __init__(self, store: RedisCustomKeystores, root: RootKey, *, module: str | None, clock: Clock) -> None:
        self._store = store
        self._root = root
        self._module = module
        self._clock = clock
        #: This instance's open sessions, by store id (opened lazily, see the module docstring).
        self._tokens: dict[str, HsmToken] = {}

    # --- reads --------------------------------------------------------------------------------------------------------

    async def get(self, store_id: str) -> CustomKeystore:
        return _keystore(await self._stored(store_id))

    async def named(self, name: str) -> CustomKeystore:
        store_id = await self._store.store_id_named(name)
        if store_id is None:
            raise CustomKeyStoreNotFoundError(f"Custom key store with name '{name}' does not exist")
        return await self.get(store_id)

    async def listed(self, *, after: str | None, limit: int) -> list[CustomKeystore]:
        """Up to ``limit`` stores in id order after ``after`` (a store deleted meanwhile is left out)."""
        found = [await self._store.load(store_id) for store_id in await self._store.store_ids(after=after, limit=limit)]
        return [_keystore(stored) for stored in found if stored is not None]

    # --- changes ------------------------------------------------------------------------------------------------------

    async def create(self, name: str, token_label: str, trust_anchor: str, pin: str) -> str:
        """A new DISCONNECTED store on the token labelled ``token_label`` (which must exist); its id."""
        await self._check_token(token_label)
        store_id = f"cks-{secrets.token_hex(9)[:17]}"
        stored = StoredKeystore(
            store_id,
            name,
            token_label,
            trust_anchor,
            self._clock.now_ms(),
            "DISCONNECTED",
            "",
            await self._seal(store_id, pin),
            0,
        )
        outcome = await self._store.create(stored, quota=QUOTA)
        if outcome == "name":
            raise CustomKeyStoreNameInUseError(f"Custom key store name '{name}' is already in use")
        if outcome == "token":
            raise CloudHsmClusterInUseError(f"Cluster '{token_label}' is already associated with a custom key store")
        if outcome == "quota":
            raise KmsLimitExceededError(f"The account already has {QUOTA} custom key stores, the most it may hold")
        return store_id

    async def connect(self, store_id: str) -> None:
        """Connects the store (a CONNECTED or CONNECTING one stays as it is). The attempt's outcome is the store's
        state, as with KMS: FAILED with its ConnectionErrorCode when the token refuses."""
        self._require_module()
        moved = await self._store.move(store_id, from_states=("DISCONNECTED",), to="CONNECTING")
        self._check(moved, store_id, "connect")
        if moved.status == "state":
            if moved.state in ("CONNECTED", "CONNECTING"):
                return
            raise CustomKeyStoreInvalidStateError(
                f"Custom key store {store_id} is {moved.state}: disconnect it before connecting it again"
            )
        stored = await self._stored(store_id)
        # a session this instance kept from an earlier connection (disconnected through another instance) goes first:
        # the login it holds would be checked against the PIN instead of the token
        await self._forget(store_id)
        try:
            token = await hsm.open_token(self._ref(stored.token), await self._open_pin(stored))
        except HsmError as exc:
            code = _CONNECTION_ERRORS.get(exc.reason, "INTERNAL_ERROR")
            log.warning("custom key store %s failed to connect (%s): %s", store_id, code, exc.message)
            await self._store.move(store_id, from_states=("CONNECTING",), to="FAILED", error=code)
            return
        connected = await self._store.move(store_id, from_states=("CONNECTING",), to="CONNECTED")
        if connected.status != "done":
            await token.close()
            return
        self._tokens[store_id] = token

    async def disconnect(self, store_id: str) -> None:
        moved = await self._store.move(store_id, from_states=("CONNECTED", "CONNECTING", "FAILED"), to="DISCONNECTED")
        self._check(moved, store_id, "disconnect")
        if moved.status == "state":
            raise CustomKeyStoreInvalidStateError(f"Custom key store {store_id} is {moved.state}: it is not connected")
        await self._forget(store_id)

    async def update(self, store_id: str, *, name: str | None, token_label: str | None, pin: str | None) -> None:
        """Changes the name, the token or the PIN of a DISCONNECTED store, or the name alone of a CONNECTED one (KMS's
        rule); the PIN is not tried until the store connects."""
        if token_label is not None:
            await self._check_token(token_label)
        sealed = None if pin is None else await self._seal(store_id, pin)
        outcome = await self._store.update(store_id, name=name, token=token_label, sealed_pin=sealed)
        self._check(outcome, store_id, "update")
        if outcome.status == "name":
            raise CustomKeyStoreNameInUseError(f"Custom key store name '{name}' is already in use")
        if outcome.status == "token":
            raise CloudHsmClusterInUseError(f"Cluster '{token_label}' is already associated with a custom key store")

    async def delete(self, store_id: str) -> None:
        outcome = await self._store.delete(store_id)
        self._check(outcome, store_id, "delete")
        if outcome.status == "token":
            raise CustomKeyStoreHasCmksError(
                f"Custom key store {store_id} still holds KMS keys: delete them (ScheduleKeyDeletion) first"
            )

    # --- the KMS keys in a store -------------------------------------------------------------------------------------

    async def add_key(self, store_id: str, key_id: str, meta: bytes, *, quota: int) -> Outcome:
        """Stores a new KMS key of the store and counts it, in one script (``syncsvc.kms.hsm_keys`` makes its material
        in the token first): ``done``, ``state`` (the store is not CONNECTED), ``gone`` or ``quota``."""
        return await self._store.add_key(store_id, key_id, meta, quota=quota)

    async def remove_key(self, store_id: str, key_id: str, *, revision: int | None) -> WriteStatus:
        """Deletes a KMS key of the store for good and uncounts it, if its revision is still ``revision``."""
        return await self._store.remove_key(store_id, key_id, revision=revision)

    # --- the tokens -------------------------------------------------------------------------------------------------

    async def token(self, store_id: str) -> HsmToken:
        """This instance's session on the token of a CONNECTED store, opened on first use; the cached session is
        closed and CustomKeyStoreInvalidStateException raised when the store is not CONNECTED (any instance may have
        disconnected it)."""
        stored = await self._stored(store_id)
        if stored.state != "CONNECTED":
            await self._forget(store_id)
            raise CustomKeyStoreInvalidStateError(f"Custom key store {store_id} is {stored.state}, not CONNECTED")
        if store_id not in self._tokens:
            self._require_module()
            self._tokens[store_id] = await hsm.open_token(self._ref(stored.token), await self._open_pin(stored))
        return self._tokens[store_id]

    async def close(self) -> None:
        """Closes this instance's sessions (at shutdown)."""
        for store_id in list(self._tokens):
            await self._forget(store_id)

    # --- helpers ------------------------------------------------------------------------------------------------------

    async def _stored(self, store_id: str) -> StoredKeystore:
        stored = await self._store.load(store_id)
        if stored is None:
            raise CustomKeyStoreNotFoundError(f"Custom key store with ID '{store_id}' does not exist")
        return stored

    async def _forget(self, store_id: str) -> None:
        token = self._tokens.pop(store_id, None)
        if token is not None:
            await token.close()

    def _check(self, outcome: Outcome, store_id: str, doing: str) -> None:
        if outcome.status == "gone":
            raise CustomKeyStoreNotFoundError(f"Custom key store with ID '{store_id}' does not exist")
        if outcome.status == "state" and doing == "delete":
            raise CustomKeyStoreInvalidStateError(
                f"Custom key store {store_id} is {outcome.state}: disconnect it before you delete it"
            )
        if outcome.status == "state" and doing == "update":
            raise CustomKeyStoreInvalidStateError(
                f"Custom key store {store_id} is {outcome.state}: only its name changes unless it is DISCONNECTED"
            )

    def _require_module(self) -> str:
        if self._module is None:
            raise UnsupportedOperationError(
                "This deployment has no PKCS#11 module for custom key stores: set SYNCSVC_PKCS11_MODULE"
            )
        return self._module

    def _ref(self, token_label: str) -> TokenRef:
        return TokenRef(self._require_module(), label=token_label)

    async def _check_token(self, token_label: str) -> None:
        try:
            await hsm.find_token(self._ref(token_label))
        except HsmError as exc:
            if exc.reason != "token_missing":
                raise
            raise CloudHsmClusterNotFoundError(
                f"Cluster '{token_label}' not found: {self._module} has no token labelled so"
            ) from None

    async def _seal(self, store_id: str, pin: str) -> bytes:
        return await self._root.seal_secret(_sealed_as(store_id), pin.encode())

    async def _open_pin(self, stored: StoredKeystore) -> str:
        return (await self._root.open_secret(_sealed_as(stored.store_id), stored.sealed_pin)).decode()


def _sealed_as(store_id: str) -> str:
    """The name a store's PIN is sealed under (so a sealed PIN cannot be moved to another store)."""
    return f"custom key store {store_id}"
