"""KMS's nouns: a master key's metadata (what DescribeKey answers), its states and specs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

KeyState = Literal["Enabled", "Disabled", "PendingDeletion"]
KeyUsage = Literal["ENCRYPT_DECRYPT", "SIGN_VERIFY"]
#: The account id in ARNs: syncsvc has one tenant per deployment.
ACCOUNT = "000000000000"
DEFAULT_ROTATION_DAYS = 365


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
    #: When the last rotation (or the creation) happened: the next automatic one is a period later.
    rotated_ms: int = 0
    on_demand_rotations: int = 0
    deletion_ms: int | None = None
    pending_window_days: int | None = None
    #: The internal owner of a key syncsvc made for itself (e.g. ``pool:<id>``), or "" for one made through the API.
    owner: str = ""

    @property
    def arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{ACCOUNT}:key/{self.key_id}"

    @property
    def symmetric(self) -> bool:
        return self.spec == "SYMMETRIC_DEFAULT"

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
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": self.spec,
            "KeySpec": self.spec,
            "MultiRegion": False,
        }
        if self.symmetric:
            wire["EncryptionAlgorithms"] = ["SYMMETRIC_DEFAULT"]
        if self.deletion_ms is not None:
            wire["DeletionDate"] = self.deletion_ms / 1000
            wire["PendingDeletionWindowInDays"] = self.pending_window_days
        return wire
