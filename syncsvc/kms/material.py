"""Key material and ciphertext formats, as pure functions over ``cryptography`` (no I/O, no Redis).

* The **root key** (32 bytes from ``SYNCSVC_ROOT_KEY_FILE``) wraps every master key's material before it is stored:
  AES-256-GCM with the key id and backing-key version as associated data, so a wrapped blob cannot be swapped to
  another key or version. Material is never stored or returned unwrapped.
* A **ciphertext blob** of a symmetric master key names its key and backing-key version, so Decrypt needs no KeyId
  and rotation keeps old blobs readable::

      b"sk1" | key id (36 ASCII) | version (4 bytes, big-endian) | nonce (12) | AES-256-GCM ciphertext and tag

  The associated data is the key id, the version and the canonical encryption context (sorted JSON), so a blob
  decrypts only under the same context (KMS's rule) and cannot be re-labelled.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT_KEY_BYTES = 32
MATERIAL_BYTES = 32
_NONCE = 12
_BLOB_MAGIC = b"sk1"
_KEY_ID_BYTES = 36
_HEADER = len(_BLOB_MAGIC) + _KEY_ID_BYTES + 4


class MaterialError(Exception):
    """A blob that is not ours, was tampered with, or does not match its context or key."""


def new_material() -> bytes:
    return os.urandom(MATERIAL_BYTES)


@dataclass(frozen=True, slots=True)
class RootKey:
    """The deployment's root key: it wraps master key material (see the module docstring)."""

    key: bytes

    @classmethod
    def from_file(cls, path: Path) -> RootKey:
        """Reads a root key file: 64 hex characters (what ``syncsvc keys root-key`` writes)."""
        text = path.read_text(encoding="ascii").strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"{path} must hold {ROOT_KEY_BYTES * 2} hex characters") from None
        if len(key) != ROOT_KEY_BYTES:
            raise ValueError(f"{path} must hold {ROOT_KEY_BYTES * 2} hex characters, not {len(text)}")
        return cls(key)

    @staticmethod
    def generate(path: Path) -> None:
        """Writes a new root key file, readable by its owner only; refuses to overwrite one."""
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(os.urandom(ROOT_KEY_BYTES).hex() + "\n")

    def wrap(self, material: bytes, key_id: str, version: int) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(self.key).encrypt(nonce, material, _wrap_context(key_id, version))

    def unwrap(self, wrapped: bytes, key_id: str, version: int) -> bytes:
        try:
            return AESGCM(self.key).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _wrap_context(key_id, version))
        except InvalidTag:
            raise MaterialError(f"key {key_id} version {version} does not unwrap with this root key") from None


def _wrap_context(key_id: str, version: int) -> bytes:
    return f"syncsvc-kms-material\0{key_id}\0{version}".encode()


def canonical_context(context: Mapping[str, str] | None) -> bytes:
    """An encryption context as associated data: sorted JSON (the order of a map does not matter)."""
    return orjson.dumps(dict(context or {}), option=orjson.OPT_SORT_KEYS)


def seal(material: bytes, key_id: str, version: int, plaintext: bytes, context: Mapping[str, str] | None) -> bytes:
    """A ciphertext blob of ``plaintext`` under one backing key of a symmetric master key."""
    if len(key_id) != _KEY_ID_BYTES:
        raise ValueError("a key id is a 36-character UUID")
    header = _BLOB_MAGIC + key_id.encode("ascii") + struct.pack(">I", version)
    nonce = os.urandom(_NONCE)
    return header + nonce + AESGCM(material).encrypt(nonce, plaintext, header + canonical_context(context))


@dataclass(frozen=True, slots=True)
class BlobHeader:
    key_id: str
    version: int


def blob_header(blob: bytes) -> BlobHeader:
    """Which key and version a blob was sealed with; MaterialError when it is not a blob of ours."""
    if len(blob) < _HEADER + _NONCE + 16 or not blob.startswith(_BLOB_MAGIC):
        raise MaterialError("not a ciphertext of this service")
    key_id = blob[len(_BLOB_MAGIC) : len(_BLOB_MAGIC) + _KEY_ID_BYTES]
    try:
        text = key_id.decode("ascii")
    except UnicodeDecodeError:
        raise MaterialError("not a ciphertext of this service") from None
    (version,) = struct.unpack(">I", blob[_HEADER - 4 : _HEADER])
    return BlobHeader(text, version)


def open_blob(material: bytes, blob: bytes, context: Mapping[str, str] | None) -> bytes:
    """The plaintext of a blob (its header already read with :func:`blob_header`)."""
    header, nonce, sealed = blob[:_HEADER], blob[_HEADER : _HEADER + _NONCE], blob[_HEADER + _NONCE :]
    try:
        return AESGCM(material).decrypt(nonce, sealed, header + canonical_context(context))
    except InvalidTag:
        raise MaterialError("the ciphertext does not match its key or encryption context") from None
