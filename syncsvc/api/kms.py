"""KMS (json 1.1): ``POST /`` routed by ``X-Amz-Target: TrentService.<Op>``, for developer credentials only.

Each operation parses its input model, calls :class:`~syncsvc.kms.service.KeyService` and returns its output dict.
Blobs (Plaintext, CiphertextBlob) are base64 on the wire and bytes in the models; dates are epoch seconds. A value
that breaks a constraint is KMS's ``ValidationException``; a member of the wrong JSON type, or a body that is not
JSON, a ``SerializationException``. Outputs name keys by ARN where KMS does (Encrypt, Decrypt, ReEncrypt,
GenerateDataKey*, ScheduleKeyDeletion, CancelKeyDeletion). ``DryRun: true`` runs the operation in full and answers
``DryRunOperationException`` instead of its result. :data:`OPERATIONS` is the surface's table of contents.

Asymmetric keys (RSA_2048, ECC_NIST_P256) serve Sign, Verify, GetPublicKey, and (RSA ENCRYPT_DECRYPT) Encrypt and
Decrypt with RSAES_OAEP_*; ReEncrypt stays symmetric only.

Accepted and ignored: Policy, BypassPolicyLockoutSafetyCheck and GrantTokens (syncsvc has no key policies or
grants: developer credentials may do everything).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from syncsvc.api.middleware import caller_of
from syncsvc.api.protocol import AMZ_JSON, KMS, SIGNER, body_of, respond, validation_error
from syncsvc.errors import (
    DryRunOperationError,
    InvalidKeyUsageError,
    InvalidMarkerError,
    InvalidParameterError,
    KmsAccessDeniedError,
    KmsValidationError,
    SerializationError,
    UnknownTargetError,
    UnsupportedOperationError,
)
from syncsvc.kms.model import DEFAULT_PENDING_WINDOW_DAYS, DEFAULT_ROTATION_DAYS, MasterKey

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


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, val_json_bytes="base64")


class Tag(Input):
    TagKey: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    TagValue: Annotated[str, StringConstraints(max_length=256)]


class CreateKeyIn(Input):
    Policy: Annotated[str, StringConstraints(min_length=1, max_length=131072)] | None = None
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
    key = await request.app[KMS].create_key(
        description=given.Description,
        spec=given.KeySpec or given.CustomerMasterKeySpec or "SYMMETRIC_DEFAULT",
        usage=given.KeyUsage,
        tags={tag.TagKey: tag.TagValue for tag in given.Tags},
    )
    return {"KeyMetadata": key.metadata()}


async def describe_key(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, DescribeKeyIn)
    return {"KeyMetadata": (await request.app[KMS].key(given.KeyId)).metadata()}


async def list_keys(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, ListKeysIn)
    kms = request.app[KMS]
    key_ids = await kms.key_ids(after=_after(request, "ListKeys", given.Marker), limit=given.Limit + 1)
    entries = [({"KeyId": key_id, "KeyArn": kms.key_arn(key_id)}, key_id) for key_id in key_ids]
    return _page(request, "ListKeys", "Keys", entries, given.Limit)


async def enable_key(request: web.Request) -> dict[str, Any]:
    await request.app[KMS].enable((await _parse(request, KeyIdIn)).KeyId)
    return {}


async def disable_key(request: web.Request) -> dict[str, Any]:
    await request.app[KMS].disable((await _parse(request, KeyIdIn)).KeyId)
    return {}


async def schedule_key_deletion(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, ScheduleKeyDeletionIn)
    key = await request.app[KMS].schedule_deletion(given.KeyId, given.PendingWindowInDays)
    assert key.deletion_ms is not None
    return {
        "KeyId": key.arn,
        "DeletionDate": key.deletion_ms / 1000,
        "KeyState": key.state,
        "PendingWindowInDays": key.pending_window_days,
    }


async def cancel_key_deletion(request: web.Request) -> dict[str, Any]:
    key = await request.app[KMS].cancel_deletion((await _parse(request, KeyIdIn)).KeyId)
    return {"KeyId": key.arn}


# --- rotation --------------------------------------------------------------------------------------------------------


async def enable_key_rotation(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, EnableKeyRotationIn)
    await request.app[KMS].enable_rotation(given.KeyId, given.RotationPeriodInDays)
    return {}


async def disable_key_rotation(request: web.Request) -> dict[str, Any]:
    await request.app[KMS].disable_rotation((await _parse(request, KeyIdIn)).KeyId)
    return {}


async def get_key_rotation_status(request: web.Request) -> dict[str, Any]:
    return _rotation_status(await request.app[KMS].key((await _parse(request, KeyIdIn)).KeyId))


async def rotate_key_on_demand(request: web.Request) -> dict[str, Any]:
    key = await request.app[KMS].rotate_on_demand((await _parse(request, KeyIdIn)).KeyId)
    return {"KeyId": key.key_id}


# --- aliases ---------------------------------------------------------------------------------------------------------


async def create_alias(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, CreateAliasIn)
    await request.app[KMS].create_alias(given.AliasName, given.TargetKeyId)
    return {}


async def list_aliases(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, ListAliasesIn)
    kms = request.app[KMS]
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
    kms = request.app[KMS]
    if given.EncryptionAlgorithm == "SYMMETRIC_DEFAULT":
        blob, key = await kms.seal(given.KeyId, given.Plaintext, given.EncryptionContext)
    else:
        blob, key = await kms.encrypt_asymmetric(
            given.KeyId, given.Plaintext, given.EncryptionAlgorithm, given.EncryptionContext
        )
    _dry_run(given.DryRun)
    return {"CiphertextBlob": _blob(blob), "KeyId": key.arn, "EncryptionAlgorithm": given.EncryptionAlgorithm}


async def decrypt(request: web.Request) -> dict[str, Any]:
    """A symmetric ciphertext names its key; an RSAES_OAEP_* one needs the KeyId and the algorithm it was made with."""
    given = await _parse(request, DecryptIn)
    kms = request.app[KMS]
    if given.EncryptionAlgorithm == "SYMMETRIC_DEFAULT":
        plaintext, key = await kms.decrypt(given.CiphertextBlob, given.EncryptionContext, key_ref=given.KeyId)
    else:
        plaintext, key = await kms.decrypt_asymmetric(
            given.CiphertextBlob, given.KeyId, given.EncryptionAlgorithm, given.EncryptionContext
        )
    _dry_run(given.DryRun)
    return {"KeyId": key.arn, "Plaintext": _blob(plaintext), "EncryptionAlgorithm": given.EncryptionAlgorithm}


async def re_encrypt(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, ReEncryptIn)
    _symmetric(given.SourceEncryptionAlgorithm, given.DestinationEncryptionAlgorithm)
    blob, source, destination = await request.app[KMS].re_encrypt(
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


async def _data_key(request: web.Request) -> tuple[dict[str, Any], bytes]:
    """GenerateDataKey's output without its Plaintext, and the plaintext."""
    given = await _parse(request, GenerateDataKeyIn)
    if (given.KeySpec is None) == (given.NumberOfBytes is None):
        raise KmsValidationError("Please specify either KeySpec or NumberOfBytes, but not both")
    size = given.NumberOfBytes if given.KeySpec is None else DATA_KEY_BYTES[given.KeySpec]
    assert size is not None
    data_key = await request.app[KMS].generate_data_key(given.KeyId, given.EncryptionContext, number_of_bytes=size)
    _dry_run(given.DryRun)
    return {"CiphertextBlob": _blob(data_key.blob), "KeyId": data_key.key_arn}, data_key.plaintext


async def generate_data_key(request: web.Request) -> dict[str, Any]:
    output, plaintext = await _data_key(request)
    return {**output, "Plaintext": _blob(plaintext)}


async def generate_data_key_without_plaintext(request: web.Request) -> dict[str, Any]:
    return (await _data_key(request))[0]


# --- asymmetric keys -------------------------------------------------------------------------------------------------


def _is_digest(message_type: str) -> bool:
    if message_type == "EXTERNAL_MU":
        raise KmsValidationError("MessageType EXTERNAL_MU is valid only with ML_DSA keys")
    return message_type == "DIGEST"


async def sign(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, SignIn)
    signature, key = await request.app[KMS].sign(
        given.KeyId, given.Message, given.SigningAlgorithm, digest=_is_digest(given.MessageType)
    )
    _dry_run(given.DryRun)
    return {"KeyId": key.arn, "Signature": _blob(signature), "SigningAlgorithm": given.SigningAlgorithm}


async def verify(request: web.Request) -> dict[str, Any]:
    """A valid signature answers SignatureValid true; an invalid one KMSInvalidSignatureException."""
    given = await _parse(request, VerifyIn)
    key = await request.app[KMS].verify(
        given.KeyId, given.Message, given.Signature, given.SigningAlgorithm, digest=_is_digest(given.MessageType)
    )
    _dry_run(given.DryRun)
    return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": given.SigningAlgorithm}


async def get_public_key(request: web.Request) -> dict[str, Any]:
    given = await _parse(request, GetPublicKeyIn)
    public, key = await request.app[KMS].public_key(given.KeyId)
    return {
        "KeyId": key.arn,
        "PublicKey": _blob(public),
        "CustomerMasterKeySpec": key.spec,
        "KeySpec": key.spec,
        "KeyUsage": key.usage,
        **key.algorithms(),
    }


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
}


async def dispatch(request: web.Request) -> web.Response:
    target = request.headers.get("X-Amz-Target", "")
    operation = OPERATIONS.get(target.removeprefix(TARGET_PREFIX)) if target.startswith(TARGET_PREFIX) else None
    if operation is None:
        raise UnknownTargetError(f"Operation '{target[:100]}' is not supported")
    caller = caller_of(request)
    if not caller.is_developer:
        raise KmsAccessDeniedError(
            f"Identity {caller.identity_id} is not authorized to perform: kms:{target.removeprefix(TARGET_PREFIX)} "
            "(KMS takes developer credentials)"
        )
    return respond(await operation(request), content_type=AMZ_JSON)
