"""KMS's nouns and their rules: a master key's metadata (what DescribeKey answers), its states, and the changes KMS
allows (enable, disable, rotation, deletion) as pure functions of a key and the time. No I/O: ``keystore.py`` loads,
applies one of these rules and stores the result.

State rules (KMS's "key states" table, reduced to the states syncsvc has):

* Enabled: every operation. Disabled: no cryptography (DisabledException) and no rotation changes; describe, enable,
  schedule deletion. PendingDeletion: no cryptography, enable, disable or rotation (KMSInvalidStateException); cancel
  deletion makes the key Disabled.
* PendingImport (an EXTERNAL key without its imported material, ``syncsvc.kms.imports``): no cryptography, enable or
  disable (KMSInvalidStateException); describe, aliases, tags, schedule deletion (cancelling it makes the key
  PendingImport again while it has no material).
* Automatic rotation happens a rotation period after ``rotated_ms``, only while the key is Enabled (a key re-enabled
  after its date rotates at the next sweep, as KMS does).

It is longer than 400 lines because KMS's key-spec tables (which KeySpec takes which KeyUsage and algorithms, and why
syncsvc refuses the others) sit next to the rules that read them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

from syncsvc.errors import (
    InvalidAliasNameError,
    InvalidKeyUsageError,
    KmsConflictError,
    KmsDisabledError,
    KmsInvalidStateError,
    KmsLimitExceededError,
    KmsValidationError,
    NotAuthorizedError,
    UnsupportedOperationError,
)

KeyState = Literal["Enabled", "Disabled", "PendingDeletion", "PendingImport"]
KeyUsage = Literal["ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC"]
#: The account id in ARNs: syncsvc has one tenant per deployment.
ACCOUNT = "000000000000"
DAY_MS = 86_400_000
DEFAULT_ROTATION_DAYS = 365
#: RotateKeyOnDemand may be called this many times per key (KMS's quota).
MAX_ON_DEMAND_ROTATIONS = 25
#: RotateKeyOnDemand is refused (ConflictException) when an automatic rotation is due this soon (KMS: 20 minutes).
ROTATION_CONFLICT_MS = 20 * 60_000
PENDING_WINDOW_DAYS = (7, 30)
DEFAULT_PENDING_WINDOW_DAYS = 30
#: Matched in full (``fullmatch``): ``$`` would also match before a final newline.
_ALIAS_PATTERN = re.compile(r"[a-zA-Z0-9/_-]{1,256}")
#: KMS's enums, each written once: the API's input models take them, the tables below pick from them.
KeySpecName = Literal[
    "SYMMETRIC_DEFAULT",
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "ECC_NIST_EDWARDS25519",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
]
KeyUsageName = Literal[
    "ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", "ENCAPSULATE_DECAPSULATE"
]
EncryptionAlgorithmName = Literal["SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"]
SigningAlgorithmName = Literal[
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "ECDSA_SHA_256",
    "ECDSA_SHA_384",
    "ECDSA_SHA_512",
    "SM2DSA",
    "ML_DSA_SHAKE_256",
    "ED25519_SHA_512",
    "ED25519_PH_SHA_512",
]
MacAlgorithmName = Literal["HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512"]


def _named(names: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    return tuple(name for name in names if name.startswith(prefix))


RSA_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096")
#: The MAC algorithm of each HMAC KeySpec (KMS: one each, of the same size).
MAC_ALGORITHMS: dict[str, tuple[str, ...]] = {
    f"HMAC_{bits}": (f"HMAC_SHA_{bits}",) for bits in ("224", "256", "384", "512")
}
#: The KeySpecs syncsvc makes and the KeyUsages KMS allows each of them (among those syncsvc serves: an ECC_NIST_*
#: key's KEY_AGREEMENT is not, see :data:`REFUSED_USAGES`).
KEY_USAGES: dict[str, tuple[KeyUsage, ...]] = {
    "SYMMETRIC_DEFAULT": ("ENCRYPT_DECRYPT",),
    **{spec: ("ENCRYPT_DECRYPT", "SIGN_VERIFY") for spec in RSA_SPECS},
    **{spec: ("SIGN_VERIFY",) for spec in ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1")},
    **{spec: ("GENERATE_VERIFY_MAC",) for spec in MAC_ALGORITHMS},
}
#: Encryption algorithms of an asymmetric ENCRYPT_DECRYPT key, by KeySpec, as KMS lists them (an RSA key takes
#: every RSAES_OAEP_* algorithm).
ENCRYPTION_ALGORITHMS: dict[str, tuple[str, ...]] = {
    spec: _named(get_args(EncryptionAlgorithmName), "RSAES_OAEP_") for spec in RSA_SPECS
}
#: Signing algorithms of a SIGN_VERIFY key, by KeySpec, as KMS lists them (an RSA key takes every RSASSA_* one, an
#: elliptic-curve key the ECDSA of its curve's size).
SIGNING_ALGORITHMS: dict[str, tuple[str, ...]] = {
    **{spec: _named(get_args(SigningAlgorithmName), "RSASSA_") for spec in RSA_SPECS},
    "ECC_NIST_P256": ("ECDSA_SHA_256",),
    "ECC_NIST_P384": ("ECDSA_SHA_384",),
    "ECC_NIST_P521": ("ECDSA_SHA_512",),
    "ECC_SECG_P256K1": ("ECDSA_SHA_256",),
}
#: KMS's KeySpecs that syncsvc does not make, and why (CreateKey answers UnsupportedOperationException with it).
REFUSED_SPECS: dict[str, str] = {
    "SM2": "KMS offers SM2 keys only in its China Regions, and syncsvc serves none",
    "ECC_NIST_EDWARDS25519": (
        "its ED25519_PH_SHA_512 signing algorithm (Ed25519ph) is not in the cryptography library syncsvc signs with, "
        "and KMS lists it for every such key"
    ),
    **{
        spec: "ML-DSA keys are not served (their ML_DSA_SHAKE_256 signing and EXTERNAL_MU messages are not implemented)"
        for spec in ("ML_DSA_44", "ML_DSA_65", "ML_DSA_87")
    },
    **{
        spec: "ML-KEM keys are not served (syncsvc does not serve Encapsulate and Decapsulate)"
        for spec in ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024")
    },
}
#: KeyUsages KMS allows with some served KeySpec that syncsvc does not serve, and why.
REFUSED_USAGES: dict[str, str] = {
    "KEY_AGREEMENT": "syncsvc does not serve DeriveSharedSecret",
}


def key_arn(region: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"


def alias_arn(region: str, alias: str) -> str:
    return f"arn:aws:kms:{region}:{ACCOUNT}:{alias}"


def check_alias_name(alias: str) -> None:
    """KMS's rules for a new alias name: ``alias/`` prefix, ``[a-zA-Z0-9/_-]`` (CreateAlias refuses the ``:`` that
    the AliasName shape lets through), at most 256 characters, a name after the prefix, and ``alias/aws/`` reserved for
    AWS managed keys."""
    if not alias.startswith("alias/"):
        raise KmsValidationError(
            'Alias must start with the prefix "alias/". Please see '
            "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
        )
    if not _ALIAS_PATTERN.fullmatch(alias):
        raise KmsValidationError(
            f"1 validation error detected: Value '{alias[:300]}' at 'aliasName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9/_-]+$ and have length at most 256"
        )
    if alias == "alias/":
        raise InvalidAliasNameError("Alias name must have at least one character after alias/")
    if alias.startswith("alias/aws/"):
        raise NotAuthorizedError("Cannot create alias with prefix 'alias/aws/': it is reserved for AWS managed keys")


def check_key_spec(spec: str, usage: str) -> KeyUsage:
    """CreateKey's KeySpec and KeyUsage, the usage returned: a spec or usage syncsvc does not serve is
    UnsupportedOperationException (with the reason), a usage KMS does not allow with the spec ValidationException."""
    usages = KEY_USAGES.get(spec)
    if usages is None:
        reason = REFUSED_SPECS.get(spec, "it is not a KMS key spec")
        raise UnsupportedOperationError(f"KeySpec {spec} is not supported: {reason}")
    if usage in REFUSED_USAGES and spec.startswith("ECC_NIST_P"):
        raise UnsupportedOperationError(f"KeyUsage {usage} is not supported: {REFUSED_USAGES[usage]}")
    for allowed in usages:
        if usage == allowed:
            return allowed
    raise KmsValidationError(
        f"KeyUsage {usage} is not compatible with KeySpec {spec}; it takes KeyUsage {' or '.join(usages)}"
    )


@dataclass(frozen=True, slots=True)
class MasterKey:
    """A customer master key's metadata as stored (its material is stored apart, wrapped: see ``material.py``)."""

    key_id: str
    region: str
    created_ms: int
    description: str = ""
    usage: KeyUsage = "ENCRYPT_DECRYPT"
    spec: str = "SYMMETRIC_DEFAULT"
    state: KeyState = "Enabled"
    #: The backing-key version new ciphertexts use; older versions stay to decrypt old ciphertexts.
    current_version: int = 1
    rotation_enabled: bool = False
    rotation_period_days: int = DEFAULT_ROTATION_DAYS
    #: Where the current automatic-rotation period began: the creation, the last automatic rotation, or the moment
    #: rotation was turned on. The next automatic rotation is a period later. On-demand rotations leave it alone
    #: (KMS: they do not change the automatic schedule).
    rotated_ms: int = 0
    on_demand_rotations: int = 0
    deletion_ms: int | None = None
    pending_window_days: int | None = None
    #: The internal owner of a key syncsvc made for itself (e.g. ``pool:<id>``), or "" for one made through the API.
    owner: str = ""
    #: The key's tags (CreateKey's Tags, TagResource, UntagResource; rules in ``syncsvc.kms.tags``), in the key's hash.
    tags: dict[str, str] = field(default_factory=dict)
    #: Where the key's material is (KMS's Origin): AWS_KMS (made here, wrapped by the root key) or AWS_CLOUDHSM (an AES
    #: key inside the PKCS#11 token of the custom key store ``custom_key_store_id``, token label
    #: ``cloud_hsm_cluster_id``: see ``syncsvc.kms.hsm_keys``).
    origin: str = "AWS_KMS"
    custom_key_store_id: str = ""
    cloud_hsm_cluster_id: str = ""
    #: An EXTERNAL key's imported material: "" while it has none, else KEY_MATERIAL_EXPIRES (until ``valid_to_ms``) or
    #: KEY_MATERIAL_DOES_NOT_EXPIRE (rules in ``syncsvc.kms.imports``).
    expiration_model: str = ""
    valid_to_ms: int | None = None

    @property
    def arn(self) -> str:
        return key_arn(self.region, self.key_id)

    @property
    def symmetric(self) -> bool:
        return self.spec == "SYMMETRIC_DEFAULT"

    @property
    def hmac(self) -> bool:
        return self.spec in MAC_ALGORITHMS

    @property
    def awaits_material(self) -> bool:
        """An EXTERNAL key whose material was never imported, or was deleted or expired."""
        return self.origin == "EXTERNAL" and not self.expiration_model

    def evolve(self, **changes: Any) -> MasterKey:
        return replace(self, **changes)

    def stored(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_stored(cls, fields: dict[str, Any]) -> MasterKey:
        return cls(**fields)

    def metadata(self) -> dict[str, Any]:
        """KMS's KeyMetadata (dates in epoch seconds, as the json protocol carries timestamps)."""
        wire: dict[str, Any] = {
            "AWSAccountId": ACCOUNT,
            "KeyId": self.key_id,
            "Arn": self.arn,
            "CreationDate": self.created_ms / 1000,
            "Enabled": self.state == "Enabled",
            "Description": self.description,
            "KeyUsage": self.usage,
            "KeyState": self.state,
            "Origin": self.origin,
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": self.spec,
            "KeySpec": self.spec,
            "MultiRegion": False,
        }
        if self.symmetric:
            wire["EncryptionAlgorithms"] = ["SYMMETRIC_DEFAULT"]
        wire.update(self.algorithms())
        if self.custom_key_store_id:
            wire["CustomKeyStoreId"] = self.custom_key_store_id
            wire["CloudHsmClusterId"] = self.cloud_hsm_cluster_id
        if self.deletion_ms is not None:
            wire["DeletionDate"] = self.deletion_ms / 1000
            wire["PendingDeletionWindowInDays"] = self.pending_window_days
        if self.expiration_model:
            wire["ExpirationModel"] = self.expiration_model
        if self.valid_to_ms is not None:
            wire["ValidTo"] = self.valid_to_ms / 1000
        return wire

    def algorithms(self) -> dict[str, list[str]]:
        """An asymmetric key's EncryptionAlgorithms or SigningAlgorithms, an HMAC key's MacAlgorithms (empty for a
        symmetric encryption key)."""
        if self.symmetric:
            return {}
        if self.hmac:
            return {"MacAlgorithms": list(MAC_ALGORITHMS[self.spec])}
        if self.usage == "SIGN_VERIFY":
            return {"SigningAlgorithms": list(SIGNING_ALGORITHMS[self.spec])}
        return {"EncryptionAlgorithms": list(ENCRYPTION_ALGORITHMS[self.spec])}

    # --- checks -------------------------------------------------------------------------------------------------------

    def require_enabled(self) -> None:
        """DisabledException for a disabled key, KMSInvalidStateException for one pending deletion or import."""
        if self.state == "Disabled":
            raise KmsDisabledError(f"{self.arn} is disabled.")
        self.require_not_pending()
        self.require_material()

    def require_not_pending(self) -> None:
        if self.state == "PendingDeletion":
            raise KmsInvalidStateError(f"{self.arn} is pending deletion.")

    def require_usable(self) -> None:
        """A key that can encrypt and decrypt now: Enabled, symmetric, ENCRYPT_DECRYPT."""
        self.require_enabled()
        if not self.symmetric or self.usage != "ENCRYPT_DECRYPT":
            raise InvalidKeyUsageError(f"{self.arn} key usage is {self.usage}, not symmetric ENCRYPT_DECRYPT")

    def require_rotatable(self) -> None:
        """Rotation changes: UnsupportedOperationException for an asymmetric or HMAC key (KMS rotates symmetric
        encryption keys only), then as :meth:`require_usable`."""
        if self.hmac:
            raise UnsupportedOperationError(f"{self.arn} is an HMAC key: KMS does not rotate HMAC keys")
        if not self.symmetric:
            raise UnsupportedOperationError(f"{self.arn} is an asymmetric key: KMS does not rotate asymmetric keys")
        if self.custom_key_store_id:
            raise UnsupportedOperationError(
                f"{self.arn} is in custom key store {self.custom_key_store_id}: KMS does not rotate keys in a custom "
                "key store"
            )
        if self.origin == "EXTERNAL":
            raise UnsupportedOperationError(
                f"{self.arn} has imported key material (Origin EXTERNAL): syncsvc does not rotate such keys, "
                "automatically or on demand"
            )
        self.require_usable()

    def require_signing(self, algorithm: str) -> None:
        """Sign and Verify: an Enabled SIGN_VERIFY key and one of its signing algorithms (InvalidKeyUsageException)."""
        self.require_enabled()
        if self.usage != "SIGN_VERIFY":
            raise InvalidKeyUsageError(f"{self.arn} key usage is {self.usage} which is not valid for signing.")
        if algorithm not in SIGNING_ALGORITHMS[self.spec]:
            raise InvalidKeyUsageError(
                f"Algorithm {algorithm} is incompatible with key spec {self.spec}; it takes "
                f"{', '.join(SIGNING_ALGORITHMS[self.spec])}"
            )

    def require_asymmetric_encryption(self, algorithm: str) -> None:
        """Encrypt and Decrypt with an asymmetric algorithm: an Enabled asymmetric ENCRYPT_DECRYPT key and one of its
        encryption algorithms (InvalidKeyUsageException)."""
        self.require_enabled()
        if self.usage != "ENCRYPT_DECRYPT":
            raise InvalidKeyUsageError(f"{self.arn} key usage is {self.usage} which is not valid for encryption.")
        if algorithm not in ENCRYPTION_ALGORITHMS.get(self.spec, ()):
            raise InvalidKeyUsageError(
                f"Algorithm {algorithm} is incompatible with key spec {self.spec}; it takes "
                f"{', '.join(ENCRYPTION_ALGORITHMS.get(self.spec, ('SYMMETRIC_DEFAULT',)))}"
            )

    def require_mac(self, algorithm: str) -> None:
        """GenerateMac and VerifyMac: an Enabled GENERATE_VERIFY_MAC key and its MAC algorithm
        (InvalidKeyUsageException)."""
        self.require_enabled()
        if self.usage != "GENERATE_VERIFY_MAC":
            raise InvalidKeyUsageError(
                f"{self.arn} key usage is {self.usage} which is not valid for GenerateMac or VerifyMac."
            )
        if algorithm not in MAC_ALGORITHMS[self.spec]:
            raise InvalidKeyUsageError(
                f"Algorithm {algorithm} is incompatible with key spec {self.spec}; it takes "
                f"{', '.join(MAC_ALGORITHMS[self.spec])}"
            )

    def require_public_key(self) -> None:
        """GetPublicKey: an Enabled asymmetric key (UnsupportedOperationException for a symmetric or HMAC one)."""
        self.require_enabled()
        if self.symmetric or self.hmac:
            raise UnsupportedOperationError(f"{self.arn} is a symmetric key: it has no public key")

    # --- rotation -----------------------------------------------------------------------------------------------------

    @property
    def next_rotation_ms(self) -> int | None:
        """When the next automatic rotation is due (None while rotation is off)."""
        if not self.rotation_enabled:
            return None
        return self.rotated_ms + self.rotation_period_days * DAY_MS

    def rotation_due(self, now_ms: int) -> bool:
        due = self.next_rotation_ms
        return self.state == "Enabled" and due is not None and due <= now_ms

    def with_rotation(self, period_days: int, now_ms: int) -> MasterKey:
        """EnableKeyRotation: a key whose rotation was off starts its first period now; one already on keeps its
        period's start and takes the new length."""
        self.require_rotatable()
        start = self.rotated_ms if self.rotation_enabled else now_ms
        return self.evolve(rotation_enabled=True, rotation_period_days=period_days, rotated_ms=start)

    def without_rotation(self) -> MasterKey:
        self.require_rotatable()
        return self.evolve(rotation_enabled=False)

    def rotated(self, now_ms: int) -> MasterKey:
        """A new backing key becomes current (an automatic rotation: the next period starts now)."""
        self.require_rotatable()
        return self.evolve(current_version=self.current_version + 1, rotated_ms=now_ms)

    def rotated_on_demand(self, now_ms: int) -> MasterKey:
        """RotateKeyOnDemand: at most :data:`MAX_ON_DEMAND_ROTATIONS` per key, refused while an automatic rotation is
        due within :data:`ROTATION_CONFLICT_MS`; the automatic schedule does not move."""
        self.require_rotatable()
        if self.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS:
            raise KmsLimitExceededError(
                f"{self.arn} has reached the limit of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations"
            )
        due = self.next_rotation_ms
        if due is not None and due - now_ms < ROTATION_CONFLICT_MS:
            raise KmsConflictError(f"An automatic rotation of {self.arn} is due within 20 minutes; retry after it")
        return self.evolve(current_version=self.current_version + 1, on_demand_rotations=self.on_demand_rotations + 1)

    # --- state --------------------------------------------------------------------------------------------------------

    def enabled(self) -> MasterKey:
        self.require_not_pending()
        self.require_material()
        return self.evolve(state="Enabled")

    def disabled(self) -> MasterKey:
        self.require_not_pending()
        self.require_material()
        return self.evolve(state="Disabled")

    def require_material(self) -> None:
        """KMSInvalidStateException for a key pending import (EnableKey, DisableKey: KMS's key states table)."""
        if self.state == "PendingImport":
            raise KmsInvalidStateError(f"{self.arn} is pending import.")

    def scheduled_for_deletion(self, window_days: int, now_ms: int) -> MasterKey:
        low, high = PENDING_WINDOW_DAYS
        if not low <= window_days <= high:
            raise KmsValidationError(f"PendingWindowInDays must be between {low} and {high}")
        self.require_not_pending()
        return self.evolve(
            state="PendingDeletion", deletion_ms=now_ms + window_days * DAY_MS, pending_window_days=window_days
        )

    def deletion_cancelled(self) -> MasterKey:
        """CancelKeyDeletion: the key comes back Disabled (EnableKey is needed to use it again)."""
        if self.state != "PendingDeletion":
            raise KmsInvalidStateError(f"{self.arn} is not pending deletion.")
        state: KeyState = "PendingImport" if self.awaits_material else "Disabled"
        return self.evolve(state=state, deletion_ms=None, pending_window_days=None)

    def deletion_due(self, now_ms: int) -> bool:
        return self.state == "PendingDeletion" and self.deletion_ms is not None and self.deletion_ms <= now_ms
