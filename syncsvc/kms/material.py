"""Key material and ciphertext formats, as pure functions over ``cryptography`` (no I/O, no Redis).

* Master key material is never stored or returned unwrapped: the **root key** (``syncsvc.kms.root``, in a file or
  in a PKCS#11 token) wraps it before it is stored, bound to its key id and backing-key version.
* A **ciphertext blob** of a symmetric master key names its key and backing-key version, so Decrypt needs no KeyId
  and rotation keeps old blobs readable (a key in an HSM, ``syncsvc.kms.hsm_keys``, makes the same blobs, its AES-GCM
  run inside the token with the same associated data)::

      b"sk1" | key id (36 ASCII) | version (4 bytes, big-endian) | nonce (12) | AES-256-GCM ciphertext and tag

  The associated data is the key id, the version and the canonical encryption context (sorted JSON), so a blob
  decrypts only under the same context (KMS's rule) and cannot be re-labelled.
* An **asymmetric** master key's material is its private key (DER PKCS#8), wrapped the same way; its ciphertexts
  (RSAES-OAEP) and signatures are KMS's own formats, with no header, so Decrypt needs the KeyId.
* An **HMAC** master key's material is its secret key (as many random bytes as its KeySpec's bits), wrapped the same
  way; its MACs are RFC 2104 HMACs, as KMS's GenerateMac answers them.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

MATERIAL_BYTES = 32
_NONCE = 12
_BLOB_MAGIC = b"sk1"
_KEY_ID_BYTES = 36
_HEADER = len(_BLOB_MAGIC) + _KEY_ID_BYTES + 4


class MaterialError(Exception):
    """A blob that is not ours, was tampered with, or does not match its context or key."""


def new_material() -> bytes:
    return os.urandom(MATERIAL_BYTES)


def canonical_context(context: Mapping[str, str] | None) -> bytes:
    """An encryption context as associated data: sorted JSON (the order of a map does not matter)."""
    return orjson.dumps(dict(context or {}), option=orjson.OPT_SORT_KEYS)


def seal(material: bytes, key_id: str, version: int, plaintext: bytes, context: Mapping[str, str] | None) -> bytes:
    """A ciphertext blob of ``plaintext`` under one backing key of a symmetric master key."""
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(material).encrypt(nonce, plaintext, blob_associated_data(key_id, version, context))
    return assemble_blob(key_id, version, nonce + sealed)


def _blob_prefix(key_id: str, version: int) -> bytes:
    if len(key_id) != _KEY_ID_BYTES:
        raise ValueError("a key id is a 36-character UUID")
    return _BLOB_MAGIC + key_id.encode("ascii") + struct.pack(">I", version)


def blob_associated_data(key_id: str, version: int, context: Mapping[str, str] | None) -> bytes:
    """The associated data of a blob's AES-GCM: its header (key id, version) and the canonical encryption context.
    For a key whose AES-GCM runs elsewhere (an HSM), with :func:`assemble_blob` and :func:`blob_sealed`: the blob's
    format is the same, and no key bytes pass through here."""
    return _blob_prefix(key_id, version) + canonical_context(context)


def assemble_blob(key_id: str, version: int, sealed: bytes) -> bytes:
    """A blob from its key id, version and ``nonce (12) | AES-GCM ciphertext and tag`` (sealed with
    :func:`blob_associated_data`)."""
    return _blob_prefix(key_id, version) + sealed


def blob_sealed(blob: bytes) -> bytes:
    """``nonce | ciphertext and tag`` of a blob (its header already read with :func:`blob_header`)."""
    return blob[_HEADER:]


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


# --- asymmetric keys -------------------------------------------------------------------------------------------------
#
# An asymmetric master key's material is its private key, DER PKCS#8, wrapped by the root key like symmetric material
# (one version: asymmetric keys do not rotate). Its public half is derived from it when asked for.

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_1": hashes.SHA1,
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}


_RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}
#: An HMAC KeySpec's key length in bytes (KMS: HMAC_224 is a 224-bit key, …).
_HMAC_KEY_BYTES = {f"HMAC_{bits}": bits // 8 for bits in (224, 256, 384, 512)}


def new_private_key(spec: str) -> bytes:
    """The secret material of a new key of a KeySpec other than SYMMETRIC_DEFAULT: an RSA or elliptic-curve private
    key (DER PKCS#8), or an HMAC spec's random secret key. RSA_3072 and RSA_4096 take up to seconds: call it in a
    worker thread, not on the event loop."""
    if spec in _HMAC_KEY_BYTES:
        return os.urandom(_HMAC_KEY_BYTES[spec])
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if spec in _RSA_BITS:
        private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[spec])
    elif spec in _CURVES:
        private = ec.generate_private_key(_CURVES[spec]())
    else:
        raise ValueError(f"no material for KeySpec {spec}")
    return private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())


def mac(secret: bytes, algorithm: str, message: bytes) -> bytes:
    """The HMAC (RFC 2104) of ``message`` under an HMAC key's secret, with ``HMAC_SHA_<bits>``'s hash."""
    return hmac.new(secret, message, "sha" + algorithm.rsplit("_", 1)[1]).digest()


def mac_matches(secret: bytes, algorithm: str, message: bytes, given: bytes) -> bool:
    """Whether ``given`` is :func:`mac` of ``message``, compared in constant time."""
    return hmac.compare_digest(mac(secret, algorithm, message), given)


def _private(der: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """The private key of stored material. Without validation of an RSA key's numbers: every private key here was
    made by :func:`new_private_key` and comes out of an authenticated unwrap (AES-GCM under the root key, bound to its
    key id and version), and validating costs ~29 ms of CPU per load (RSA_2048, on the event loop: every Sign, so
    every identity token issued), against 0.004 ms without (cryptography's ``unsafe_skip_rsa_key_validation``)."""
    private = serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise MaterialError("not an RSA or elliptic-curve private key")
    return private


def public_key(private_der: bytes) -> bytes:
    """The public key (DER SubjectPublicKeyInfo, what GetPublicKey answers) of a private key."""
    return _private(private_der).public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def algorithm_hash(algorithm: str) -> hashes.HashAlgorithm:
    """The hash of a signing or encryption algorithm name (``RSASSA_PSS_SHA_256`` -> SHA-256)."""
    return _HASHES["SHA_" + algorithm.rsplit("_", 1)[1]]()


def _signing(algorithm: str, digest: bool) -> tuple[hashes.HashAlgorithm | Prehashed, hashes.HashAlgorithm]:
    chosen = algorithm_hash(algorithm)
    return (Prehashed(chosen) if digest else chosen), chosen


def sign(private_der: bytes, algorithm: str, message: bytes, *, digest: bool) -> bytes:
    """A signature as KMS makes it: RSASSA-PSS (MGF1 with the same hash, salt as long as the digest),
    RSASSA-PKCS1-v1_5, or ECDSA (DER-encoded). ``digest``: ``message`` is the digest already (MessageType DIGEST)."""
    private = _private(private_der)
    prepared, chosen = _signing(algorithm, digest)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(message, ec.ECDSA(prepared))
    return private.sign(message, _rsa_signature_padding(algorithm, chosen), prepared)


def verify(private_der: bytes, algorithm: str, message: bytes, signature: bytes, *, digest: bool) -> bool:
    """Whether ``signature`` is one of ``message`` under the public half of the key (see :func:`sign`)."""
    public = _private(private_der).public_key()
    prepared, chosen = _signing(algorithm, digest)
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(prepared))
        else:
            public.verify(signature, message, _rsa_signature_padding(algorithm, chosen), prepared)
    except InvalidSignature:
        return False
    return True


def _rsa_signature_padding(algorithm: str, chosen: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
    if algorithm.startswith("RSASSA_PSS_"):
        return padding.PSS(mgf=padding.MGF1(chosen), salt_length=chosen.digest_size)
    return padding.PKCS1v15()


def _oaep(algorithm: str) -> padding.OAEP:
    chosen = algorithm_hash(algorithm)
    return padding.OAEP(mgf=padding.MGF1(chosen), algorithm=chosen, label=None)


def oaep_limit(private_der: bytes, algorithm: str) -> int:
    """The longest plaintext RSAES-OAEP takes with this key and hash (RSA_2048: 214 bytes SHA-1, 190 SHA-256)."""
    private = _private(private_der)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise MaterialError("RSAES-OAEP needs an RSA key")
    return private.key_size // 8 - 2 * algorithm_hash(algorithm).digest_size - 2


def rsa_encrypt(private_der: bytes, algorithm: str, plaintext: bytes) -> bytes:
    """RSAES-OAEP (MGF1 with the algorithm's hash, no label) under the public half of the key."""
    private = _private(private_der)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise MaterialError("RSAES-OAEP needs an RSA key")
    return private.public_key().encrypt(plaintext, _oaep(algorithm))


def rsa_decrypt(private_der: bytes, algorithm: str, ciphertext: bytes) -> bytes:
    """The plaintext of an RSAES-OAEP ciphertext; MaterialError when it does not decrypt with this key and hash."""
    private = _private(private_der)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise MaterialError("RSAES-OAEP needs an RSA key")
    try:
        return private.decrypt(ciphertext, _oaep(algorithm))
    except ValueError:
        raise MaterialError("the ciphertext does not decrypt with this key and algorithm") from None
