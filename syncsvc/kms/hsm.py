"""A PKCS#11 token (an HSM; SoftHSM2 in the tests) as the key service uses it, over python-pkcs11.

What it does, and nothing more: open a token by module path and token label (or slot id) with the user PIN; make an
AES-256 key *inside* the token under a label (CKA_TOKEN, CKA_SENSITIVE, not extractable: its value never leaves the
token); find, use and destroy a key by label; AES-GCM inside the token, with associated data passed through.

AES-GCM: the token takes the IV from the caller (SoftHSM2 does not generate GCM IVs), so :meth:`HsmToken.encrypt` draws
12 random bytes per call and answers ``IV (12) | ciphertext | tag (16)``, the shape :meth:`HsmToken.decrypt` takes.

Threads: every PKCS#11 call blocks, and the module is initialised once per process with ``C_Initialize(NULL)`` (the
application promises not to call it from two threads at once). So each module gets **one worker thread** for the whole
process (:class:`_Module`), and every call on every token and session of that module runs there, one at a time: no
session is ever used by two threads and no lock is needed around one. The async API awaits that thread.

Login is per process and token in PKCS#11 (every session of a token shares it): a second :func:`open_token` of a token
this process is logged in to checks its PIN against the one that logged in, instead of C_Login (which would answer
"already logged in" to any PIN). Closing the last session of a token logs the process out of it.

Every failure is an :class:`HsmError` whose ``reason`` says which (module missing, token missing, PIN incorrect or
locked, key missing or existing, ciphertext that does not open, session closed, device failure); the PIN is never part
of a message. It touches the PKCS#11 module only (no Redis, no HTTP).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar, cast

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (
    NoSuchKey,
    NoSuchToken,
    PinIncorrect,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    UserAlreadyLoggedIn,
)
from pkcs11.mechanisms import GCMParams
from pkcs11.types import DecryptMixin, EncryptMixin

from syncsvc.errors import KmsInternalError

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as library_type

HsmFailure = Literal[
    "module_missing",
    "token_missing",
    "pin_incorrect",
    "pin_locked",
    "key_missing",
    "key_exists",
    "ciphertext",
    "not_opened",
    "device",
]
IV_BYTES = 12
TAG_BYTES = 16
AES_KEY_BITS = 256
_T = TypeVar("_T")


class HsmError(KmsInternalError):
    """A PKCS#11 call that failed; ``reason`` says why (the key service maps it to KMS's answer)."""

    def __init__(self, reason: HsmFailure, message: str) -> None:
        super().__init__(message)
        self.reason: HsmFailure = reason


@dataclass(frozen=True, slots=True)
class TokenRef:
    """Which token: the PKCS#11 module (a shared library's path) and the token's label, or else its slot id."""

    module: str
    label: str | None = None
    slot: int | None = None

    def __str__(self) -> str:
        which = f"labelled {self.label!r}" if self.label is not None else f"in slot {self.slot}"
        return f"the PKCS#11 token {which} of {self.module}"


@dataclass(slots=True)
class _Login:
    """A token this process is logged in to: a digest of the PIN that logged in, and how many sessions are open."""

    pin_digest: bytes
    sessions: int = 0


@dataclass(slots=True)
class _Module:
    """One loaded PKCS#11 module: its library, its one worker thread, and the tokens the process is logged in to
    (touched in the worker thread only)."""

    library: library_type
    thread: ThreadPoolExecutor
    logins: dict[int, _Login] = field(default_factory=dict)

    async def run(self, call: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self.thread, call)


_modules: dict[str, _Module] = {}
_modules_lock = threading.Lock()


def _module(path: str) -> _Module:
    """The module at ``path``, loaded and initialised once per process (a second C_Initialize fails); blocks (called
    in a thread)."""
    with _modules_lock:
        if path not in _modules:
            try:
                library = pkcs11.lib(path)
            except PKCS11Error as exc:
                raise HsmError("module_missing", f"cannot load the PKCS#11 module {path}: {exc}") from None
            _modules[path] = _Module(
                library, ThreadPoolExecutor(1, thread_name_prefix=f"pkcs11 {os.path.basename(path)}")
            )
        return _modules[path]


async def find_token(ref: TokenRef) -> None:
    """Checks that ``ref``'s token is there, without logging in; HsmError when the module or the token is missing."""
    module = await asyncio.to_thread(_module, ref.module)
    await module.run(lambda: _token(ref, module))


async def open_token(ref: TokenRef, pin: str) -> HsmToken:
    """A read-write session on ``ref``'s token, logged in as its user; HsmError when the module or the token is missing
    or the PIN is wrong or locked."""
    module = await asyncio.to_thread(_module, ref.module)
    return await module.run(lambda: HsmToken(ref, module, *_open_session(ref, module, pin)))


def _token(ref: TokenRef, module: _Module) -> pkcs11.Token:
    try:
        if ref.label is not None:
            return module.library.get_token(token_label=ref.label)
        slots = module.library.get_slots(token_present=True)
        return next(slot.get_token() for slot in slots if slot.slot_id == ref.slot)
    except (NoSuchToken, StopIteration):
        raise HsmError("token_missing", f"{ref} is not there") from None
    except PKCS11Error as exc:
        raise HsmError("device", f"cannot list the tokens of {ref.module}: {type(exc).__name__} {exc}") from None


def _open_session(ref: TokenRef, module: _Module, pin: str) -> tuple[pkcs11.Session, int]:
    token = _token(ref, module)
    slot_id = token.slot.slot_id
    digest = hashlib.sha256(pin.encode()).digest()
    login = module.logins.get(slot_id)
    try:
        if login is None:
            session = token.open(rw=True, user_pin=pin)
            login = module.logins[slot_id] = _Login(digest)
        elif hmac.compare_digest(login.pin_digest, digest):
            session = token.open(rw=True)
        else:
            raise PinIncorrect()
    except (PinIncorrect, PinLenRange):
        raise HsmError("pin_incorrect", f"the PIN is not the user PIN of {ref}") from None
    except PinLocked:
        raise HsmError("pin_locked", f"the user PIN of {ref} is locked (too many wrong PINs)") from None
    except UserAlreadyLoggedIn:
        raise HsmError("device", f"another application of this process is logged in to {ref}") from None
    except PKCS11Error as exc:
        raise HsmError("device", f"cannot open a session on {ref}: {type(exc).__name__} {exc}") from None
    login.sessions += 1
    return session, slot_id


class HsmToken:
    """An open, logged-in session on one token. Every method runs in the module's worker thread."""

    def __init__(self, ref: TokenRef, module: _Module, session: pkcs11.Session, slot_id: int) -> None:
        self.ref = ref
        self._module = module
        self._session: pkcs11.Session | None = session
        self._slot_id = slot_id
        self._keys: dict[str, pkcs11.SecretKey] = {}

    async def create_aes_key(self, label: str) -> None:
        """A new AES-256 key stored in the token under ``label``, sensitive and not extractable; HsmError
        ``key_exists`` when the token holds a key of that label already."""
        await self._run(lambda: self._create(label), f"make the key {label!r}")

    async def has_key(self, label: str) -> bool:
        return await self._run(lambda: self._find(label) is not None, f"find the key {label!r}")

    async def encrypt(self, label: str, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        """``IV | ciphertext | tag``: AES-GCM inside the token under key ``label``, with a fresh random IV."""
        iv = os.urandom(IV_BYTES)

        def encrypt() -> bytes:
            params = GCMParams(iv, associated_data or None)
            key = cast(EncryptMixin, self._key(label))
            return iv + cast(bytes, key.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params))

        return await self._run(encrypt, f"encrypt under the key {label!r}")

    async def decrypt(self, label: str, sealed: bytes, associated_data: bytes = b"") -> bytes:
        """What :meth:`encrypt` sealed; HsmError ``ciphertext`` when it does not open (another key, other associated
        data, tampered: SoftHSM2 answers a bad tag with CKR_GENERAL_ERROR, so every refusal of the token counts)."""

        def decrypt() -> bytes:
            key = cast(DecryptMixin, self._key(label))
            if len(sealed) < IV_BYTES + TAG_BYTES:
                raise HsmError("ciphertext", f"{len(sealed)} bytes are not an AES-GCM ciphertext of the key {label!r}")
            params = GCMParams(sealed[:IV_BYTES], associated_data or None)
            try:
                opened = key.decrypt(sealed[IV_BYTES:], mechanism=Mechanism.AES_GCM, mechanism_param=params)
            except PKCS11Error as exc:
                raise HsmError(
                    "ciphertext", f"the ciphertext does not open under the key {label!r} ({type(exc).__name__})"
                ) from None
            return cast(bytes, opened)

        return await self._run(decrypt, f"decrypt under the key {label!r}")

    async def random(self, size: int) -> bytes:
        """``size`` random bytes from the token's generator (C_GenerateRandom)."""
        return await self._run(lambda: self._opened().generate_random(size * 8), "generate random bytes")

    async def destroy_key(self, label: str) -> None:
        """Destroys the key ``label`` in the token for good; HsmError ``key_missing`` when there is none."""

        def destroy() -> None:
            self._key(label).destroy()
            del self._keys[label]

        await self._run(destroy, f"destroy the key {label!r}")

    async def close(self) -> None:
        """Closes the session (the last one of the token logs the process out); closing twice does nothing."""
        await self._module.run(self._close)

    # --- in the worker thread -----------------------------------------------------------------------------------------

    def _run_checked(self, call: Callable[[], _T], doing: str) -> _T:
        if self._session is None:
            raise HsmError("not_opened", f"cannot {doing}: the session on {self.ref} is closed")
        try:
            return call()
        except HsmError:
            raise
        except PKCS11Error as exc:
            raise HsmError("device", f"{self.ref} failed to {doing}: {type(exc).__name__} {exc}".rstrip()) from None

    async def _run(self, call: Callable[[], _T], doing: str) -> _T:
        return await self._module.run(lambda: self._run_checked(call, doing))

    def _opened(self) -> pkcs11.Session:
        assert self._session is not None  # _run_checked refuses a closed session first
        return self._session

    def _find(self, label: str) -> pkcs11.SecretKey | None:
        session = self._opened()
        if label not in self._keys:
            try:
                key = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=label)
            except NoSuchKey:
                return None
            assert isinstance(key, pkcs11.SecretKey)
            self._keys[label] = key
        return self._keys[label]

    def _key(self, label: str) -> pkcs11.SecretKey:
        key = self._find(label)
        if key is None:
            raise HsmError("key_missing", f"{self.ref} holds no AES key labelled {label!r}")
        return key

    def _create(self, label: str) -> None:
        if self._find(label) is not None:
            raise HsmError("key_exists", f"{self.ref} holds an AES key labelled {label!r} already")
        template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True}
        self._keys[label] = self._opened().generate_key(
            KeyType.AES, AES_KEY_BITS, label=label, store=True, template=template
        )

    def _close(self) -> None:
        if self._session is None:
            return
        session, self._session = self._session, None
        self._keys.clear()
        login = self._module.logins[self._slot_id]
        login.sessions -= 1
        if login.sessions == 0:
            del self._module.logins[self._slot_id]
        try:
            session.close()
        except PKCS11Error as exc:
            raise HsmError("device", f"cannot close the session on {self.ref}: {type(exc).__name__}") from None
