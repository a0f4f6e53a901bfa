"""The server half of Cognito's SRP-6a (USER_SRP_AUTH → PASSWORD_VERIFIER), as pure functions: no I/O, no clock.

Cognito's variant, byte for byte as its clients compute it (pycognito ``aws_srp.py``, amplify-js
``utils/srp/*``): the 3072-bit group of RFC 5054 with g = 2 and SHA-256, where

* ``PAD(n)`` is the shortest big-endian two's-complement encoding of a non-negative integer: its minimal bytes, with a
  leading 00 when the top bit is set (Java's ``BigInteger.toByteArray``; the clients' ``padHex``). Every hash of an
  integer hashes these bytes (the clients hash the bytes a hex string spells, never the hex text);
* ``k = H(PAD(N) | PAD(g))``, ``u = H(PAD(A) | PAD(B))``;
* ``x = H(PAD(salt) | H(poolName | userIdForSrp | ":" | password))``, ``poolName`` the part of the pool id after
  "_", the inner hash over the UTF-8 text; the salt enters as the *integer* the client parsed from SALT, so a salt with
  leading zero bytes hashes without them. SALT is sent as ``PAD(salt)`` in hex so that the clients that pad the hex
  text (pycognito) and those that pad the parsed integer (amplify-js) agree;
* ``S = (A · v^u)^b mod N`` on this side (the client's ``(B - k·g^x)^(a + u·x)``), and the password authentication key
  is HKDF-SHA256 with salt ``PAD(u)``, input ``PAD(S)``, info "Caldera Derived Key", 16 bytes;
* PASSWORD_CLAIM_SIGNATURE = base64(HMAC-SHA256(key, poolName | userIdForSrp | secretBlock | timestamp)), with the
  SECRET_BLOCK's raw bytes and the TIMESTAMP's text, formatted "%a %b %-d %H:%M:%S UTC %Y" in UTC and English.

:func:`make_verifier` turns a password into (salt, verifier); :func:`start` answers InitiateAuth's SRP_A with the
challenge parameters and a :class:`ServerState` to keep (sealed) until :func:`check` verifies the client's claim.
Whether the TIMESTAMP is recent is the caller's rule (it has the clock): :func:`parse_timestamp` reads it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: RFC 5054 appendix A, the 3072-bit group (also RFC 3526's group 15); the modulus Cognito and its clients use.
N = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
G = 2
#: Bytes of N: the fixed width of a verifier.
N_BYTES = (N.bit_length() + 7) // 8

SALT_BYTES = 16
#: Bits of the server's ephemeral secret b: short exponents are safe in this safe-prime group (the best attack costs
#: 2^(bits/2)) and keep an unauthenticated InitiateAuth cheap.
SECRET_BITS = 512
SECRET_BLOCK_BYTES = 64
#: The longest SRP_A accepted, in hex digits: A < N takes 768; room for clients that pad.
MAX_SRP_A_DIGITS = 1024

_HKDF_INFO = b"Caldera Derived Key\x01"
_KEY_BYTES = 16
_STATE_VERSION = 1
_HEX = re.compile(r"[0-9a-fA-F]+")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TIMESTAMP = re.compile(
    rf"(?P<weekday>{'|'.join(_WEEKDAYS)}) (?P<month>{'|'.join(_MONTHS)}) (?P<day>[1-9]|[12][0-9]|3[01]) "
    r"(?P<hour>[01][0-9]|2[0-3]):(?P<minute>[0-5][0-9]):(?P<second>[0-5][0-9]) UTC (?P<year>[0-9]{4})"
)


class SrpError(ValueError):
    """An SRP input that cannot start (or resume) an exchange: a malformed or degenerate SRP_A, a pool id without
    "_", text that is not UTF-8-encodable, a state that does not parse."""


def _pad(value: int) -> bytes:
    """PAD(value): minimal big-endian bytes of a non-negative integer, with a leading 00 when the top bit is set."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def _hash(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _number(digest: bytes) -> int:
    return int.from_bytes(digest, "big")


K = _number(_hash(_pad(N), _pad(G)))


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise SrpError("text is not encodable as UTF-8") from exc


def pool_name(pool_id: str) -> str:
    """The part of a user pool id after "_" (``us-east-1_AbC123xyz`` → ``AbC123xyz``), as Cognito hashes it."""
    _, sep, name = pool_id.partition("_")
    if not sep or not name:
        raise SrpError(f"user pool id {pool_id!r} has no name after '_'")
    return name


def _private_key(pool_id: str, user_id: str, password: str, salt: bytes) -> int:
    """x = H(PAD(salt) | H(poolName | userIdForSrp | ":" | password))."""
    identity = _hash(_utf8(f"{pool_name(pool_id)}{user_id}:{password}"))
    return _number(_hash(_pad(int.from_bytes(salt, "big")), identity))


def compute_verifier(pool_id: str, user_id: str, password: str, salt: bytes) -> bytes:
    """The verifier g^x mod N of ``password`` under ``salt``, big-endian in :data:`N_BYTES` bytes.

    ``user_id`` is the name the challenge sends as USER_ID_FOR_SRP (the user's internal username)."""
    return pow(G, _private_key(pool_id, user_id, password, salt), N).to_bytes(N_BYTES, "big")


def make_verifier(pool_id: str, username: str, password: str) -> tuple[bytes, bytes]:
    """A fresh random salt (16 bytes) and the verifier of ``password`` under it (see :func:`compute_verifier`).

    Raises :class:`SrpError` for a pool id without "_" or text with a lone surrogate."""
    salt = secrets.token_bytes(SALT_BYTES)
    return salt, compute_verifier(pool_id, username, password, salt)


@dataclass(frozen=True)
class ServerState:
    """What the server keeps between the challenge and the client's claim. Holds secrets (b, the verifier): keep it
    sealed (the InitiateAuth Session or an encrypted store), never show it."""

    pool_id: str
    #: USER_ID_FOR_SRP, also sent as USERNAME: the name the verifier was made for.
    user_id: str
    client_public: int  # A
    server_public: int  # B
    server_secret: int = field(repr=False)  # b
    verifier: bytes = field(repr=False)
    secret_block: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        """Version byte, then each field as a 2-byte big-endian length and its bytes (text UTF-8, integers PAD)."""
        fields = (
            _utf8(self.pool_id),
            _utf8(self.user_id),
            _pad(self.client_public),
            _pad(self.server_public),
            _pad(self.server_secret),
            self.verifier,
            self.secret_block,
        )
        return bytes([_STATE_VERSION]) + b"".join(struct.pack(">H", len(f)) + f for f in fields)

    @classmethod
    def from_bytes(cls, raw: bytes) -> ServerState:
        """The state :meth:`to_bytes` wrote; :class:`SrpError` for anything else."""
        if not raw or raw[0] != _STATE_VERSION:
            raise SrpError("not an SRP server state of a known version")
        fields: list[bytes] = []
        at = 1
        while at < len(raw):
            if at + 2 > len(raw):
                raise SrpError("SRP server state is truncated")
            (size,) = struct.unpack_from(">H", raw, at)
            fields.append(raw[at + 2 : at + 2 + size])
            at += 2 + size
        if at != len(raw) or len(fields) != 7:
            raise SrpError("SRP server state is truncated or has extra fields")
        pool_id, user_id, a, b_public, b_secret, verifier, secret_block = fields
        try:
            state = cls(
                pool_id=pool_id.decode("utf-8"),
                user_id=user_id.decode("utf-8"),
                client_public=int.from_bytes(a, "big"),
                server_public=int.from_bytes(b_public, "big"),
                server_secret=int.from_bytes(b_secret, "big"),
                verifier=verifier,
                secret_block=secret_block,
            )
        except UnicodeDecodeError as exc:
            raise SrpError("SRP server state holds text that is not UTF-8") from exc
        if not (0 < state.client_public < N and 0 < state.server_public < N and state.server_secret > 0):
            raise SrpError("SRP server state holds a value outside the group")
        pool_name(state.pool_id)
        return state


def _client_public(srp_a: str) -> int:
    if len(srp_a) > MAX_SRP_A_DIGITS or not _HEX.fullmatch(srp_a):
        raise SrpError("SRP_A must be a hexadecimal number")
    value = int(srp_a, 16)
    if not 0 < value < N:  # A ≡ 0 mod N would let anyone sign in; no honest client sends A ≥ N
        raise SrpError("SRP_A must lie between 1 and N - 1")
    return value


def _scrambler(client_public: int, server_public: int) -> int:
    """u = H(PAD(A) | PAD(B))."""
    return _number(_hash(_pad(client_public), _pad(server_public)))


def start(pool_id: str, username: str, salt: bytes, verifier: bytes, srp_a: str) -> tuple[ServerState, dict[str, str]]:
    """The PASSWORD_VERIFIER challenge for a client's SRP_A: the state to keep and the ChallengeParameters
    (SALT and SRP_B in hex, SECRET_BLOCK in base64, USER_ID_FOR_SRP and USERNAME both ``username``).

    ``username`` is the internal username the verifier was made for. Raises :class:`SrpError` for an SRP_A that is
    not hex or is ≡ 0 mod N (or ≥ N), or a pool id without "_"; ``ValueError`` for a verifier outside 1..N-1 (a
    storage fault, not the client's)."""
    pool_name(pool_id)
    _utf8(username)
    client_public = _client_public(srp_a)
    v = int.from_bytes(verifier, "big")
    if not 0 < v < N:
        raise ValueError("stored SRP verifier lies outside the group")
    while True:  # B ≡ 0 or u = 0 would fail the client's checks; each has probability ~2^-256
        server_secret = secrets.randbelow(2**SECRET_BITS - 1) + 1
        server_public = (K * v + pow(G, server_secret, N)) % N
        if server_public != 0 and _scrambler(client_public, server_public) != 0:
            break
    state = ServerState(
        pool_id=pool_id,
        user_id=username,
        client_public=client_public,
        server_public=server_public,
        server_secret=server_secret,
        verifier=verifier,
        secret_block=secrets.token_bytes(SECRET_BLOCK_BYTES),
    )
    parameters = {
        "SALT": _pad(int.from_bytes(salt, "big")).hex(),
        "SRP_B": format(server_public, "x"),
        "SECRET_BLOCK": base64.b64encode(state.secret_block).decode("ascii"),
        "USER_ID_FOR_SRP": username,
        "USERNAME": username,
    }
    return state, parameters


def _authentication_key(state: ServerState) -> bytes:
    """HKDF-SHA256(salt = PAD(u), input = PAD(S), info = "Caldera Derived Key"), first 16 bytes."""
    u = _scrambler(state.client_public, state.server_public)
    v = int.from_bytes(state.verifier, "big")
    premaster = pow(state.client_public * pow(v, u, N) % N, state.server_secret, N)
    pseudo_random_key = hmac.digest(_pad(u), _pad(premaster), "sha256")
    return hmac.digest(pseudo_random_key, _HKDF_INFO, "sha256")[:_KEY_BYTES]


def _decode_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        return None


def check(state: ServerState, username: str, timestamp: str, secret_block: str, signature: str) -> bool:
    """Whether the client's PASSWORD_CLAIM_SIGNATURE proves the password: the signature, the secret block (the one
    :func:`start` issued) and the username (USERNAME of the challenge) all match, compared in constant time. A
    timestamp not in Cognito's format is refused; its age is the caller's to judge. Never raises on what the client
    sent."""
    claimed_block = _decode_base64(secret_block)
    claimed_signature = _decode_base64(signature)
    if claimed_block is None or claimed_signature is None or parse_timestamp(timestamp) is None:
        return False
    try:
        claimed_user = _utf8(username)
    except SrpError:
        return False
    key = _authentication_key(state)
    message = _utf8(pool_name(state.pool_id)) + _utf8(state.user_id) + state.secret_block + timestamp.encode("ascii")
    expected = hmac.digest(key, message, "sha256")
    signature_ok = hmac.compare_digest(expected, claimed_signature)
    block_ok = hmac.compare_digest(state.secret_block, claimed_block)
    user_ok = hmac.compare_digest(_utf8(state.user_id), claimed_user)
    return signature_ok & block_ok & user_ok


def format_timestamp(moment: datetime) -> str:
    """``moment`` (aware, or naive meaning UTC) as Cognito's clients write TIMESTAMP: "Tue Mar 5 09:04:01 UTC 2024"."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return (
        f"{_WEEKDAYS[moment.weekday()]} {_MONTHS[moment.month - 1]} {moment.day} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} UTC {moment.year}"
    )


def parse_timestamp(text: str) -> datetime | None:
    """The UTC instant a TIMESTAMP names, or None unless it is exactly :func:`format_timestamp`'s shape (English
    names, unpadded day, the weekday of that date)."""
    found = _TIMESTAMP.fullmatch(text)
    if found is None:
        return None
    try:
        moment = datetime(
            int(found["year"]),
            _MONTHS.index(found["month"]) + 1,
            int(found["day"]),
            int(found["hour"]),
            int(found["minute"]),
            int(found["second"]),
            tzinfo=UTC,
        )
    except ValueError:  # 30 Feb, year 0
        return None
    return moment if _WEEKDAYS[moment.weekday()] == found["weekday"] else None
