"""SyncClient: one identity's datasets on one device — the local copy, its file, synchronize (see
:mod:`syncsvc.client.algorithm`), signing in and identity changes (see :mod:`syncsvc.client.merges`) and push sync
(see :mod:`syncsvc.client.push`).

The sync run and the push listener see a client only through the protocols they define (``algorithm.Device``,
``push.Subscriber``), which SyncClient satisfies structurally; no module of the package but ``__init__`` imports
this one."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import aiohttp

from syncsvc.client.algorithm import SyncResult, SyncRun
from syncsvc.client.conflicts import ConflictHandler, last_writer_wins
from syncsvc.client.errors import (
    DEVICE_NOT_REGISTERED,
    SyncClientError,
)
from syncsvc.client.local import DELETED, DatasetLocks, LocalDataset, LocalState, Record, StateFile, read_state
from syncsvc.client.merges import MergePolicy, fold_last_writer_wins, rebase
from syncsvc.client.push import ChangeHandler, PushListener
from syncsvc.client.transport import (
    DEFAULT_TIMEOUT,
    GuestTokens,
    Logins,
    LoginTokens,
    SyncTransport,
    TokenProvider,
    current_logins,
    label,
    new_guest_identity,
    path,
    signed_in,
)

log = logging.getLogger("syncsvc.client")

DATASET_NAME = re.compile(r"[a-zA-Z0-9_.:-]{1,128}")
MAX_KEY_LENGTH = 1024
PAGE_SIZE = 1024


def check_dataset_name(name: str) -> None:
    if not DATASET_NAME.fullmatch(name):
        raise ValueError(f"dataset name {name!r} does not match [a-zA-Z0-9_.:-]{{1,128}}")


def _always_delete(dataset: str) -> bool:
    return True


class SyncClient:
    """One identity's datasets on one device. See the package docstring for a walk-through.

    ``token_provider`` is an async callable giving a fresh OpenID token of the identity (GetOpenIdToken, or the app's
    own login flow); it is called on first use and whenever the server refuses the current token.
    ``state_path``: a JSON file keeping the local copy across runs (loaded by :meth:`load`, ``async with`` or
    :meth:`guest`; saved after each sync and, in the background, after each local change). ``clock``: epoch seconds
    of local changes (for last-writer-wins). ``on_datasets_merged(dataset, names)``: told the MergedDatasetNames a
    sync reports (also kept in :attr:`merged_datasets`). ``on_dataset_deleted(dataset) -> bool``: told that the
    dataset was deleted on the server; True (the default) deletes the local copy too, False keeps the local values
    and pushes them again as new records (re-creating the dataset). ``page_size``: ListRecords MaxResults.
    ``merge_policy``: how :meth:`synchronize` folds the merged copies of a dataset into it (default
    :func:`~syncsvc.client.merges.fold_last_writer_wins`; None: never automatically, see :meth:`merge_datasets`).
    ``on_identity_changed(old_id, new_id)``: told when :meth:`sign_in` or :meth:`switch_identity` moved this client
    to another identity (Cognito's identity-changed listener).

    Every UpdateRecords names the device: ``DeviceId`` once :meth:`register_device` gave one, and always the
    ``x-amz-Client-Context`` header with this installation's id (so devices of one identity are distinct writers
    in the server's version vectors even before they register).
    """

    #: ResourceConflictException restarts of one ``synchronize`` before it gives up (SyncRetriesExceededError).
    max_retries: ClassVar[int] = 3

    def __init__(
        self,
        endpoint: str,
        pool_id: str,
        identity_id: str,
        token_provider: TokenProvider,
        *,
        state_path: str | Path | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        on_datasets_merged: Callable[[str, list[str]], None] | None = None,
        on_dataset_deleted: Callable[[str], bool] = _always_delete,
        page_size: int = PAGE_SIZE,
        merge_policy: MergePolicy | None = fold_last_writer_wins,
        on_identity_changed: Callable[[str, str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.pool_id = pool_id
        self.identity_id = identity_id
        self.token_provider = token_provider
        self.clock = clock
        self.on_datasets_merged = on_datasets_merged
        self.on_dataset_deleted = on_dataset_deleted
        self.page_size = page_size
        self.merge_policy = merge_policy
        self.on_identity_changed = on_identity_changed
        #: MergedDatasetNames of each dataset as its last sync reported them (absent when there are none).
        self.merged_datasets: dict[str, list[str]] = {}
        self._transport = SyncTransport(self.endpoint, token_provider, session=session, timeout=timeout)
        self._file = None if state_path is None else StateFile(Path(state_path))
        self._state: LocalState | None = LocalState(pool_id, identity_id) if self._file is None else None
        self._locks = DatasetLocks()
        self._save_pending = False
        self._saves: set[asyncio.Task[None]] = set()

    # --- life cycle ---------------------------------------------------------------------------------------------

    @classmethod
    async def guest(
        cls, endpoint: str, pool_id: str, *, state_path: str | Path | None = None, **options: Any
    ) -> SyncClient:
        """A client of a guest identity: the one saved at ``state_path`` if any, else a new one (unsigned GetId).
        Its tokens come from unsigned GetOpenIdToken calls (:class:`GuestTokens`)."""
        saved = None if state_path is None else await asyncio.to_thread(read_state, Path(state_path))
        if saved is None:
            identity_id = await new_guest_identity(endpoint, pool_id)
        elif saved.identity_pool_id != pool_id:
            raise ValueError(f"the state file belongs to identity pool {saved.identity_pool_id}, not {pool_id}")
        else:
            identity_id = saved.identity_id
        client = cls(
            endpoint, pool_id, identity_id, GuestTokens(endpoint, identity_id), state_path=state_path, **options
        )
        client._adopt(saved)
        return client

    async def load(self) -> None:
        """Reads the state file (in a thread); a client with a ``state_path`` needs this before use."""
        if self._file is not None and self._state is None:
            self._adopt(await asyncio.to_thread(read_state, self._file.path))

    def _adopt(self, saved: LocalState | None) -> None:
        if saved is None:
            self._state = LocalState(self.pool_id, self.identity_id)
            return
        if (saved.identity_pool_id, saved.identity_id) != (self.pool_id, self.identity_id):
            raise ValueError(f"the state file belongs to {saved.identity_id} of {saved.identity_pool_id}")
        self._state = saved

    async def close(self) -> None:
        """Saves the local copy and closes the HTTP session (if the client opened it)."""
        if self._saves:
            await asyncio.wait(self._saves)
        if self._state is not None:
            await self.flush()
        await self._transport.close()

    async def __aenter__(self) -> SyncClient:
        await self.load()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    # --- signing in -----------------------------------------------------------------------------------------------

    async def sign_in(self, logins: Logins) -> str:
        """Signs this client's identity in with ``logins`` (``{provider: the user's token}``; or an async callable
        giving fresh ones) as Cognito's guests do: an unsigned GetOpenIdToken with the identity id and the logins.
        Logins that belong to no one are linked to this identity (the id stays); logins of another identity make the
        server merge this one (a guest) into it and answer its id. Either way, :meth:`switch_identity` to the id
        answered, with tokens from GetOpenIdToken with the logins (:class:`LoginTokens`); returns that id."""
        identity_id, token = await signed_in(
            self.endpoint, self.pool_id, self.identity_id, await current_logins(logins)
        )
        await self.switch_identity(identity_id, LoginTokens(self.endpoint, identity_id, logins), token=token)
        return identity_id

    async def switch_identity(
        self, identity_id: str, token_provider: TokenProvider, *, token: str | None = None
    ) -> None:
        """Makes this the client of ``identity_id``, with tokens from ``token_provider`` (``token``: a first one in
        hand). The developer-authenticated sign in: the app's backend called GetOpenIdTokenForDeveloperIdentity with
        this client's identity id and handed the device the IdentityId and Token answered. Waits for running syncs;
        the previous provider's token is never sent again. When the id changed, the local copy moves to the new
        identity (see :mod:`syncsvc.client.merges`: nothing local is lost, no old sync count is sent) and is saved,
        ``on_identity_changed(old, new)`` is told; register the device and subscribe again. Only for the identity
        this one became: another user's identity needs a client and a state file of its own."""
        state, previous = self.state, self.identity_id
        async with self._locks.every():
            self._transport.use(token_provider, token)
            self.token_provider = token_provider
            if identity_id != previous:
                rebase(state, identity_id)
                self.identity_id = identity_id
                self.merged_datasets = {}
        if identity_id == previous:
            return
        log.info("identity %s is now %s: the local copy moved to it", previous, identity_id)
        await self.flush()
        if self.on_identity_changed is not None:
            self.on_identity_changed(previous, identity_id)

    @property
    def state(self) -> LocalState:
        if self._state is None:
            raise RuntimeError("this client keeps its state in a file: `await client.load()` (or `async with`) first")
        return self._state

    @property
    def device_id(self) -> str | None:
        """The DeviceId from :meth:`register_device` (sent with every UpdateRecords), None before."""
        return self.state.device_id

    # --- the local copy -----------------------------------------------------------------------------------------

    def get(self, dataset: str, key: str) -> str | None:
        """The local value of ``key`` (None when absent or removed)."""
        found = self.state.datasets.get(dataset)
        record = None if found is None else found.records.get(key)
        return None if record is None else record.value

    def records(self, dataset: str) -> dict[str, Record]:
        """Every local record of the dataset, removals (value None) included."""
        found = self.state.datasets.get(dataset)
        return {} if found is None else dict(found.records)

    def values(self, dataset: str) -> dict[str, str]:
        """The dataset's live local values."""
        return {key: record.value for key, record in self.records(dataset).items() if record.value is not None}

    def last_sync_count(self, dataset: str) -> int:
        """The dataset's sync count as of the last sync (0 before any; -1 while a local deletion is unsynced)."""
        found = self.state.datasets.get(dataset)
        return 0 if found is None else found.last_sync_count

    def put(self, dataset: str, key: str, value: str) -> None:
        """Sets ``key`` locally; pushed by the next :meth:`synchronize`."""
        self._write(dataset, key, value)

    def remove(self, dataset: str, key: str) -> None:
        """Removes ``key`` locally; pushed (as Op remove) by the next :meth:`synchronize`."""
        self._write(dataset, key, None)

    def delete_dataset(self, dataset: str) -> None:
        """Deletes the local copy; the next :meth:`synchronize` deletes the dataset on the server (DeleteDataset)."""
        check_dataset_name(dataset)
        self.state.datasets[dataset] = LocalDataset(last_sync_count=DELETED)
        self._changed()

    def _write(self, dataset: str, key: str, value: str | None) -> None:
        check_dataset_name(dataset)
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise ValueError(f"a record key has 1 to {MAX_KEY_LENGTH} characters, not {len(key)}")
        local = self.state.dataset(dataset)
        if local.last_sync_count == DELETED:
            raise ValueError(f"dataset {dataset!r} was deleted locally: synchronize it before writing again")
        current = local.records.get(key)
        if current is not None and current.value == value:
            return  # no change
        if value is None and (current is None or (current.sync_count == 0 and current.modified)):
            local.records.pop(key, None)  # never on the server: nothing to remove there
        else:
            local.records[key] = Record(value, 0 if current is None else current.sync_count, True, self.clock())
        self._changed()

    # --- persistence --------------------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Writes the local copy to the state file now (no-op without one)."""
        if self._file is None:
            return
        async with self._file.lock:
            self._save_pending = False  # the snapshot below has every change made until now
            await self._file.write(self.state)

    def _changed(self) -> None:
        """Schedules a background save after a local change (one pending save covers any number of changes)."""
        if self._file is None or self._save_pending:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._save_in_background())
        except RuntimeError:  # no running loop: the next flush / synchronize / close saves it
            return
        self._save_pending = True
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)

    async def _save_in_background(self) -> None:
        if not self._save_pending:  # a flush since the change already saved it
            return
        try:
            await self.flush()
        except Exception:
            log.exception("could not save the local sync state to %s", self._file and self._file.path)

    # --- synchronize --------------------------------------------------------------------------------------------

    async def synchronize(self, dataset: str, on_conflict: ConflictHandler | None = None) -> SyncResult:
        """Pulls the remote changes since the last sync, resolves conflicts, pushes the local changes.

        A push refused with ResourceConflictException (another device wrote in between) restarts the whole sync,
        :attr:`max_retries` times at most, then raises :class:`SyncRetriesExceededError`. Conflicts go to
        ``on_conflict`` (default :func:`last_writer_wins`). Syncs of one dataset run one at a time.
        """
        check_dataset_name(dataset)
        async with self._locks(dataset):
            return await self._synchronize(dataset, on_conflict)

    async def synchronize_if_behind(
        self, dataset: str, sync_count: int, on_conflict: ConflictHandler | None = None
    ) -> SyncResult | None:
        """:meth:`synchronize` if the local copy is older than ``sync_count`` once any running sync of the dataset
        is done (else None): what a push notification asks for."""
        check_dataset_name(dataset)
        async with self._locks(dataset):
            if sync_count <= self.last_sync_count(dataset):
                return None
            return await self._synchronize(dataset, on_conflict)

    async def merge_datasets(
        self,
        dataset: str,
        policy: MergePolicy = fold_last_writer_wins,
        on_conflict: ConflictHandler | None = None,
    ) -> SyncResult:
        """:meth:`synchronize` folding the dataset's merged copies with ``policy``: for a client made with
        ``merge_policy=None`` (e.g. to ask the user first, on the names ``on_datasets_merged`` was told), or to fold
        once with another policy. Folded copies are deleted on the server (``SyncResult.folded``)."""
        check_dataset_name(dataset)
        async with self._locks(dataset):
            return await self._synchronize(dataset, on_conflict, policy)

    async def _synchronize(
        self, dataset: str, on_conflict: ConflictHandler | None, policy: MergePolicy | None = None
    ) -> SyncResult:
        try:
            run = SyncRun(self, dataset, on_conflict or last_writer_wins, policy or self.merge_policy)
            return await run.run()
        finally:
            await self.flush()

    async def before_push(self, dataset: str, patches: list[dict[str, Any]]) -> None:
        """Hook point, called by every sync attempt between its pull and its UpdateRecords with the patches about to
        be sent (never when there is nothing to push). Does nothing; a subclass may override it (to log, or in tests
        to make another device write in between). Changing ``patches`` changes what is sent."""

    def note_merged(self, dataset: str, merged: list[str]) -> None:
        """Keeps (and tells ``on_datasets_merged``) the MergedDatasetNames a pull of ``dataset`` reported."""
        if not merged:
            self.merged_datasets.pop(dataset, None)
            return
        self.merged_datasets[dataset] = merged
        if self.on_datasets_merged is not None:
            self.on_datasets_merged(dataset, merged)

    # --- push sync ----------------------------------------------------------------------------------------------

    async def register_device(self, platform: str = "WEBSOCKET", token: str | None = None) -> str:
        """RegisterDevice; returns and keeps the DeviceId. ``token`` defaults to this installation's stable id."""
        body = {"Platform": platform, "Token": token or self.state.installation_id}
        target = path("identitypools", self.pool_id, "identity", self.identity_id) + "/device"
        answer = await self._transport.call("POST", target, body=body)
        self.state.device_id = answer["DeviceId"]
        await self.flush()
        return self.state.device_id

    async def subscribe(self, dataset: str) -> None:
        """SubscribeToDataset: this device is told (over :meth:`listen`) when the dataset changes."""
        await self._transport.call("POST", self._subscription_path(dataset))
        self.state.subscriptions.add(dataset)
        await self.flush()

    async def unsubscribe(self, dataset: str) -> None:
        """UnsubscribeFromDataset."""
        await self._transport.call("DELETE", self._subscription_path(dataset))
        self.state.subscriptions.discard(dataset)
        await self.flush()

    def push_path(self) -> str:
        """The path of this device's push WebSocket."""
        return path("identitypools", self.pool_id, "identity", self.identity_id, "device", self._device()) + "/push"

    def listener(self, **options: Any) -> PushListener:
        """A :class:`~syncsvc.client.push.PushListener` of this client (options: see its constructor)."""
        return PushListener(self, **options)

    async def listen(self, on_change: ChangeHandler | None = None, **options: Any) -> None:
        """Keeps the push WebSocket open and syncs the datasets it announces, until cancelled."""
        await self.listener(on_change=on_change, **options).run()

    @asynccontextmanager
    async def listening(self, on_change: ChangeHandler | None = None, **options: Any) -> AsyncIterator[PushListener]:
        """``async with client.listening(on_change=…) as listener:`` runs :meth:`listen` in a task for the block."""
        listener = self.listener(on_change=on_change, **options)
        async with listener.running():
            yield listener

    # --- paths --------------------------------------------------------------------------------------------------

    def dataset_path(self, dataset: str) -> str:
        """The encoded path of one of this identity's datasets."""
        return path("identitypools", self.pool_id, "identities", self.identity_id, "datasets", dataset)

    def _device(self) -> str:
        if self.state.device_id is None:
            raise SyncClientError(DEVICE_NOT_REGISTERED, "call register_device() first", 0)
        return self.state.device_id

    def _subscription_path(self, dataset: str) -> str:
        check_dataset_name(dataset)
        return self.dataset_path(dataset) + "/subscriptions/" + label(self._device())

    @property
    def transport(self) -> SyncTransport:
        """The HTTP side (for the push listener and for calls this client does not wrap)."""
        return self._transport
