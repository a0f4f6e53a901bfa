"""KMS (json 1.1): ``POST /`` routed by ``X-Amz-Target: TrentService.<Op>``.

Each operation parses its input model, calls :class:`~syncsvc.kms.service.KeyService` and returns its output dict.
Blobs (Plaintext, CiphertextBlob) are base64 on the wire and bytes in the models; dates are epoch seconds. A value
that breaks a constraint is KMS's ``ValidationException``; a member of the wrong JSON type, or a body that is not
JSON, a ``SerializationException``. Outputs name keys by ARN where KMS does (Encrypt, Decrypt, ReEncrypt,
GenerateDataKey*, ScheduleKeyDeletion, CancelKeyDeletion). ``DryRun: true`` runs the operation in full and answers
``DryRunOperationException`` instead of its result. :data:`OPERATIONS` is the surface's table of contents.

Asymmetric keys (RSA_2048, ECC_NIST_P256) serve Sign, Verify, GetPublicKey, and (RSA ENCRYPT_DECRYPT) Encrypt and
Decrypt with RSAES_OAEP_*; ReEncrypt stays symmetric only.

Who may call what (rules in ``syncsvc.kms.policy``, principals as its docstring says: a developer is
``arn:aws:iam::000000000000:user/<access key id>``, an identity ``arn:aws:sts::000000000000:assumed-role/Cognito/
<identity id>``):

* Every operation on a key is checked against the key's policy and grants (:func:`_authorize`): a developer passes
  when the key policy allows it (the default policy allows every developer) or a grant does; an identity only through
  a grant naming it as GranteePrincipal (with matching encryption-context constraints). An explicit Deny in the key
  policy refuses anyone. Refusals are AccessDeniedException; an identity gets the very same answer for a key or
  alias that does not exist (no existence oracle: see :func:`_authorize`).
* The surface works on ``KeyService.public``: keys syncsvc made for itself (pool master keys, token signing keys)
  do not exist there (NotFoundException, left out of ListKeys and ListAliases; see ``syncsvc.kms.service``).
* Identities may call only the operations a grant can allow (:data:`GRANTABLE`); key management (CreateKey, ListKeys,
  aliases, state, rotation, deletion, key policies, CreateGrant, ListGrants, RevokeGrant) stays developer-only.
  CreateGrant accepts every GrantOperation, but a grant's CreateGrant does not let an identity create grants.
* RetireGrant: the grant's RetiringPrincipal, its GranteePrincipal if the grant lists RetireGrant, or a developer
  whom the key policy allows kms:RetireGrant. An identity gets AccessDeniedException for a grant that does not
  exist too; DryRun checks all of this before it answers DryRunOperationException.
* Grants count at once (no eventual consistency): GrantTokens are checked to be grant tokens syncsvc issued
  (InvalidGrantTokenException otherwise) and are not needed otherwise. A GrantToken is the key id and grant id sealed
  with the deployment's token signer.
* CreateKey's Policy and PutKeyPolicy are checked (MalformedPolicyDocumentException) and refused when the new policy
  would not let the caller change it again, unless BypassPolicyLockoutSafetyCheck. PolicyName is ``default`` only.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from syncsvc.api.middleware import caller_of
from syncsvc.api.protocol import AMZ_JSON, KMS, SIGNER, body_of, respond, validation_error
from syncsvc.errors import (
    DryRunOperationError,
    InvalidArnError,
    InvalidGrantTokenError,
    InvalidKeyUsageError,
    InvalidMarkerError,
    InvalidParameterError,
    KmsAccessDeniedError,
    KmsNotFoundError,
    KmsValidationError,
    SerializationError,
    UnknownTargetError,
    UnsupportedOperationError,
)
from syncsvc.kms.model import DEFAULT_PENDING_WINDOW_DAYS, DEFAULT_ROTATION_DAYS, MasterKey
from syncsvc.kms.policy import GrantOperation, developer_principal, identity_principal
from syncsvc.kms.service import KeyService, check_grant_id
from syncsvc.model import Caller

TARGET_PREFIX = "TrentService."
ModelT = TypeVar("ModelT", bound=BaseModel)

KeyRef = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
MarkerText = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
ContextMap = dict[str, str]
GrantTokenList = Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=8192)]], Field(max_length=10)]
PlaintextBytes = Annotated[bytes, Field(min_length=1, max_length=4096)]
CiphertextBytes = Annotated[bytes, Field(min_length=1, max_length=6144)]
AlgorithmName = Literal["SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"]
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
MessageTypeName = Literal["RAW", "DIGEST", "EXTERNAL_MU"]
KeyUsageName = Literal[
    "ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", "ENCAPSULATE_DECAPSULATE"
]
#: DataKeySpec -> bytes
DATA_KEY_BYTES = {"AES_256": 32, "AES_128": 16}
_DRY_RUN = "The request would have succeeded, but the DryRun option is set."
#: The token-signer purpose of grant tokens.
_GRANT_PURPOSE = "kms:GrantToken"
PrincipalArn = Annotated[str, StringConstraints(min_length=1, max_length=256)]
GrantIdText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: Matched in full (``fullmatch``): ``$`` would also match before a final newline.
_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:.+")
PolicyText = Annotated[str, StringConstraints(min_length=1, max_length=131072)]
PolicyNameText = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, val_json_bytes="base64")


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


class CreateAliasIn(Input):
    AliasName: Annotated[str, StringConstraints(min_length=1)]
    TargetKeyId: KeyRef


class ListAliasesIn(Input):
    KeyId: KeyRef | None = None
    Limit: Annotated[int, Field(ge=1, le=100)] = 50
    Marker: MarkerText | None = None


class EncryptIn(Input):
    KeyId: KeyRef
    Plaintext: PlaintextBytes
    EncryptionContext: ContextMap = {}
    GrantTokens: GrantTokenList = []
    EncryptionAlgorithm: AlgorithmName = "SYMMETRIC_DEFAULT"
    DryRun: bool = False


class DecryptIn(Input):
    CiphertextBlob: CiphertextBytes
    EncryptionContext: ContextMap = {}
    GrantTokens: GrantTokenList = []
    KeyId: KeyRef | None = None
    EncryptionAlgorithm: AlgorithmName = "SYMMETRIC_DEFAULT"
    DryRun: bool = False


class ReEncryptIn(Input):
    CiphertextBlob: CiphertextBytes
    SourceEncryptionContext: ContextMap = {}
    SourceKeyId: KeyRef | None = None
    DestinationKeyId: KeyRef
    DestinationEncryptionContext: ContextMap = {}
    SourceEncryptionAlgorithm: AlgorithmName = "SYMMETRIC_DEFAULT"
    DestinationEncryptionAlgorithm: AlgorithmName = "SYMMETRIC_DEFAULT"
    GrantTokens: GrantTokenList = []
    DryRun: bool = False


class GenerateDataKeyIn(Input):
    KeyId: KeyRef
    EncryptionContext: ContextMap = {}
    NumberOfBytes: Annotated[int, Field(ge=1, le=1024)] | None = None
    KeySpec: Literal["AES_256", "AES_128"] | None = None
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


class EnableKeyRotationIn(KeyIdIn):
    RotationPeriodInDays: Annotated[int, Field(ge=90, le=2560)] = DEFAULT_ROTATION_DAYS


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
    GranteeServicePrincipal: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    RetiringServicePrincipal: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class ListGrantsIn(Input):
    KeyId: KeyRef
    Limit: Annotated[int, Field(ge=1, le=100)] = 50
    Marker: MarkerText | None = None
    GrantId: GrantIdText | None = None
    GranteePrincipal: PrincipalArn | None = None
    GranteeServicePrincipal: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class RevokeGrantIn(Input):
    KeyId: KeyRef
    GrantId: GrantIdText
    DryRun: bool = False


class RetireGrantIn(Input):
    GrantToken: Annotated[str, StringConstraints(min_length=1, max_length=8192)] | None = None
    KeyId: KeyRef | None = None
    GrantId: GrantIdText | None = None
    DryRun: bool = False


class GetKeyPolicyIn(KeyIdIn):
    PolicyName: PolicyNameText = "default"


class PutKeyPolicyIn(KeyIdIn):
    PolicyName: PolicyNameText = "default"
    Policy: PolicyText
    BypassPolicyLockoutSafetyCheck: bool = False


class ScheduleKeyDeletionIn(KeyIdIn):
    #: The model allows 1 to 365; KMS enforces 7 to 30 with its own message (``MasterKey.scheduled_for_deletion``).
    PendingWindowInDays: int = DEFAULT_PENDING_WINDOW_DAYS


Operation = Callable[[web.Request], Awaitable[dict[str, Any]]]


async def _parse(request: web.Request, model: type[ModelT]) -> ModelT:
    """The body validated as ``model`` (empty = ``{}``): a blob that is not base64 text is a SerializationException,
    a broken constraint KMS's ValidationException, the rest as ``protocol.validation_error`` says."""
    try:
        return model.model_validate_json(await body_of(request) or b"{}", strict=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] in ("bytes_type", "bytes_invalid_encoding"):
            raise SerializationError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        error = validation_error(exc)
        if isinstance(error, InvalidParameterError):
            raise KmsValidationError(f"1 validation error detected: {error.message}") from None
        raise error from None


def _blob(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _dry_run(requested: bool) -> None:
    if requested:
        raise DryRunOperationError(_DRY_RUN)


def _symmetric(*algorithms: str) -> None:
    for algorithm in algorithms:
        if algorithm != "SYMMETRIC_DEFAULT":
            raise InvalidKeyUsageError(f"{algorithm} needs an asymmetric key; ReEncrypt takes SYMMETRIC_DEFAULT only")


def _after(request: web.Request, operation: str, marker: str | None) -> str | None:
    """What a Marker from an earlier page of ``operation`` continues after."""
    if marker is None:
        return None
    try:
        return str(request.app[SIGNER].open(f"kms:{operation}", marker, name="Marker")["a"])
    except InvalidParameterError:
        raise InvalidMarkerError("The marker is not valid for this operation") from None


def _page(request: web.Request, operation: str, name: str, items: list[Any], limit: int) -> dict[str, Any]:
    """``items`` are (entry, what a marker continues after); the first ``limit`` entries under ``name``, Truncated,
    and a NextMarker when there are more."""
    shown = items[:limit]
    output: dict[str, Any] = {name: [entry for entry, _ in shown], "Truncated": len(items) > limit}
    if len(items) > limit:
        output["NextMarker"] = request.app[SIGNER].seal(f"kms:{operation}", {"a": shown[-1][1]})
    return output


def _kms(request: web.Request) -> KeyService:
    """The key service as the public API sees it: without syncsvc's internal keys (``KeyService.public``)."""
    return request.app[KMS].public


def principal_of(caller: Caller) -> str:
    """The caller as a principal ARN (see the module docstring)."""
    if caller.is_developer:
        return developer_principal(caller.access_key_id)
    return identity_principal(caller.identity_id or "")


def _check_grant_tokens(request: web.Request, tokens: list[str]) -> None:
    for token in tokens:
        try:
            request.app[SIGNER].open(_GRANT_PURPOSE, token, name="GrantToken")
        except InvalidParameterError:
            raise InvalidGrantTokenError("The grant token is not valid") from None


async def _authorize(
    request: web.Request,
    operation: str,
    key_ref: str,
    *,
    context: ContextMap | None = None,
    grant_tokens: list[str] | None = None,
) -> None:
    """AccessDeniedException unless the caller may perform ``operation`` on the key (``syncsvc.kms.policy``).

    A key that does not resolve is left to the operation for a developer (which answers its own NotFound or
    validation error). An identity learns nothing of which keys exist: a key id, ARN or alias that does not exist
    (or names an internal key) gets the same AccessDeniedException, word for word, as a key that exists but that no
    grant lets it use. That is what AWS KMS answers a principal without permission on a key (a key ARN of another
    account, whether or not the key exists); a malformed ARN stays InvalidArnException (it depends on the text
    alone)."""
    _check_grant_tokens(request, grant_tokens or [])
    caller = caller_of(request)
    kms = _kms(request)
    principal = principal_of(caller)
    try:
        await kms.authorize(key_ref, principal, operation, developer=caller.is_developer, context=context)
    except KmsNotFoundError:
        if not caller.is_developer:
            raise kms.access_denied(principal, operation, key_ref) from None
    except InvalidArnError:
        if not caller.is_developer:
            raise


async def _authorize_each(
    request: web.Request,
    operation: str,
    key_refs: Iterable[str | None],
    *,
    context: ContextMap | None = None,
    grant_tokens: list[str] | None = None,
) -> None:
    """:func:`_authorize` for every key a request names (None: not named), each once."""
    for key_ref in dict.fromkeys(ref for ref in key_refs if ref is not None):
        await _authorize(request, operation, key_ref, context=context, grant_tokens=grant_tokens)


def _rotation_status(key: MasterKey) -> dict[str, Any]:
    """A key pending deletion reports rotation off (KMS does not rotate it) and gets its status back if the
    deletion is cancelled."""
    enabled = key.rotation_enabled and key.state != "PendingDeletion"
    output: dict[str, Any] = {"KeyRotationEnabled": enabled, "KeyId": key.key_id}
    if enabled and key.next_rotation_ms is not None:
        output["RotationPeriodInDays"] = key.rotation_period_days
        output["NextRotationDate"] = key.next_rotation_ms / 1000
    return output


# --- keys ------------------------------------------------------------------------------------------------------------


async def create_key(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, CreateKeyIn)
    if given.KeySpec is not None and given.CustomerMasterKeySpec is not None:
        raise KmsValidationError("You cannot specify both KeySpec and CustomerMasterKeySpec; use KeySpec")
    if given.Origin != "AWS_KMS" or given.MultiRegion:
        raise UnsupportedOperationError("syncsvc makes single-Region keys with its own key material (AWS_KMS) only")
    kms = _kms(request)
    principal = principal_of(caller_of(request))
    if given.Policy is not None:
        kms.check_policy(given.Policy, principal, bypass_lockout=given.BypassPolicyLockoutSafetyCheck)
    key = await kms.create_key(
        description=given.Description,
        spec=given.KeySpec or given.CustomerMasterKeySpec or "SYMMETRIC_DEFAULT",
        usage=given.KeyUsage,
        tags={tag.TagKey: tag.TagValue for tag in given.Tags},
    )
    if given.Policy is not None:
        await kms.put_key_policy(key.key_id, given.Policy, principal, bypass_lockout=True)
    return {"KeyMetadata": key.metadata()}


async def describe_key(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, DescribeKeyIn)
    await _authorize(request, "DescribeKey", given.KeyId, grant_tokens=given.GrantTokens)
    return {"KeyMetadata": (await _kms(request).key(given.KeyId)).metadata()}


async def list_keys(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, ListKeysIn)
    kms = _kms(request)
    key_ids = await kms.key_ids(after=_after(request, "ListKeys", given.Marker), limit=given.Limit + 1)
    entries = [({"KeyId": key_id, "KeyArn": kms.key_arn(key_id)}, key_id) for key_id in key_ids]
    return _page(request, "ListKeys", "Keys", entries, given.Limit)


async def enable_key(request: web.Request) -> dict[str, Any]:
    key_ref = (await _parse(request, KeyIdIn)).KeyId
    await _authorize(request, "EnableKey", key_ref)
    await _kms(request).enable(key_ref)
    return {}


async def disable_key(request: web.Request) -> dict[str, Any]:
    key_ref = (await _parse(request, KeyIdIn)).KeyId
    await _authorize(request, "DisableKey", key_ref)
    await _kms(request).disable(key_ref)
    return {}


async def schedule_key_deletion(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, ScheduleKeyDeletionIn)
    await _authorize(request, "ScheduleKeyDeletion", given.KeyId)
    key = await _kms(request).schedule_deletion(given.KeyId, given.PendingWindowInDays)
    assert key.deletion_ms is not None
    return {
        "KeyId": key.arn,
        "DeletionDate": key.deletion_ms / 1000,
        "KeyState": key.state,
        "PendingWindowInDays": key.pending_window_days,
    }


async def cancel_key_deletion(request: web.Request) -> dict[str, Any]:
    key_ref = (await _parse(request, KeyIdIn)).KeyId
    await _authorize(request, "CancelKeyDeletion", key_ref)
    key = await _kms(request).cancel_deletion(key_ref)
    return {"KeyId": key.arn}


# --- rotation --------------------------------------------------------------------------------------------------------


async def enable_key_rotation(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, EnableKeyRotationIn)
    await _authorize(request, "EnableKeyRotation", given.KeyId)
    await _kms(request).enable_rotation(given.KeyId, given.RotationPeriodInDays)
    return {}


async def disable_key_rotation(request: web.Request) -> dict[str, Any]:
    key_ref = (await _parse(request, KeyIdIn)).KeyId
    await _authorize(request, "DisableKeyRotation", key_ref)
    await _kms(request).disable_rotation(key_ref)
    return {}


async def get_key_rotation_status(request: web.Request) -> dict[str, Any]:
    key_ref = (await _parse(request, KeyIdIn)).KeyId
    await _authorize(request, "GetKeyRotationStatus", key_ref)
    return _rotation_status(await _kms(request).key(key_ref))


async def rotate_key_on_demand(request: web.Request) -> dict[str, Any]:
    key_ref = (await _parse(request, KeyIdIn)).KeyId
    await _authorize(request, "RotateKeyOnDemand", key_ref)
    key = await _kms(request).rotate_on_demand(key_ref)
    return {"KeyId": key.key_id}


# --- aliases ---------------------------------------------------------------------------------------------------------


async def create_alias(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, CreateAliasIn)
    await _authorize(request, "CreateAlias", given.TargetKeyId)
    await _kms(request).create_alias(given.AliasName, given.TargetKeyId)
    return {}


async def list_aliases(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, ListAliasesIn)
    kms = _kms(request)
    after = _after(request, "ListAliases", given.Marker)
    aliases = [alias for alias in await kms.aliases(given.KeyId) if after is None or alias.name > after]
    entries = [
        ({"AliasName": alias.name, "AliasArn": kms.alias_arn(alias.name), "TargetKeyId": alias.key_id}, alias.name)
        for alias in aliases[: given.Limit + 1]
    ]
    return _page(request, "ListAliases", "Aliases", entries, given.Limit)


# --- cryptography ----------------------------------------------------------------------------------------------------


async def encrypt(request: web.Request) -> dict[str, Any]:
    """SYMMETRIC_DEFAULT (the default) with a symmetric key; RSAES_OAEP_* with an RSA ENCRYPT_DECRYPT key."""
    given = await _parse(request, EncryptIn)
    await _authorize(request, "Encrypt", given.KeyId, context=given.EncryptionContext, grant_tokens=given.GrantTokens)
    kms = _kms(request)
    if given.EncryptionAlgorithm == "SYMMETRIC_DEFAULT":
        blob, key = await kms.seal(given.KeyId, given.Plaintext, given.EncryptionContext)
    else:
        blob, key = await kms.encrypt_asymmetric(
            given.KeyId, given.Plaintext, given.EncryptionAlgorithm, given.EncryptionContext
        )
    _dry_run(given.DryRun)
    return {"CiphertextBlob": _blob(blob), "KeyId": key.arn, "EncryptionAlgorithm": given.EncryptionAlgorithm}


async def decrypt(request: web.Request) -> dict[str, Any]:
    """A symmetric ciphertext names its key; an RSAES_OAEP_* one needs the KeyId and the algorithm it was made with.
    A KeyId is authorized too, not only compared: else an identity allowed the ciphertext's key could tell an alias
    that exists (IncorrectKeyException) from one that does not (NotFoundException)."""
    given = await _parse(request, DecryptIn)
    kms = _kms(request)
    symmetric = given.EncryptionAlgorithm == "SYMMETRIC_DEFAULT"
    blob_key = kms.key_of_blob(given.CiphertextBlob) if symmetric else None
    await _authorize_each(
        request, "Decrypt", (blob_key, given.KeyId), context=given.EncryptionContext, grant_tokens=given.GrantTokens
    )
    if symmetric:
        plaintext, key = await kms.decrypt(given.CiphertextBlob, given.EncryptionContext, key_ref=given.KeyId)
    else:
        plaintext, key = await kms.decrypt_asymmetric(
            given.CiphertextBlob, given.KeyId, given.EncryptionAlgorithm, given.EncryptionContext
        )
    _dry_run(given.DryRun)
    return {"KeyId": key.arn, "Plaintext": _blob(plaintext), "EncryptionAlgorithm": given.EncryptionAlgorithm}


async def re_encrypt(request: web.Request) -> dict[str, Any]:
    """The source key (the ciphertext's, and a SourceKeyId, as Decrypt) needs ReEncryptFrom, the destination
    ReEncryptTo."""
    given = await _parse(request, ReEncryptIn)
    _symmetric(given.SourceEncryptionAlgorithm, given.DestinationEncryptionAlgorithm)
    await _authorize_each(
        request,
        "ReEncryptFrom",
        (_kms(request).key_of_blob(given.CiphertextBlob), given.SourceKeyId),
        context=given.SourceEncryptionContext,
        grant_tokens=given.GrantTokens,
    )
    await _authorize(
        request,
        "ReEncryptTo",
        given.DestinationKeyId,
        context=given.DestinationEncryptionContext,
        grant_tokens=given.GrantTokens,
    )
    blob, source, destination = await _kms(request).re_encrypt(
        given.CiphertextBlob,
        given.DestinationKeyId,
        source_context=given.SourceEncryptionContext,
        source_key_ref=given.SourceKeyId,
        destination_context=given.DestinationEncryptionContext,
    )
    _dry_run(given.DryRun)
    return {
        "CiphertextBlob": _blob(blob),
        "SourceKeyId": source.arn,
        "KeyId": destination.arn,
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }


async def _data_key(request: web.Request, operation: str) -> tuple[dict[str, Any], bytes]:
    """GenerateDataKey's output without its Plaintext, and the plaintext."""
    given = await _parse(request, GenerateDataKeyIn)
    await _authorize(request, operation, given.KeyId, context=given.EncryptionContext, grant_tokens=given.GrantTokens)
    if (given.KeySpec is None) == (given.NumberOfBytes is None):
        raise KmsValidationError("Please specify either KeySpec or NumberOfBytes, but not both")
    size = given.NumberOfBytes if given.KeySpec is None else DATA_KEY_BYTES[given.KeySpec]
    assert size is not None
    data_key = await _kms(request).generate_data_key(given.KeyId, given.EncryptionContext, number_of_bytes=size)
    _dry_run(given.DryRun)
    return {"CiphertextBlob": _blob(data_key.blob), "KeyId": data_key.key_arn}, data_key.plaintext


async def generate_data_key(request: web.Request) -> dict[str, Any]:
    output, plaintext = await _data_key(request, "GenerateDataKey")
    return {**output, "Plaintext": _blob(plaintext)}


async def generate_data_key_without_plaintext(request: web.Request) -> dict[str, Any]:
    return (await _data_key(request, "GenerateDataKeyWithoutPlaintext"))[0]


# --- asymmetric keys -------------------------------------------------------------------------------------------------


def _is_digest(message_type: str) -> bool:
    if message_type == "EXTERNAL_MU":
        raise KmsValidationError("MessageType EXTERNAL_MU is valid only with ML_DSA keys")
    return message_type == "DIGEST"


async def sign(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, SignIn)
    await _authorize(request, "Sign", given.KeyId, grant_tokens=given.GrantTokens)
    signature, key = await _kms(request).sign(
        given.KeyId, given.Message, given.SigningAlgorithm, digest=_is_digest(given.MessageType)
    )
    _dry_run(given.DryRun)
    return {"KeyId": key.arn, "Signature": _blob(signature), "SigningAlgorithm": given.SigningAlgorithm}


async def verify(request: web.Request) -> dict[str, Any]:
    """A valid signature answers SignatureValid true; an invalid one KMSInvalidSignatureException."""
    given = await _parse(request, VerifyIn)
    await _authorize(request, "Verify", given.KeyId, grant_tokens=given.GrantTokens)
    key = await _kms(request).verify(
        given.KeyId, given.Message, given.Signature, given.SigningAlgorithm, digest=_is_digest(given.MessageType)
    )
    _dry_run(given.DryRun)
    return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": given.SigningAlgorithm}


async def get_public_key(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, GetPublicKeyIn)
    await _authorize(request, "GetPublicKey", given.KeyId, grant_tokens=given.GrantTokens)
    public, key = await _kms(request).public_key(given.KeyId)
    return {
        "KeyId": key.arn,
        "PublicKey": _blob(public),
        "CustomerMasterKeySpec": key.spec,
        "KeySpec": key.spec,
        "KeyUsage": key.usage,
        **key.algorithms(),
    }


# --- grants and key policies -----------------------------------------------------------------------------------------


def _check_principal(member: str, principal: str | None) -> None:
    if principal is not None and not _PRINCIPAL.fullmatch(principal):
        raise InvalidArnError(f"{member} {principal[:256]} is not a valid IAM or STS principal ARN")


async def create_grant(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, CreateGrantIn)
    if given.GranteeServicePrincipal is not None or given.RetiringServicePrincipal is not None:
        raise UnsupportedOperationError("syncsvc has no AWS service principals: use GranteePrincipal")
    if given.GranteePrincipal is None:
        raise KmsValidationError("GranteePrincipal is required")
    _check_principal("GranteePrincipal", given.GranteePrincipal)
    _check_principal("RetiringPrincipal", given.RetiringPrincipal)
    await _authorize(request, "CreateGrant", given.KeyId, grant_tokens=given.GrantTokens)
    constraints = given.Constraints or GrantConstraints()
    grant = await _kms(request).create_grant(
        given.KeyId,
        grantee=given.GranteePrincipal,
        operations=given.Operations,
        retiring=given.RetiringPrincipal,
        name=given.Name,
        context_equals=constraints.EncryptionContextEquals,
        context_subset=constraints.EncryptionContextSubset,
        dry_run=given.DryRun,
    )
    _dry_run(given.DryRun)
    token = request.app[SIGNER].seal(_GRANT_PURPOSE, {"k": grant.key_id, "g": grant.grant_id})
    return {"GrantToken": token, "GrantId": grant.grant_id}


async def list_grants(request: web.Request) -> dict[str, Any]:
    """In grant id order; GrantId and GranteePrincipal filter."""
    given = await _parse(request, ListGrantsIn)
    if given.GranteeServicePrincipal is not None:
        raise UnsupportedOperationError("syncsvc has no AWS service principals")
    if given.GrantId is not None:
        check_grant_id(given.GrantId)
    await _authorize(request, "ListGrants", given.KeyId)
    kms = _kms(request)
    after = _after(request, "ListGrants", given.Marker)
    grants = [
        grant
        for grant in await kms.grants(given.KeyId)
        if (after is None or grant.grant_id > after)
        and given.GrantId in (None, grant.grant_id)
        and given.GranteePrincipal in (None, grant.grantee)
    ]
    entries = [(grant.entry(kms.key_arn(grant.key_id)), grant.grant_id) for grant in grants[: given.Limit + 1]]
    return _page(request, "ListGrants", "Grants", entries, given.Limit)


async def retire_grant(request: web.Request) -> dict[str, Any]:
    """By GrantToken, or by KeyId and GrantId (see the module docstring for who may)."""
    given = await _parse(request, RetireGrantIn)
    if given.GrantToken is not None:
        try:
            claims = request.app[SIGNER].open(_GRANT_PURPOSE, given.GrantToken, name="GrantToken")
        except InvalidParameterError:
            raise InvalidGrantTokenError("The grant token is not valid") from None
        key_ref, grant_id = str(claims["k"]), str(claims["g"])
    elif given.KeyId is not None and given.GrantId is not None:
        key_ref, grant_id = given.KeyId, given.GrantId
    else:
        raise KmsValidationError("RetireGrant takes a GrantToken, or a KeyId and a GrantId")
    caller = caller_of(request)
    await _kms(request).retire_grant(
        key_ref, grant_id, principal_of(caller), developer=caller.is_developer, dry_run=given.DryRun
    )
    _dry_run(given.DryRun)
    return {}


async def revoke_grant(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, RevokeGrantIn)
    await _authorize(request, "RevokeGrant", given.KeyId)
    kms = _kms(request)
    if given.DryRun:
        await kms.grant(given.KeyId, given.GrantId)
        _dry_run(True)
    await kms.remove_grant(given.KeyId, given.GrantId)
    return {}


def _policy_name(name: str) -> None:
    if name != "default":
        raise KmsNotFoundError(f"Policy {name[:128]} does not exist: a key has only the policy named default")


async def get_key_policy(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, GetKeyPolicyIn)
    await _authorize(request, "GetKeyPolicy", given.KeyId)
    _policy_name(given.PolicyName)
    return {"Policy": await _kms(request).key_policy(given.KeyId), "PolicyName": "default"}


async def put_key_policy(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, PutKeyPolicyIn)
    await _authorize(request, "PutKeyPolicy", given.KeyId)
    _policy_name(given.PolicyName)
    principal = principal_of(caller_of(request))
    await _kms(request).put_key_policy(
        given.KeyId, given.Policy, principal, bypass_lockout=given.BypassPolicyLockoutSafetyCheck
    )
    return {}


OPERATIONS: dict[str, Operation] = {
    "CreateKey": create_key,
    "DescribeKey": describe_key,
    "ListKeys": list_keys,
    "EnableKey": enable_key,
    "DisableKey": disable_key,
    "ScheduleKeyDeletion": schedule_key_deletion,
    "CancelKeyDeletion": cancel_key_deletion,
    "EnableKeyRotation": enable_key_rotation,
    "DisableKeyRotation": disable_key_rotation,
    "GetKeyRotationStatus": get_key_rotation_status,
    "RotateKeyOnDemand": rotate_key_on_demand,
    "CreateAlias": create_alias,
    "ListAliases": list_aliases,
    "Encrypt": encrypt,
    "Decrypt": decrypt,
    "ReEncrypt": re_encrypt,
    "GenerateDataKey": generate_data_key,
    "GenerateDataKeyWithoutPlaintext": generate_data_key_without_plaintext,
    "Sign": sign,
    "Verify": verify,
    "GetPublicKey": get_public_key,
    "CreateGrant": create_grant,
    "ListGrants": list_grants,
    "RetireGrant": retire_grant,
    "RevokeGrant": revoke_grant,
    "GetKeyPolicy": get_key_policy,
    "PutKeyPolicy": put_key_policy,
}
#: What an identity may call (a grant may allow it); everything else takes developer credentials.
GRANTABLE = frozenset(
    {
        "DescribeKey",
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "Sign",
        "Verify",
        "GetPublicKey",
        "RetireGrant",
    }
)


async def dispatch(request: web.Request) -> web.Response:
    target = request.headers.get("X-Amz-Target", "")
    name = target.removeprefix(TARGET_PREFIX)
    operation = OPERATIONS.get(name) if target.startswith(TARGET_PREFIX) else None
    if operation is None:
        raise UnknownTargetError(f"Operation '{target[:100]}' is not supported")
    caller = caller_of(request)
    if not caller.is_developer and (caller.identity_id is None or name not in GRANTABLE):
        raise KmsAccessDeniedError(
            f"Identity {caller.identity_id} is not authorized to perform: kms:{target.removeprefix(TARGET_PREFIX)} "
            "(KMS takes developer credentials)"
        )
    return respond(await operation(request), content_type=AMZ_JSON)
