"""The deployment's root key: the one key that wraps every master key's material and seals the service's own secrets.

It lives in one of two places, chosen by the settings (:func:`open_root_key`):

* **a key file** (``SYNCSVC_ROOT_KEY_FILE``, 64 hex characters, ``syncsvc keys root-key PATH`` makes one): the key is
  in this process's memory and AES-256-GCM runs here (``cryptography``);
* **a PKCS#11 token** (``SYNCSVC_ROOT_KEY_PKCS11``, an RFC 7512 URI naming the module, the token, the key's label and
  where the PIN is, see :class:`Pkcs11Location`): an AES-256 key made inside the token, sensitive and not extractable
  (``syncsvc keys root-key pkcs11:…`` makes it), and every seal and open is an AES-GCM call *inside* the token
  (``syncsvc.kms.hsm``: one worker thread per module), so the key never exists in this process as bytes. It costs one
  token round trip per master-key unwrap; the envelope's data-key cache keeps that off the common path.

Both seal alike: ``nonce (12) | AES-256-GCM ciphertext | tag (16)``, with associated data that binds each blob to what
it holds — a master key's id and backing-key version, or a secret's name — so a blob cannot be moved to another key,
version or secret. Code above this module cannot tell where the key is, and ``syncsvc keys rotate-root`` moves blobs
between any two root keys (file to file, file to token, token to token).

While the root key is rotated a :class:`RootKey` also holds the previous key: what is stored opens under either, and
what is sealed anew uses the current one.

**Check value.** Redis records a value that names the deployment's root key, so a server started with another key
refuses to start instead of half-working. A key file's is an HMAC-SHA256 of a fixed label under the key (32 hex
characters, as every release has recorded it). A key in a token cannot compute an HMAC we could compare without
its bytes, so its check value is the fixed label *sealed* by the token (``sealed:`` and hex): it differs at each
call, and a key matches a recorded one when the token opens it back to the label.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from syncsvc.kms import hsm
from syncsvc.kms.hsm import HsmError, HsmToken, TokenRef
from syncsvc.kms.material import MaterialError

ROOT_KEY_BYTES = 32
#: Fewer distinct bytes than this in a root key file means it was not drawn at random (all zeros, a repeated pattern):
#: 32 random bytes have about 30 distinct values, and fewer than 16 about once in 10**15 draws.
_MIN_DISTINCT_BYTES = 16
_NONCE = 12
_CHECK_LABEL = b"syncsvc root key check value"
_SEALED_CHECK = "sealed:"
PKCS11_SCHEME = "pkcs11:"

log = logging.getLogger(__name__)


class RootKeyError(Exception):
    """A root key that cannot be read or opened (the message says which and why, never a PIN or key byte)."""


class _Key(Protocol):
    """One root key, wherever it is: seals and opens with associated data, and names itself."""

    async def seal(self, plaintext: bytes, context: bytes) -> bytes: ...

    async def open(self, sealed: bytes, context: bytes) -> bytes | None:
        """The plaintext, or None when ``sealed`` was not sealed by this key with this context."""
        ...

    async def check_value(self) -> str: ...

    async def matches(self, recorded: str) -> bool:
        """Whether ``recorded`` is a check value of this key."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FileKey:
    """A root key read from a key file: its 32 bytes, in this process's memory."""

    key: bytes = field(repr=False)
    path: Path | None = None

    @classmethod
    def read(cls, path: Path) -> FileKey:
        """Reads a root key file: 64 hex characters (what ``syncsvc keys root-key PATH`` writes); ValueError when it
        does not hold a random 32-byte key."""
        text = path.read_text(encoding="ascii").strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"{path} must hold {ROOT_KEY_BYTES * 2} hex characters") from None
        if len(key) != ROOT_KEY_BYTES:
            raise ValueError(f"{path} must hold {ROOT_KEY_BYTES * 2} hex characters, not {len(text)}")
        if len(set(key)) < _MIN_DISTINCT_BYTES:
            raise ValueError(
                f"{path} does not hold a random key ({len(set(key))} distinct bytes of {ROOT_KEY_BYTES}); "
                f"create one with `syncsvc keys root-key PATH`"
            )
        return cls(key, path)

    @staticmethod
    def generate(path: Path) -> None:
        """Writes a new root key file, readable by its owner only; refuses to overwrite one."""
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(os.urandom(ROOT_KEY_BYTES).hex() + "\n")

    def __str__(self) -> str:
        return f"the root key file {self.path}" if self.path else "a root key"

    async def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(self.key).encrypt(nonce, plaintext, context)

    async def open(self, sealed: bytes, context: bytes) -> bytes | None:
        with contextlib.suppress(InvalidTag, ValueError):
            return AESGCM(self.key).decrypt(sealed[:_NONCE], sealed[_NONCE:], context)
        return None

    async def check_value(self) -> str:
        return hmac.new(self.key, _CHECK_LABEL, hashlib.sha256).hexdigest()[:32]

    async def matches(self, recorded: str) -> bool:
        return hmac.compare_digest(recorded, await self.check_value())

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Pkcs11Location:
    """Where a root key in a PKCS#11 token is, from an RFC 7512 URI::

        pkcs11:token=LABEL;object=KEY-LABEL?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/pin

    ``token`` (or ``slot-id``) names the token and ``object`` the AES key's label; ``module-path`` the PKCS#11
    module (default: ``SYNCSVC_PKCS11_MODULE``); the user PIN comes from ``pin-source`` (a file, read at start, its
    content stripped) or ``pin-value``. ``type=secret-key`` may be given; any other attribute is refused rather than
    ignored. Values are percent-decoded."""

    token: TokenRef
    label: str
    pin: str = field(repr=False)

    @classmethod
    def parse(cls, uri: str, *, default_module: str | None) -> Pkcs11Location:
        """The location ``uri`` names; RootKeyError (saying what is wrong, never the PIN) when it is not one."""
        if not uri.startswith(PKCS11_SCHEME):
            raise RootKeyError(f"a PKCS#11 root key is a URI that starts with {PKCS11_SCHEME!r} (RFC 7512)")
        path, _, query = uri[len(PKCS11_SCHEME) :].partition("?")
        attributes = dict(_attributes(path, ";"))
        options = dict(_attributes(query, "&"))
        unknown = (attributes.keys() - {"token", "object", "slot-id", "type"}) | (
            options.keys() - {"module-path", "pin-source", "pin-value"}
        )
        if unknown:
            raise RootKeyError(f"the PKCS#11 root key URI has attributes syncsvc does not know: {sorted(unknown)}")
        if attributes.get("type", "secret-key") != "secret-key":
            raise RootKeyError("the PKCS#11 root key URI must name a secret key (type=secret-key) or no type")
        module = options.get("module-path") or default_module
        if not module:
            raise RootKeyError("the PKCS#11 root key URI names no module-path (nor is SYNCSVC_PKCS11_MODULE set)")
        label = attributes.get("object")
        if not label:
            raise RootKeyError("the PKCS#11 root key URI names no key (object=LABEL)")
        return cls(_token_ref(module, attributes), label, _pin(options))

    def __str__(self) -> str:
        return f"the root key {self.label!r} in {self.token}"


def _attributes(text: str, separator: str) -> Iterator[tuple[str, str]]:
    for part in filter(None, text.split(separator)):
        name, equals, value = part.partition("=")
        if not equals:
            raise RootKeyError(f"the PKCS#11 root key URI has an attribute without a value: {unquote(name)!r}")
        yield unquote(name), unquote(value)


def _token_ref(module: str, attributes: dict[str, str]) -> TokenRef:
    if "token" in attributes:
        return TokenRef(module, label=attributes["token"])
    try:
        return TokenRef(module, slot=int(attributes["slot-id"]))
    except KeyError:
        raise RootKeyError("the PKCS#11 root key URI names no token (token=LABEL or slot-id=N)") from None
    except ValueError:
        raise RootKeyError("the PKCS#11 root key URI's slot-id is not a number") from None


def _pin(options: dict[str, str]) -> str:
    if "pin-value" in options:
        return options["pin-value"]
    source = options.get("pin-source")
    if source is None:
        raise RootKeyError("the PKCS#11 root key URI says where its PIN is in neither pin-source nor pin-value")
    path = Path(source.removeprefix("file:"))
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RootKeyError(f"cannot read the root key's PIN from {path}: {exc.strerror}") from None


class TokenKey:
    """A root key inside a PKCS#11 token: every seal and open runs in the token (see the module)."""

    def __init__(self, location: Pkcs11Location, token: HsmToken) -> None:
        self.location = location
        self._token = token

    @classmethod
    async def connect(cls, location: Pkcs11Location, *, create: bool = False) -> TokenKey:
        """A session on the key's token; RootKeyError when the token cannot be opened or holds no such key (with
        ``create``: the key is made when the token holds none)."""
        try:
            token = await hsm.open_token(location.token, location.pin)
        except HsmError as exc:
            raise RootKeyError(f"cannot open {location.token} for the root key: {exc}") from None
        try:
            if not await token.has_key(location.label):
                if not create:
                    raise RootKeyError(
                        f"{location.token} holds no AES key labelled {location.label!r}: create it with "
                        f"`syncsvc keys root-key '<the same URI>'`"
                    )
                await token.create_aes_key(location.label)
        except BaseException:
            await token.close()
            raise
        return cls(location, token)

    def __str__(self) -> str:
        return str(self.location)

    async def seal(self, plaintext: bytes, context: bytes) -> bytes:
        return await self._token.encrypt(self.location.label, plaintext, context)

    async def open(self, sealed: bytes, context: bytes) -> bytes | None:
        try:
            return await self._token.decrypt(self.location.label, sealed, context)
        except HsmError as exc:
            if exc.reason != "ciphertext":
                raise
            return None

    async def check_value(self) -> str:
        return _SEALED_CHECK + (await self.seal(_CHECK_LABEL, _CHECK_LABEL)).hex()

    async def matches(self, recorded: str) -> bool:
        if not recorded.startswith(_SEALED_CHECK):
            return False
        try:
            sealed = bytes.fromhex(recorded[len(_SEALED_CHECK) :])
        except ValueError:
            return False
        opened = await self.open(sealed, _CHECK_LABEL)
        return opened is not None and hmac.compare_digest(opened, _CHECK_LABEL)

    async def close(self) -> None:
        await self._token.close()


@dataclass(frozen=True, slots=True)
class RootKey:
    """The deployment's root key (``current``), and while it is rotated the ``previous`` one: what is stored opens
    under either, whatever is wrapped or sealed anew uses ``current`` (``syncsvc keys rotate-root`` moves the rest)."""

    current: _Key
    previous: _Key | None = None

    @classmethod
    def from_file(cls, path: Path) -> RootKey:
        return cls(FileKey.read(path))

    def replacing(self, previous: RootKey) -> RootKey:
        """This key, accepting what ``previous`` wrapped too (a root key rotation in progress)."""
        return RootKey(self.current, previous.current)

    def __str__(self) -> str:
        return str(self.current)

    async def check_value(self) -> str:
        """Names the current key without revealing it (see the module); Redis records it on the first start."""
        return await self.current.check_value()

    async def matches(self, recorded: str) -> bool:
        """Whether ``recorded`` names the current or the previous key."""
        return any([await key.matches(recorded) for key in self._keys()])

    async def seal_secret(self, name: str, secret: bytes) -> bytes:
        """A service secret (e.g. the token secret) as Redis stores it, bound to its name."""
        return await self.current.seal(secret, _secret_context(name))

    async def open_secret(self, name: str, sealed: bytes) -> bytes:
        opened = await self._open(sealed, _secret_context(name))
        if opened is None:
            raise MaterialError(f"the {name} secret does not open with this root key")
        return opened

    async def resealed_secret(self, name: str, sealed: bytes) -> bytes | None:
        """``sealed`` sealed by this key instead of the previous one; None when this key sealed it already."""
        return await self._moved(sealed, _secret_context(name), f"the {name} secret")

    async def wrap(self, material: bytes, key_id: str, version: int) -> bytes:
        return await self.current.seal(material, _wrap_context(key_id, version))

    async def unwrap(self, wrapped: bytes, key_id: str, version: int) -> bytes:
        opened = await self._open(wrapped, _wrap_context(key_id, version))
        if opened is None:
            raise MaterialError(f"key {key_id} version {version} does not unwrap with this root key")
        return opened

    async def rewrapped(self, wrapped: bytes, key_id: str, version: int) -> bytes | None:
        """``wrapped`` wrapped by this key instead of the previous one; None when this key wrapped it already."""
        return await self._moved(wrapped, _wrap_context(key_id, version), f"key {key_id} version {version}")

    async def close(self) -> None:
        """Closes the token sessions of keys in a token (a key file has none)."""
        for key in self._keys():
            await key.close()

    def _keys(self) -> tuple[_Key, ...]:
        return (self.current,) if self.previous is None else (self.current, self.previous)

    async def _open(self, sealed: bytes, context: bytes) -> bytes | None:
        """Opened under the current key, else under the previous one; None under neither."""
        for key in self._keys():
            opened = await key.open(sealed, context)
            if opened is not None:
                return opened
        return None

    async def _moved(self, sealed: bytes, context: bytes, what: str) -> bytes | None:
        if await self.current.open(sealed, context) is not None:
            return None
        opened = await self._open(sealed, context)
        if opened is None:
            raise MaterialError(f"{what} opens under neither root key")
        return await self.current.seal(opened, context)


async def open_root_key(where: str, *, default_module: str | None = None, create: bool = False) -> RootKey:
    """The root key in the file at the path ``where``, or in the PKCS#11 token a ``pkcs11:`` URI names; RootKeyError
    (one line) when it cannot be read or opened. ``create``: a key file is written, a token key made, when there is
    none."""
    if where.startswith(PKCS11_SCHEME):
        location = await asyncio.to_thread(Pkcs11Location.parse, where, default_module=default_module)
        return RootKey(await TokenKey.connect(location, create=create))
    return RootKey(await asyncio.to_thread(_file_key, Path(where), create))


def _file_key(path: Path, create: bool) -> FileKey:
    try:
        if create and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            FileKey.generate(path)
        key = FileKey.read(path)
        mode = path.stat().st_mode
    except (OSError, ValueError) as exc:
        raise RootKeyError(f"cannot read the KMS root key: {exc}") from None
    if mode & 0o077:
        log.warning(
            "the root key file %s can be read by others than its owner (mode %s): chmod 600 it", path, oct(mode & 0o777)
        )
    return key


def _wrap_context(key_id: str, version: int) -> bytes:
    return f"syncsvc-kms-material\0{key_id}\0{version}".encode()


def _secret_context(name: str) -> bytes:
    return f"syncsvc-secret\0{name}".encode()
