"""The KMS operations' request models: what each operation takes, with KMS's constraints on every member.

Strict and closed (a member the model does not have is refused by name); blobs (Plaintext, CiphertextBlob, Message,
Signature) are base64 text on the wire and bytes here. A broken constraint is answered by the dispatcher
(``syncsvc.api.operations``) as KMS's ValidationException in AWS's words; the rules that span several members
(KeySpec or NumberOfBytes, …) are the operations' own. Imports pydantic and KMS's enums only.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from syncsvc.api.validation import EpochSeconds
from syncsvc.kms.model import (
    DEFAULT_PENDING_WINDOW_DAYS,
    DEFAULT_ROTATION_DAYS,
    EncryptionAlgorithmName,
    KeySpecName,
    KeyUsageName,
    MacAlgorithmName,
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
    CustomKeyStoreId: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
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


# --- HMAC keys: GenerateMac, VerifyMac --------------------------------------------------------------------------------


class GenerateMacIn(Input):
    KeyId: KeyRef
    Message: PlaintextBytes
    MacAlgorithm: MacAlgorithmName
    GrantTokens: GrantTokenList = []
    DryRun: bool = False


class VerifyMacIn(GenerateMacIn):
    Mac: CiphertextBytes


# --- the rest of the KMS API: tags, aliases, descriptions, key policy names, rotation history, GenerateRandom ---------

ListLimit = Annotated[int, Field(ge=1, le=1000)]
#: DeleteAlias's and UpdateAlias's AliasName shape (CreateAlias refuses ``:`` besides: ``check_alias_name``).
AliasNameText = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[a-zA-Z0-9:/_-]+$")]


class TagResourceIn(KeyIdIn):
    Tags: list[Tag]


class UntagResourceIn(KeyIdIn):
    TagKeys: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]]


class ListResourceTagsIn(KeyIdIn):
    #: The model allows 1 to 1000; KMS returns at most 50 (a key has at most 50 tags).
    Limit: ListLimit = 50
    Marker: MarkerText | None = None


class UpdateKeyDescriptionIn(KeyIdIn):
    Description: Annotated[str, StringConstraints(max_length=8192)]


class DeleteAliasIn(Input):
    AliasName: AliasNameText


class UpdateAliasIn(DeleteAliasIn):
    TargetKeyId: KeyRef


class ListKeyPoliciesIn(KeyIdIn):
    Limit: ListLimit = 100
    Marker: MarkerText | None = None


class ListKeyRotationsIn(KeyIdIn):
    IncludeKeyMaterial: Literal["ALL_KEY_MATERIAL", "ROTATIONS_ONLY"] = "ROTATIONS_ONLY"
    Limit: ListLimit = 100
    Marker: MarkerText | None = None


class RecipientInfo(Input):
    KeyEncryptionAlgorithm: Literal["RSAES_OAEP_SHA_256"] | None = None
    AttestationDocument: Annotated[bytes, Field(min_length=1, max_length=262144)] | None = None


class GenerateRandomIn(Input):
    #: Optional in the model; KMS requires it (``syncsvc.api.kms.entropy``).
    NumberOfBytes: Annotated[int, Field(ge=1, le=1024)] | None = None
    CustomKeyStoreId: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    Recipient: RecipientInfo | None = None


class AnyIn(BaseModel):
    """The input of an operation syncsvc does not serve: whatever is sent (it is refused before being read)."""

    model_config = ConfigDict(extra="allow")


# --- custom key stores (PKCS#11 tokens as CloudHSM key stores) --------------------------------------------------------

KeystoreIdText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
KeystoreNameText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
#: KMS's CloudHsmClusterId; here the label of a token of the PKCS#11 module.
ClusterIdText = Annotated[str, StringConstraints(min_length=19, max_length=24, pattern=r"^cluster-[2-7a-zA-Z]{11,16}$")]
#: KMS's KeyStorePassword; here the token's user PIN.
KeystorePasswordText = Annotated[str, StringConstraints(min_length=7, max_length=32)]
#: The external key store (XKS) members: accepted as KMS's model has them, refused by the operations.
XksMembers = dict[str, str] | str | None


class _XksIn(Input):
    """The external key store (XKS) members, accepted as KMS's model has them and refused by the operations."""

    XksProxyUriEndpoint: str | None = None
    XksProxyUriPath: str | None = None
    XksProxyVpcEndpointServiceName: str | None = None
    XksProxyVpcEndpointServiceOwner: str | None = None
    XksProxyAuthenticationCredential: XksMembers = None
    XksProxyConnectivity: str | None = None


class CreateCustomKeyStoreIn(_XksIn):
    CustomKeyStoreName: KeystoreNameText
    CloudHsmClusterId: ClusterIdText | None = None
    TrustAnchorCertificate: Annotated[str, StringConstraints(min_length=1, max_length=5000)] | None = None
    KeyStorePassword: KeystorePasswordText | None = None
    CustomKeyStoreType: Literal["AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"] = "AWS_CLOUDHSM"


class DescribeCustomKeyStoresIn(Input):
    CustomKeyStoreId: KeystoreIdText | None = None
    CustomKeyStoreName: KeystoreNameText | None = None
    Limit: Annotated[int, Field(ge=1, le=1000)] = 1000
    Marker: MarkerText | None = None


class CustomKeyStoreIdIn(Input):
    CustomKeyStoreId: KeystoreIdText


class UpdateCustomKeyStoreIn(_XksIn, CustomKeyStoreIdIn):
    NewCustomKeyStoreName: KeystoreNameText | None = None
    KeyStorePassword: KeystorePasswordText | None = None
    CloudHsmClusterId: ClusterIdText | None = None


# --- the rest of the KMS API (continued): ListRetirableGrants, data key pairs -----------------------------------------


class ListRetirableGrantsIn(Input):
    #: The model allows 1 to 1000; KMS's reference takes 1 to 100 (``syncsvc.api.kms.retirable``).
    Limit: ListLimit = 50
    Marker: MarkerText | None = None
    RetiringPrincipal: PrincipalArn | None = None
    RetiringServicePrincipal: ServicePrincipal | None = None


class GenerateDataKeyPairIn(Input):
    KeyId: KeyRef
    KeyPairSpec: Literal[
        "RSA_2048",
        "RSA_3072",
        "RSA_4096",
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "ECC_NIST_P521",
        "ECC_SECG_P256K1",
        "SM2",
        "ECC_NIST_EDWARDS25519",
        "ML_KEM_512",
        "ML_KEM_768",
        "ML_KEM_1024",
    ]
    EncryptionContext: ContextMap = {}
    GrantTokens: GrantTokenList = []
    Recipient: RecipientInfo | None = None
    DryRun: bool = False


# --- imported key material (Origin EXTERNAL) --------------------------------------------------------------------------

ImportBlob = Annotated[bytes, Field(min_length=1, max_length=6144)]


class GetParametersForImportIn(Input):
    KeyId: KeyRef
    WrappingAlgorithm: Literal[
        "RSAES_PKCS1_V1_5",
        "RSAES_OAEP_SHA_1",
        "RSAES_OAEP_SHA_256",
        "RSA_AES_KEY_WRAP_SHA_1",
        "RSA_AES_KEY_WRAP_SHA_256",
        "SM2PKE",
    ]
    WrappingKeySpec: Literal["RSA_2048", "RSA_3072", "RSA_4096", "SM2"]


class ImportKeyMaterialIn(Input):
    KeyId: KeyRef
    ImportToken: ImportBlob
    EncryptedKeyMaterial: ImportBlob
    #: A timestamp: epoch seconds, as the json protocol carries it.
    ValidTo: EpochSeconds | None = None
    ExpirationModel: Literal["KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"] = "KEY_MATERIAL_EXPIRES"
