"""The KMS operations' results, as KMS answers them: one TypedDict per shape (optional members ``NotRequired``).

Blobs (CiphertextBlob, Plaintext, Signature, PublicKey) are base64 text, dates epoch seconds (the json protocol's
timestamps). Key metadata and grant entries are the domain's own wire forms (``MasterKey.metadata``, ``Grant.entry``),
typed here by :func:`key_metadata` and :func:`grant_entry`. Imports the KMS domain's types only.
"""

from __future__ import annotations

from typing import (
    NotRequired,  # pydantic describes these TypedDicts on Python 3.11
    cast,
)

from typing_extensions import TypedDict

from syncsvc.kms.model import MasterKey
from syncsvc.kms.policy import Grant


class Empty(TypedDict):
    pass


class Page(TypedDict):
    """What every KMS list answers besides its entries: whether there are more, and where they start."""

    Truncated: bool
    NextMarker: NotRequired[str]


# --- keys, rotation, aliases ------------------------------------------------------------------------------------------


class KeyMetadata(TypedDict):
    AWSAccountId: str
    KeyId: str
    Arn: str
    CreationDate: float
    Enabled: bool
    Description: str
    KeyUsage: str
    KeyState: str
    Origin: str
    KeyManager: str
    CustomerMasterKeySpec: str
    KeySpec: str
    MultiRegion: bool
    EncryptionAlgorithms: NotRequired[list[str]]
    SigningAlgorithms: NotRequired[list[str]]
    MacAlgorithms: NotRequired[list[str]]
    DeletionDate: NotRequired[float]
    PendingDeletionWindowInDays: NotRequired[int]
    CustomKeyStoreId: NotRequired[str]
    CloudHsmClusterId: NotRequired[str]
    ExpirationModel: NotRequired[str]
    ValidTo: NotRequired[float]


class KeyMetadataOut(TypedDict):
    KeyMetadata: KeyMetadata


class KeyListEntry(TypedDict):
    KeyId: str
    KeyArn: str


class ListKeysOut(Page):
    Keys: list[KeyListEntry]


class ScheduleKeyDeletionOut(TypedDict):
    KeyId: str
    DeletionDate: float
    KeyState: str
    PendingWindowInDays: int


class KeyIdOut(TypedDict):
    KeyId: str


class KeyRotationStatusOut(TypedDict):
    KeyRotationEnabled: bool
    KeyId: str
    RotationPeriodInDays: NotRequired[int]
    NextRotationDate: NotRequired[float]


class AliasListEntry(TypedDict):
    AliasName: str
    AliasArn: str
    TargetKeyId: str


class ListAliasesOut(Page):
    Aliases: list[AliasListEntry]


# --- cryptography -----------------------------------------------------------------------------------------------------


class EncryptOut(TypedDict):
    CiphertextBlob: str
    KeyId: str
    EncryptionAlgorithm: str


class DecryptOut(TypedDict):
    KeyId: str
    Plaintext: str
    EncryptionAlgorithm: str


class ReEncryptOut(TypedDict):
    CiphertextBlob: str
    SourceKeyId: str
    KeyId: str
    SourceEncryptionAlgorithm: str
    DestinationEncryptionAlgorithm: str


class DataKeyOut(TypedDict):
    """GenerateDataKeyWithoutPlaintext's result; GenerateDataKey's adds the Plaintext."""

    CiphertextBlob: str
    KeyId: str


class PlaintextDataKeyOut(DataKeyOut):
    Plaintext: str


class SignOut(TypedDict):
    KeyId: str
    Signature: str
    SigningAlgorithm: str


class VerifyOut(TypedDict):
    KeyId: str
    SignatureValid: bool
    SigningAlgorithm: str


class PublicKeyOut(TypedDict):
    KeyId: str
    PublicKey: str
    CustomerMasterKeySpec: str
    KeySpec: str
    KeyUsage: str
    EncryptionAlgorithms: NotRequired[list[str]]
    SigningAlgorithms: NotRequired[list[str]]


# --- grants and key policies ------------------------------------------------------------------------------------------


class CreateGrantOut(TypedDict):
    GrantToken: str
    GrantId: str


class GrantConstraintsOut(TypedDict):
    EncryptionContextSubset: NotRequired[dict[str, str]]
    EncryptionContextEquals: NotRequired[dict[str, str]]


class GrantListEntry(TypedDict):
    KeyId: str
    GrantId: str
    CreationDate: float
    GranteePrincipal: str
    IssuingAccount: str
    Operations: list[str]
    Name: NotRequired[str]
    RetiringPrincipal: NotRequired[str]
    Constraints: NotRequired[GrantConstraintsOut]


class ListGrantsOut(Page):
    Grants: list[GrantListEntry]


class KeyPolicyOut(TypedDict):
    Policy: str
    PolicyName: str


def key_metadata(key: MasterKey) -> KeyMetadata:
    """``key``'s KeyMetadata (``MasterKey.metadata`` builds it)."""
    return cast(KeyMetadata, key.metadata())


def grant_entry(grant: Grant, key_arn: str) -> GrantListEntry:
    """``grant``'s GrantListEntry (``Grant.entry`` builds it)."""
    return cast(GrantListEntry, grant.entry(key_arn))


# --- HMAC keys: GenerateMac, VerifyMac --------------------------------------------------------------------------------


class GenerateMacOut(TypedDict):
    KeyId: str
    Mac: str
    MacAlgorithm: str


class VerifyMacOut(TypedDict):
    KeyId: str
    MacValid: bool
    MacAlgorithm: str


# --- the rest of the KMS API: tags, aliases, descriptions, key policy names, rotation history, GenerateRandom ---------


class TagEntry(TypedDict):
    TagKey: str
    TagValue: str


class ListResourceTagsOut(Page):
    Tags: list[TagEntry]


class ListKeyPoliciesOut(Page):
    PolicyNames: list[str]


class RotationsListEntry(TypedDict):
    KeyId: str
    KeyMaterialId: str
    KeyMaterialState: str
    RotationDate: NotRequired[float]
    RotationType: NotRequired[str]


class ListKeyRotationsOut(Page):
    Rotations: list[RotationsListEntry]


class GenerateRandomOut(TypedDict):
    Plaintext: str


# --- custom key stores (PKCS#11 tokens as CloudHSM key stores) --------------------------------------------------------


class CreateCustomKeyStoreOut(TypedDict):
    CustomKeyStoreId: str


class CustomKeyStoresListEntry(TypedDict):
    CustomKeyStoreId: str
    CustomKeyStoreName: str
    CloudHsmClusterId: str
    TrustAnchorCertificate: str
    ConnectionState: str
    CreationDate: float
    CustomKeyStoreType: str
    ConnectionErrorCode: NotRequired[str]


class DescribeCustomKeyStoresOut(Page):
    CustomKeyStores: list[CustomKeyStoresListEntry]


# --- the rest of the KMS API (continued): data key pairs -------------------------------------------------------------


class DataKeyPairOut(TypedDict):
    """GenerateDataKeyPairWithoutPlaintext's result; GenerateDataKeyPair's adds the PrivateKeyPlaintext."""

    PrivateKeyCiphertextBlob: str
    PublicKey: str
    KeyId: str
    KeyPairSpec: str


class PlaintextDataKeyPairOut(DataKeyPairOut):
    PrivateKeyPlaintext: str


# --- imported key material (Origin EXTERNAL) --------------------------------------------------------------------------


class GetParametersForImportOut(TypedDict):
    KeyId: str
    ImportToken: str
    PublicKey: str
    ParametersValidTo: float
