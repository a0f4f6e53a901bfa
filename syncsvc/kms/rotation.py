"""Rotating the root key: everything it wrapped or sealed moves to a new key while servers accept both.

The procedure (README, "Rotating the root key"):

1. ``syncsvc keys root-key NEW`` makes the new key file.
2. Every instance restarts with ``SYNCSVC_ROOT_KEY_FILE=NEW`` and ``SYNCSVC_PREVIOUS_ROOT_KEY_FILE=OLD``: it opens what
   is stored under either key and wraps what it makes anew under NEW.
3. ``syncsvc keys rotate-root`` (with the same settings; or, with ``SYNCSVC_ROOT_KEY_FILE=OLD``, ``syncsvc keys
   rotate-root --new NEW``) moves every backing key of every KMS key and the token secret to NEW.
4. Every instance restarts without ``SYNCSVC_PREVIOUS_ROOT_KEY_FILE``; OLD can be destroyed.

Safe under ``kill -9`` and resumable: each stored blob is replaced by one compare-and-set, from the blob under OLD to
the same material under NEW, so at every moment each blob opens under one of the two keys, and a second run skips
what a first one moved. Only once every blob opens under NEW does Redis record NEW's check value; from then on a
server given OLD alone refuses to start. Data keys are wrapped by master keys, not by the root key: they stay as
they are, and so do the values sealed under them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from syncsvc.kms.root import RootKey
from syncsvc.kms.token_secret import reseal_token_secret
from syncsvc.store.kms import RedisKeyStore
from syncsvc.store.redis import RedisStore

_PAGE = 200


class RotationError(Exception):
    """The rotation cannot run (the keys given are not this deployment's)."""


@dataclass
class RotationReport:
    #: Blobs (backing keys, the token secret) moved to the new key by this run.
    moved: int = 0
    #: Blobs the new key wrapped already (made since the instances had it, or moved by an earlier run).
    already: int = 0
    #: Backing keys of KMS keys deleted while the rotation ran.
    gone: int = 0


async def rotate_root(
    store: RedisStore, kms: RedisKeyStore, root: RootKey, *, on_key: Callable[[], None] = lambda: None
) -> RotationReport:
    """Moves everything sealed under ``root.previous`` to ``root`` (see the module): every KMS key's backing keys in
    ``kms`` and the token secret in ``store``; ``on_key`` is called after each KMS key, for a progress bar."""
    if root.previous is None:
        raise RotationError("no previous root key to rotate from")
    recorded = await store.check_root_key(await root.previous.check_value())
    if not await root.matches(recorded):
        raise RotationError(f"this Redis's data is sealed under neither key (Redis recorded check value {recorded})")
    report = RotationReport()
    after: str | None = None
    while page := await kms.key_ids(after=after, limit=_PAGE):
        for key_id in page:
            await _move_key(kms, root, key_id, report)
            on_key()
        after = page[-1]
    await _move_token_secret(store, root, report)
    await store.record_root_key(recorded, await root.check_value())
    return report


async def _move_key(kms: RedisKeyStore, root: RootKey, key_id: str, report: RotationReport) -> None:
    loaded = await kms.load(key_id)
    for version, wrapped in (loaded.versions if loaded else {}).items():
        rewrapped = await root.rewrapped(wrapped, key_id, version)
        if rewrapped is None:
            report.already += 1
        elif await kms.replace_version(key_id, version, wrapped, rewrapped):
            report.moved += 1
        else:  # a backing key never changes but by this: the key was deleted meanwhile
            report.gone += 1


async def _move_token_secret(store: RedisStore, root: RootKey, report: RotationReport) -> None:
    stored = await store.stored_token_secret()
    if stored is None:
        return
    resealed = await reseal_token_secret(root, stored)
    if resealed is None:
        report.already += 1
    elif await store.replace_token_secret(stored, resealed):
        report.moved += 1
