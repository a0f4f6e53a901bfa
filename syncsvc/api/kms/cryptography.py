"""The KMS operations that use a key's material: Encrypt, Decrypt, ReEncrypt, GenerateDataKey*, Sign, Verify,
GetPublicKey, GenerateMac and VerifyMac.

Each checks the caller against every key the request names (``Services.key_access``: key policy and grants, with the
request's encryption context and grant tokens), calls ``KeyService.public.crypto`` and answers its blobs as base64.
Symmetric keys take SYMMETRIC_DEFAULT; asymmetric keys (RSA_2048/3072/4096, ECC_NIST_P256/P384/P521,
ECC_SECG_P256K1) serve Sign, Verify, GetPublicKey, and (RSA ENCRYPT_DECRYPT) Encrypt and Decrypt with RSAES_OAEP_*;
ReEncrypt stays symmetric only. HMAC keys (HMAC_224/256/384/512) serve GenerateMac and VerifyMac only.
"""

from __future__ import annotations

import base64

from syncsvc.api.kms.inputs import (
    DecryptIn,
    EncryptIn,
    GenerateDataKeyIn,
    GenerateMacIn,
    GetPublicKeyIn,
    ReEncryptIn,
    SignIn,
    VerifyIn,
    VerifyMacIn,
)
from syncsvc.api.kms.outputs import (
    DataKeyOut,
    DecryptOut,
    EncryptOut,
    GenerateMacOut,
    PlaintextDataKeyOut,
    PublicKeyOut,
    ReEncryptOut,
    SignOut,
    VerifyMacOut,
    VerifyOut,
)
from syncsvc.api.operations import Call
from syncsvc.errors import InvalidKeyUsageError, KmsValidationError
from syncsvc.kms.crypto import DataKey, key_of_blob
from syncsvc.runtime import Services

#: GenerateDataKey's KeySpec -> bytes
DATA_KEY_BYTES = {"AES_256": 32, "AES_128": 16}


def _blob(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


async def encrypt(services: Services, call: Call[EncryptIn]) -> EncryptOut:
    """SYMMETRIC_DEFAULT (the default) with a symmetric key; RSAES_OAEP_* with an RSA ENCRYPT_DECRYPT key."""
    given = call.given
    await services.key_access.authorize(
        call.caller, "Encrypt", given.KeyId, context=given.EncryptionContext, grant_tokens=given.GrantTokens
    )
    crypto = services.kms.public.crypto
    if given.EncryptionAlgorithm == "SYMMETRIC_DEFAULT":
        blob, key = await crypto.seal(given.KeyId, given.Plaintext, given.EncryptionContext)
    else:
        blob, key = await crypto.encrypt_asymmetric(
            given.KeyId, given.Plaintext, given.EncryptionAlgorithm, given.EncryptionContext
        )
    return {"CiphertextBlob": _blob(blob), "KeyId": key.arn, "EncryptionAlgorithm": given.EncryptionAlgorithm}


async def decrypt(services: Services, call: Call[DecryptIn]) -> DecryptOut:
    """A symmetric ciphertext names its key; an RSAES_OAEP_* one needs the KeyId and the algorithm it was made with.
    A KeyId is authorized too, not only compared: else an identity allowed the ciphertext's key could tell an alias
    that exists (IncorrectKeyException) from one that does not (NotFoundException)."""
    given = call.given
    symmetric = given.EncryptionAlgorithm == "SYMMETRIC_DEFAULT"
    await services.key_access.authorize_each(
        call.caller,
        "Decrypt",
        (key_of_blob(given.CiphertextBlob) if symmetric else None, given.KeyId),
        context=given.EncryptionContext,
        grant_tokens=given.GrantTokens,
    )
    crypto = services.kms.public.crypto
    if symmetric:
        plaintext, key = await crypto.decrypt(given.CiphertextBlob, given.EncryptionContext, key_ref=given.KeyId)
    else:
        plaintext, key = await crypto.decrypt_asymmetric(
            given.CiphertextBlob, given.KeyId, given.EncryptionAlgorithm, given.EncryptionContext
        )
    return {"KeyId": key.arn, "Plaintext": _blob(plaintext), "EncryptionAlgorithm": given.EncryptionAlgorithm}


async def re_encrypt(services: Services, call: Call[ReEncryptIn]) -> ReEncryptOut:
    """The source key (the ciphertext's, and a SourceKeyId, as Decrypt) needs ReEncryptFrom, the destination
    ReEncryptTo."""
    given, access = call.given, services.key_access
    for algorithm in (given.SourceEncryptionAlgorithm, given.DestinationEncryptionAlgorithm):
        if algorithm != "SYMMETRIC_DEFAULT":
            raise InvalidKeyUsageError(f"{algorithm} needs an asymmetric key; ReEncrypt takes SYMMETRIC_DEFAULT only")
    await access.authorize_each(
        call.caller,
        "ReEncryptFrom",
        (key_of_blob(given.CiphertextBlob), given.SourceKeyId),
        context=given.SourceEncryptionContext,
        grant_tokens=given.GrantTokens,
    )
    await access.authorize(
        call.caller,
        "ReEncryptTo",
        given.DestinationKeyId,
        context=given.DestinationEncryptionContext,
        grant_tokens=given.GrantTokens,
    )
    blob, source, destination = await services.kms.public.crypto.re_encrypt(
        given.CiphertextBlob,
        given.DestinationKeyId,
        source_context=given.SourceEncryptionContext,
        source_key_ref=given.SourceKeyId,
        destination_context=given.DestinationEncryptionContext,
    )
    return {
        "CiphertextBlob": _blob(blob),
        "SourceKeyId": source.arn,
        "KeyId": destination.arn,
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }


async def _data_key(services: Services, call: Call[GenerateDataKeyIn], operation: str) -> DataKey:
    given = call.given
    await services.key_access.authorize(
        call.caller, operation, given.KeyId, context=given.EncryptionContext, grant_tokens=given.GrantTokens
    )
    if given.KeySpec is not None and given.NumberOfBytes is None:
        size = DATA_KEY_BYTES[given.KeySpec]
    elif given.KeySpec is None and given.NumberOfBytes is not None:
        size = given.NumberOfBytes
    else:
        raise KmsValidationError("Please specify either KeySpec or NumberOfBytes, but not both")
    return await services.kms.public.crypto.generate_data_key(
        given.KeyId, given.EncryptionContext, number_of_bytes=size
    )


async def generate_data_key(services: Services, call: Call[GenerateDataKeyIn]) -> PlaintextDataKeyOut:
    data_key = await _data_key(services, call, "GenerateDataKey")
    return {"CiphertextBlob": _blob(data_key.blob), "KeyId": data_key.key_arn, "Plaintext": _blob(data_key.plaintext)}


async def generate_data_key_without_plaintext(services: Services, call: Call[GenerateDataKeyIn]) -> DataKeyOut:
    data_key = await _data_key(services, call, "GenerateDataKeyWithoutPlaintext")
    return {"CiphertextBlob": _blob(data_key.blob), "KeyId": data_key.key_arn}


# --- asymmetric keys --------------------------------------------------------------------------------------------------


def _is_digest(message_type: str) -> bool:
    if message_type == "EXTERNAL_MU":
        raise KmsValidationError("MessageType EXTERNAL_MU is valid only with ML_DSA keys")
    return message_type == "DIGEST"


async def sign(services: Services, call: Call[SignIn]) -> SignOut:
    given = call.given
    await services.key_access.authorize(call.caller, "Sign", given.KeyId, grant_tokens=given.GrantTokens)
    signature, key = await services.kms.public.crypto.sign(
        given.KeyId, given.Message, given.SigningAlgorithm, digest=_is_digest(given.MessageType)
    )
    return {"KeyId": key.arn, "Signature": _blob(signature), "SigningAlgorithm": given.SigningAlgorithm}


async def verify(services: Services, call: Call[VerifyIn]) -> VerifyOut:
    """A valid signature answers SignatureValid true; an invalid one KMSInvalidSignatureException."""
    given = call.given
    await services.key_access.authorize(call.caller, "Verify", given.KeyId, grant_tokens=given.GrantTokens)
    key = await services.kms.public.crypto.verify(
        given.KeyId, given.Message, given.Signature, given.SigningAlgorithm, digest=_is_digest(given.MessageType)
    )
    return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": given.SigningAlgorithm}


async def get_public_key(services: Services, call: Call[GetPublicKeyIn]) -> PublicKeyOut:
    given = call.given
    await services.key_access.authorize(call.caller, "GetPublicKey", given.KeyId, grant_tokens=given.GrantTokens)
    public, key = await services.kms.public.crypto.public_key(given.KeyId)
    output: PublicKeyOut = {
        "KeyId": key.arn,
        "PublicKey": _blob(public),
        "CustomerMasterKeySpec": key.spec,
        "KeySpec": key.spec,
        "KeyUsage": key.usage,
    }
    algorithms = key.algorithms()
    if "EncryptionAlgorithms" in algorithms:
        output["EncryptionAlgorithms"] = algorithms["EncryptionAlgorithms"]
    if "SigningAlgorithms" in algorithms:
        output["SigningAlgorithms"] = algorithms["SigningAlgorithms"]
    return output


# --- HMAC keys --------------------------------------------------------------------------------------------------------


async def generate_mac(services: Services, call: Call[GenerateMacIn]) -> GenerateMacOut:
    given = call.given
    await services.key_access.authorize(call.caller, "GenerateMac", given.KeyId, grant_tokens=given.GrantTokens)
    mac, key = await services.kms.public.crypto.generate_mac(given.KeyId, given.Message, given.MacAlgorithm)
    return {"KeyId": key.arn, "Mac": _blob(mac), "MacAlgorithm": given.MacAlgorithm}


async def verify_mac(services: Services, call: Call[VerifyMacIn]) -> VerifyMacOut:
    """A matching MAC answers MacValid true; one that does not match KMSInvalidMacException."""
    given = call.given
    await services.key_access.authorize(call.caller, "VerifyMac", given.KeyId, grant_tokens=given.GrantTokens)
    key = await services.kms.public.crypto.verify_mac(given.KeyId, given.Message, given.Mac, given.MacAlgorithm)
    return {"KeyId": key.arn, "MacValid": True, "MacAlgorithm": given.MacAlgorithm}
