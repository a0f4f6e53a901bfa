"""The KMS operations' request models: what each operation takes, with KMS's constraints on every member.

Strict and closed (a member the model does not have is refused by name); blobs (Plaintext, CiphertextBlob, Message,
Signature) are base64 text on the wire and bytes here. A broken constraint is answered by the dispatcher
(``syncsvc.api.operations``) as KMS's ValidationException in AWS's words; the rules that span several members
(KeySpec or NumberOfBytes, …) are the operations' own. Imports pydantic and KMS's enums only.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from syncsvc.kms.model import (
    DEFAULT_PENDING_WINDOW_DAYS,
    DEFAULT_ROTATION_DAYS,
    EncryptionAlgorithmName,
    KeySpecName,
    KeyUsageName,
    SigningAlgorithmName,
)
from syncsvc.kms.policy import GrantOperation

KeyRef = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
MarkerText = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
ContextMap = dict[str, str]
GrantTokenText = Annotated[str, StringConstraints(min_length=1, max_length=8192)]
GrantTokenList = Annotated[list[GrantTokenText], Field(max_length=10)]
PlaintextBytes = Annotated[bytes, Field(min_length=1, max_length=4096)]
CiphertextBytes = Annotated[bytes, Field(min_length=1, max_length=6144)]
MessageTypeName = Literal["RAW", "DIGEST", "EXTERNAL_MU"]
DataKeySpecName = Literal["AES_256", "AES_128"]
PrincipalArn = Annotated[str, StringConstraints(min_length=1, max_length=256)]
ServicePrincipal = Annotated[str, StringConstraints(min_length=1, max_length=128)]
GrantIdText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
PolicyText = Annotated[str, StringConstraints(min_length=1, max_length=131072)]
PolicyNameText = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, val_json_bytes="base64")


# --- keys, rotation, aliases ------------------------------------------------------------------------------------------


class Tag(Input):
    TagKey: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    TagValue: Annotated[str, StringConstraints(max_length=256)]


class CreateKeyIn(Input):
    Policy: PolicyText | None = None
    Description: Annotated[str, StringConstraints(max_length=8192)] = ""
    KeyUsage: KeyUsageName = "ENCRYPT_DECRYPT"
    CustomerMasterKeySpec: KeySpecName | None = None
    KeySpec: KeySpecName | None = None
    Origin: Literal["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"] = "AWS_KMS"
    BypassPolicyLockoutSafetyCheck: bool = False
    Tags: Annotated[list[Tag], Field(max_length=50)] = []
    MultiRegion: bool = False


class KeyIdIn(Input):
    KeyId: KeyRef


class DescribeKeyIn(KeyIdIn):
    GrantTokens: GrantTokenList = []


class ListKeysIn(Input):
    Limit: Annotated[int, Field(ge=1, le=1000)] = 100
    Marker: MarkerText | None = None


class ScheduleKeyDeletionIn(KeyIdIn):
    #: The model allows 1 to 365; KMS enforces 7 to 30 with its own message (``MasterKey.scheduled_for_deletion``).
    PendingWindowInDays: int = DEFAULT_PENDING_WINDOW_DAYS


class EnableKeyRotationIn(KeyIdIn):
    RotationPeriodInDays: Annotated[int, Field(ge=90, le=2560)] = DEFAULT_ROTATION_DAYS


class CreateAliasIn(Input):
    AliasName: Annotated[str, StringConstraints(min_length=1)]
    TargetKeyId: KeyRef


class ListAliasesIn(Input):
    KeyId: KeyRef | None = None
    Limit: Annotated[int, Field(ge=1, le=100)] = 50
    Marker: MarkerText | None = None


# --- cryptography -----------------------------------------------------------------------------------------------------


class EncryptIn(Input):
    KeyId: KeyRef
    Plaintext: PlaintextBytes
    EncryptionContext: ContextMap = {}
    GrantTokens: GrantTokenList = []
    EncryptionAlgorithm: EncryptionAlgorithmName = "SYMMETRIC_DEFAULT"
    DryRun: bool = False


class DecryptIn(Input):
    CiphertextBlob: CiphertextBytes
    EncryptionContext: ContextMap = {}
    GrantTokens: GrantTokenList = []
    KeyId: KeyRef | None = None
    EncryptionAlgorithm: EncryptionAlgorithmName = "SYMMETRIC_DEFAULT"
    DryRun: bool = False


class ReEncryptIn(Input):
    CiphertextBlob: CiphertextBytes
    SourceEncryptionContext: ContextMap = {}
    SourceKeyId: KeyRef | None = None
    DestinationKeyId: KeyRef
    DestinationEncryptionContext: ContextMap = {}
    SourceEncryptionAlgorithm: EncryptionAlgorithmName = "SYMMETRIC_DEFAULT"
    DestinationEncryptionAlgorithm: EncryptionAlgorithmName = "SYMMETRIC_DEFAULT"
    GrantTokens: GrantTokenList = []
    DryRun: bool = False


class GenerateDataKeyIn(Input):
    KeyId: KeyRef
    EncryptionContext: ContextMap = {}
    NumberOfBytes: Annotated[int, Field(ge=1, le=1024)] | None = None
    KeySpec: DataKeySpecName | None = None
    GrantTokens: GrantTokenList = []
    DryRun: bool = False


class SignIn(Input):
    KeyId: KeyRef
    Message: PlaintextBytes
    MessageType: MessageTypeName = "RAW"
    GrantTokens: GrantTokenList = []
    SigningAlgorithm: SigningAlgorithmName
    DryRun: bool = False


class VerifyIn(SignIn):
    Signature: CiphertextBytes


class GetPublicKeyIn(KeyIdIn):
    GrantTokens: GrantTokenList = []


# --- grants and key policies ------------------------------------------------------------------------------------------


class GrantConstraints(Input):
    EncryptionContextSubset: ContextMap | None = None
    EncryptionContextEquals: ContextMap | None = None


class CreateGrantIn(Input):
    KeyId: KeyRef
    GranteePrincipal: PrincipalArn | None = None
    RetiringPrincipal: PrincipalArn | None = None
    Operations: Annotated[list[GrantOperation], Field(min_length=1)]
    Constraints: GrantConstraints | None = None
    GrantTokens: GrantTokenList = []
    Name: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    DryRun: bool = False
    GranteeServicePrincipal: ServicePrincipal | None = None
    RetiringServicePrincipal: ServicePrincipal | None = None


class ListGrantsIn(Input):
    KeyId: KeyRef
    Limit: Annotated[int, Field(ge=1, le=100)] = 50
    Marker: MarkerText | None = None
    GrantId: GrantIdText | None = None
    GranteePrincipal: PrincipalArn | None = None
    GranteeServicePrincipal: ServicePrincipal | None = None


class RevokeGrantIn(Input):
    KeyId: KeyRef
    GrantId: GrantIdText
    DryRun: bool = False


class RetireGrantIn(Input):
    GrantToken: GrantTokenText | None = None
    KeyId: KeyRef | None = None
    GrantId: GrantIdText | None = None
    DryRun: bool = False


class GetKeyPolicyIn(KeyIdIn):
    PolicyName: PolicyNameText = "default"


class PutKeyPolicyIn(KeyIdIn):
    PolicyName: PolicyNameText = "default"
    Policy: PolicyText
    BypassPolicyLockoutSafetyCheck: bool = False
