"""A tiny asyncio reference client of syncsvc (Cognito Sync semantics), for devices: aiohttp and orjson only.

It keeps a local copy of an identity's datasets, synchronizes it the way the Cognito mobile SDKs do (pull the
changes since the last sync, resolve conflicts, push the local changes with the sync session token; restart on a
ResourceConflictException), authenticates with ``Authorization: Bearer <OpenID token>`` and listens for push
notifications over a WebSocket::

    import asyncio
    from syncsvc.client import SyncClient

    async def main() -> None:
        # a guest identity (unsigned GetId + GetOpenIdToken), kept in app-state.json with the local copy
        client = await SyncClient.guest("http://127.0.0.1:8080", "us-east-1:…", state_path="app-state.json")
        async with client:
            client.put("settings", "theme", "dark")            # local only
            result = await client.synchronize("settings")       # pull, resolve, push
            print(client.values("settings"), result.sync_count)

            # the same identity on another device, with its own login flow giving tokens:
            # SyncClient(endpoint, pool_id, identity_id, token_provider)

            # conflicts: keep what this device wrote
            await client.synchronize(
                "settings", on_conflict=lambda name, conflicts: [c.resolve_with_local() for c in conflicts]
            )

            # push: this device is told when another one changes "settings", and syncs it
            await client.register_device()
            await client.subscribe("settings")
            async with client.listening(on_change=lambda name, result: print("synced", name)) as listener:
                await listener.wait_resumed()
                await asyncio.sleep(3600)

    asyncio.run(main())

Signing in, as Cognito's guests do: ``await client.sign_in({"login.example.com": id_token})`` (GetOpenIdToken with
the guest's id and the logins). When the login already belongs to another identity, the server merges the guest into
it and the client follows: ``on_identity_changed(old_id, new_id)`` is told, the local copy moves to the new identity
(nothing local is lost, no old sync count is sent) and the next ``synchronize`` of each dataset folds the guest's
data (``<name>.<guest id>``) into it with the ``merge_policy`` (default: the value written last wins), then deletes
the merged copy. Apps with developer-authenticated identities call ``await client.switch_identity(identity_id,
token_provider)`` with what their backend's GetOpenIdTokenForDeveloperIdentity answered. See
:mod:`syncsvc.client.merges`. After a restart, ``SyncClient.guest(…, state_path=…)`` gives back the identity the state
file holds (signed in or not), and ``sign_in`` again gives it the logins' tokens (or finishes a sign-in the file
never recorded).

Conflict handlers get ``(dataset, [SyncConflict])`` and return one :class:`Resolution` per conflict, from the
conflict's ``resolve_with_remote()``, ``resolve_with_local()`` or ``resolve_with_value(v)``; the default,
:func:`last_writer_wins`, keeps the later of the server's LastModifiedDate and the local modification time.
Every failure is a :class:`SyncClientError` carrying the AWS error name (``code``), message and HTTP status.
"""

from __future__ import annotations

from syncsvc.client.algorithm import SyncResult
from syncsvc.client.conflicts import ConflictHandler, RemoteRecord, Resolution, SyncConflict, last_writer_wins
from syncsvc.client.core import SyncClient
from syncsvc.client.errors import SyncClientError, SyncRetriesExceededError
from syncsvc.client.local import Record
from syncsvc.client.merges import MergeConflict, MergePolicy, fold_last_writer_wins
from syncsvc.client.push import Backoff, ChangeHandler, PushListener
from syncsvc.client.transport import GuestTokens, Logins, LoginTokens, TokenProvider

__all__ = [
    "Backoff",
    "ChangeHandler",
    "ConflictHandler",
    "GuestTokens",
    "LoginTokens",
    "Logins",
    "MergeConflict",
    "MergePolicy",
    "PushListener",
    "Record",
    "RemoteRecord",
    "Resolution",
    "SyncClient",
    "SyncClientError",
    "SyncConflict",
    "SyncResult",
    "SyncRetriesExceededError",
    "TokenProvider",
    "fold_last_writer_wins",
    "last_writer_wins",
]
