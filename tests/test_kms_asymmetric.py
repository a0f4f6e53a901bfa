"""Asymmetric KMS keys (RSA_2048, ECC_NIST_P256) driven by an unmodified boto3 ``kms`` client: CreateKey's specs
and usages, Sign/Verify with every algorithm (signatures checked independently with ``cryptography`` against
GetPublicKey's DER), RSAES-OAEP Encrypt/Decrypt, and each refusal by its KMS name. Real Redis, nothing mocked."""

from __future__ import annotations

import hashlib
from typing import Any
from unittest.mock import ANY

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from redis.asyncio import Redis

from syncsvc import rediskeys
from syncsvc.kms.model import ENCRYPTION_ALGORITHMS, SIGNING_ALGORITHMS
from syncsvc.kms.root import RootKey
from tests.conftest import ROOT_KEY_FILE, call
from tests.kms_calls import arn, code_of, key_metadata, new_key, refusal

RSA_SIGNING = list(SIGNING_ALGORITHMS["RSA_2048"])
OAEP = list(ENCRYPTION_ALGORITHMS["RSA_2048"])
#: Every (spec, algorithm), except that the larger RSA keys (seconds to generate, one per test) sign with one PSS and
#: one PKCS#1 v1.5 algorithm only: how an algorithm pads and hashes does not depend on the key's size.
SIGNING_KEYS = [
    (spec, algorithm)
    for spec, algorithms in SIGNING_ALGORITHMS.items()
    for algorithm in (algorithms[:1] + algorithms[-1:] if spec in ("RSA_3072", "RSA_4096") else algorithms)
]
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_1": hashes.SHA1,
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}
MESSAGE = b"the record set of identity us-east-1:42"


def hash_of(algorithm: str) -> hashes.HashAlgorithm:
    return HASHES["SHA_" + algorithm.rsplit("_", 1)[1]]()


def digest_of(algorithm: str, message: bytes) -> bytes:
    return hashlib.new(hash_of(algorithm).name, message).digest()


async def public_key_of(kms: Any, key_id: str) -> Any:
    der = (await call(kms, "get_public_key", KeyId=key_id))["PublicKey"]
    return serialization.load_der_public_key(der)


def verify_locally(public: Any, algorithm: str, message: bytes, signature: bytes) -> None:
    """Raises InvalidSignature unless ``signature`` is KMS's signature of ``message`` (checked without the server)."""
    chosen = hash_of(algorithm)
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, message, ec.ECDSA(chosen))
    elif algorithm.startswith("RSASSA_PSS_"):
        public.verify(signature, message, padding.PSS(mgf=padding.MGF1(chosen), salt_length=chosen.digest_size), chosen)
    else:
        public.verify(signature, message, padding.PKCS1v15(), chosen)


def oaep(algorithm: str) -> padding.OAEP:
    chosen = hash_of(algorithm)
    return padding.OAEP(mgf=padding.MGF1(chosen), algorithm=chosen, label=None)


# --- CreateKey and GetPublicKey --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "usage", "algorithms"),
    [
        ("RSA_2048", "ENCRYPT_DECRYPT", {"EncryptionAlgorithms": OAEP}),
        ("RSA_2048", "SIGN_VERIFY", {"SigningAlgorithms": RSA_SIGNING}),
        ("ECC_NIST_P256", "SIGN_VERIFY", {"SigningAlgorithms": ["ECDSA_SHA_256"]}),
        ("RSA_3072", "ENCRYPT_DECRYPT", {"EncryptionAlgorithms": OAEP}),
        ("RSA_3072", "SIGN_VERIFY", {"SigningAlgorithms": RSA_SIGNING}),
        ("RSA_4096", "ENCRYPT_DECRYPT", {"EncryptionAlgorithms": OAEP}),
        ("RSA_4096", "SIGN_VERIFY", {"SigningAlgorithms": RSA_SIGNING}),
        ("ECC_NIST_P384", "SIGN_VERIFY", {"SigningAlgorithms": ["ECDSA_SHA_384"]}),
        ("ECC_NIST_P521", "SIGN_VERIFY", {"SigningAlgorithms": ["ECDSA_SHA_512"]}),
        ("ECC_SECG_P256K1", "SIGN_VERIFY", {"SigningAlgorithms": ["ECDSA_SHA_256"]}),
    ],
)
async def test_create_key_makes_each_asymmetric_spec(
    kms: Any, spec: str, usage: str, algorithms: dict[str, list[str]]
) -> None:
    created = (await call(kms, "create_key", KeySpec=spec, KeyUsage=usage))["KeyMetadata"]

    key_id = created["KeyId"]
    assert created == key_metadata(key_id, spec, usage, **algorithms)
    assert (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"] == created


async def test_the_deprecated_customer_master_key_spec_makes_the_same_key(kms: Any) -> None:
    created = await call(kms, "create_key", CustomerMasterKeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")

    assert created["KeyMetadata"]["KeySpec"] == "ECC_NIST_P256"


@pytest.mark.parametrize(
    ("spec", "usage", "expected"),
    [
        ("ECC_NIST_P256", "ENCRYPT_DECRYPT", "ValidationException"),
        ("SYMMETRIC_DEFAULT", "SIGN_VERIFY", "ValidationException"),
        ("RSA_2048", "GENERATE_VERIFY_MAC", "ValidationException"),
        ("HMAC_256", "SIGN_VERIFY", "ValidationException"),
        ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "UnsupportedOperationException"),
        ("ML_DSA_44", "SIGN_VERIFY", "UnsupportedOperationException"),
    ],
)
async def test_create_key_refuses_other_specs_and_usages(kms: Any, spec: str, usage: str, expected: str) -> None:
    assert await code_of(kms, "create_key", KeySpec=spec, KeyUsage=usage) == (400, expected)


@pytest.mark.parametrize(
    ("spec", "usage", "key_type"),
    [
        ("RSA_2048", "ENCRYPT_DECRYPT", rsa.RSAPublicKey),
        ("RSA_2048", "SIGN_VERIFY", rsa.RSAPublicKey),
        ("ECC_NIST_P256", "SIGN_VERIFY", ec.EllipticCurvePublicKey),
    ],
)
async def test_get_public_key_answers_der_subject_public_key_info(
    kms: Any, spec: str, usage: str, key_type: type[Any]
) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage=usage)

    answer = await call(kms, "get_public_key", KeyId=key_id)

    public = serialization.load_der_public_key(answer["PublicKey"])
    assert isinstance(public, key_type)
    assert public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == answer["PublicKey"]
    if isinstance(public, rsa.RSAPublicKey):
        assert public.key_size == 2048
    else:
        assert isinstance(public.curve, ec.SECP256R1)
    described = (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]
    assert answer == {
        "KeyId": arn(key_id),
        "PublicKey": answer["PublicKey"],
        "CustomerMasterKeySpec": spec,
        "KeySpec": spec,
        "KeyUsage": usage,
        **{name: described[name] for name in ("EncryptionAlgorithms", "SigningAlgorithms") if name in described},
    }


async def test_get_public_key_of_a_symmetric_key_is_unsupported(kms: Any) -> None:
    key_id = await new_key(kms)

    assert await code_of(kms, "get_public_key", KeyId=key_id) == (400, "UnsupportedOperationException")


# --- Sign and Verify -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "algorithm"), SIGNING_KEYS)
async def test_sign_then_verify_with_each_algorithm(kms: Any, spec: str, algorithm: str) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage="SIGN_VERIFY")

    signed = await call(kms, "sign", KeyId=key_id, Message=MESSAGE, SigningAlgorithm=algorithm)

    assert signed == {"KeyId": arn(key_id), "Signature": ANY, "SigningAlgorithm": algorithm}
    verified = await call(
        kms, "verify", KeyId=key_id, Message=MESSAGE, Signature=signed["Signature"], SigningAlgorithm=algorithm
    )
    assert verified == {"KeyId": arn(key_id), "SignatureValid": True, "SigningAlgorithm": algorithm}
    verify_locally(await public_key_of(kms, key_id), algorithm, MESSAGE, signed["Signature"])


@pytest.mark.parametrize(("spec", "algorithm"), SIGNING_KEYS)
async def test_a_digest_message_signs_as_its_raw_message_would(kms: Any, spec: str, algorithm: str) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage="SIGN_VERIFY")
    digest = digest_of(algorithm, MESSAGE)

    signed = await call(kms, "sign", KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm)

    verify_locally(await public_key_of(kms, key_id), algorithm, MESSAGE, signed["Signature"])
    raw = await call(kms, "sign", KeyId=key_id, Message=MESSAGE, SigningAlgorithm=algorithm)
    verified = await call(
        kms,
        "verify",
        KeyId=key_id,
        Message=digest,
        MessageType="DIGEST",
        Signature=raw["Signature"],
        SigningAlgorithm=algorithm,
    )
    assert verified["SignatureValid"] is True


async def test_an_ecdsa_signature_is_der_encoded(kms: Any) -> None:
    key_id = await new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")

    signature = (await call(kms, "sign", KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256"))["Signature"]

    r, s = decode_dss_signature(signature)  # a DER SEQUENCE of two INTEGERs, as KMS returns ECDSA signatures
    assert encode_dss_signature(r, s) == signature


@pytest.mark.parametrize(("spec", "algorithm"), SIGNING_KEYS)
async def test_verify_of_a_tampered_message_or_signature_is_an_invalid_signature(
    kms: Any, spec: str, algorithm: str
) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage="SIGN_VERIFY")
    signature = (await call(kms, "sign", KeyId=key_id, Message=MESSAGE, SigningAlgorithm=algorithm))["Signature"]
    tampered = signature[:-1] + bytes([signature[-1] ^ 1])

    for message, given in ((MESSAGE + b"!", signature), (MESSAGE, tampered)):
        refused = await code_of(
            kms, "verify", KeyId=key_id, Message=message, Signature=given, SigningAlgorithm=algorithm
        )
        assert refused == (400, "KMSInvalidSignatureException")


async def test_verify_with_another_algorithm_than_the_signature_is_an_invalid_signature(kms: Any) -> None:
    key_id = await new_key(kms, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    signed = await call(kms, "sign", KeyId=key_id, Message=MESSAGE, SigningAlgorithm="RSASSA_PSS_SHA_256")

    refused = await code_of(
        kms,
        "verify",
        KeyId=key_id,
        Message=MESSAGE,
        Signature=signed["Signature"],
        SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
    )

    assert refused == (400, "KMSInvalidSignatureException")


@pytest.mark.parametrize(
    ("spec", "algorithm"), [("RSA_2048", "RSASSA_PSS_SHA_384"), ("ECC_NIST_P256", "ECDSA_SHA_256")]
)
@pytest.mark.parametrize("size", [1, 20, 31, 64])
async def test_a_digest_of_the_wrong_length_is_a_validation_error(
    kms: Any, spec: str, algorithm: str, size: int
) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage="SIGN_VERIFY")

    refused = await code_of(
        kms, "sign", KeyId=key_id, Message=b"d" * size, MessageType="DIGEST", SigningAlgorithm=algorithm
    )

    assert refused == (400, "ValidationException")


async def test_sign_refuses_a_message_over_4096_bytes(kms: Any) -> None:
    key_id = await new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")

    refused = await code_of(kms, "sign", KeyId=key_id, Message=b"m" * 4097, SigningAlgorithm="ECDSA_SHA_256")

    assert refused == (400, "ValidationException")
    assert (await call(kms, "sign", KeyId=key_id, Message=b"m" * 4096, SigningAlgorithm="ECDSA_SHA_256"))["Signature"]


@pytest.mark.parametrize(
    ("spec", "usage", "algorithm"),
    [
        ("ECC_NIST_P256", "SIGN_VERIFY", "ECDSA_SHA_384"),
        ("ECC_NIST_P256", "SIGN_VERIFY", "RSASSA_PSS_SHA_256"),
        ("RSA_2048", "SIGN_VERIFY", "ECDSA_SHA_256"),
        ("RSA_2048", "ENCRYPT_DECRYPT", "RSASSA_PSS_SHA_256"),
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "RSASSA_PSS_SHA_256"),
    ],
)
async def test_sign_and_verify_with_a_key_or_algorithm_that_does_not_sign_is_invalid_key_usage(
    kms: Any, spec: str, usage: str, algorithm: str
) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage=usage)

    assert await code_of(kms, "sign", KeyId=key_id, Message=MESSAGE, SigningAlgorithm=algorithm) == (
        400,
        "InvalidKeyUsageException",
    )
    refused = await code_of(
        kms, "verify", KeyId=key_id, Message=MESSAGE, Signature=b"s" * 64, SigningAlgorithm=algorithm
    )
    assert refused == (400, "InvalidKeyUsageException")


async def test_sign_by_alias_and_dry_run(kms: Any) -> None:
    key_id = await new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    await call(kms, "create_alias", AliasName="alias/signer", TargetKeyId=key_id)

    signed = await call(kms, "sign", KeyId="alias/signer", Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256")

    assert signed["KeyId"] == arn(key_id)
    refused = await code_of(kms, "sign", KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256", DryRun=True)
    assert refused == (400, "DryRunOperationException")


# --- Encrypt and Decrypt ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", OAEP)
async def test_rsa_encrypt_then_decrypt_round_trips(kms: Any, algorithm: str) -> None:
    key_id = await new_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")

    encrypted = await call(kms, "encrypt", KeyId=key_id, Plaintext=b"secret", EncryptionAlgorithm=algorithm)

    assert encrypted == {"CiphertextBlob": ANY, "KeyId": arn(key_id), "EncryptionAlgorithm": algorithm}
    assert len(encrypted["CiphertextBlob"]) == 256
    decrypted = await call(
        kms, "decrypt", CiphertextBlob=encrypted["CiphertextBlob"], KeyId=key_id, EncryptionAlgorithm=algorithm
    )
    assert decrypted == {"KeyId": arn(key_id), "Plaintext": b"secret", "EncryptionAlgorithm": algorithm}


@pytest.mark.parametrize("algorithm", OAEP)
async def test_a_ciphertext_made_locally_with_the_public_key_decrypts_on_the_server(kms: Any, algorithm: str) -> None:
    key_id = await new_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    public = await public_key_of(kms, key_id)
    blob = public.encrypt(b"made offline", oaep(algorithm))

    decrypted = await call(kms, "decrypt", CiphertextBlob=blob, KeyId=key_id, EncryptionAlgorithm=algorithm)

    assert decrypted["Plaintext"] == b"made offline"


@pytest.mark.parametrize(("algorithm", "limit"), [("RSAES_OAEP_SHA_1", 214), ("RSAES_OAEP_SHA_256", 190)])
async def test_rsa_encrypt_takes_plaintexts_up_to_the_algorithms_limit(kms: Any, algorithm: str, limit: int) -> None:
    key_id = await new_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")

    fits = await call(kms, "encrypt", KeyId=key_id, Plaintext=b"p" * limit, EncryptionAlgorithm=algorithm)

    assert fits["CiphertextBlob"]
    refused = await code_of(kms, "encrypt", KeyId=key_id, Plaintext=b"p" * (limit + 1), EncryptionAlgorithm=algorithm)
    assert refused == (400, "ValidationException")


async def test_rsa_encrypt_and_decrypt_take_no_encryption_context(kms: Any) -> None:
    key_id = await new_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    algorithm = "RSAES_OAEP_SHA_256"
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm=algorithm))["CiphertextBlob"]

    context = {"purpose": "test"}
    assert await code_of(
        kms, "encrypt", KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm=algorithm, EncryptionContext=context
    ) == (400, "ValidationException")
    assert await code_of(
        kms, "decrypt", CiphertextBlob=blob, KeyId=key_id, EncryptionAlgorithm=algorithm, EncryptionContext=context
    ) == (400, "ValidationException")


async def test_rsa_decrypt_needs_the_key_id_and_the_algorithm_the_ciphertext_was_made_with(kms: Any) -> None:
    key_id = await new_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    other = await new_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256"))[
        "CiphertextBlob"
    ]

    invalid = (400, "InvalidCiphertextException")
    assert await code_of(kms, "decrypt", CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256") == invalid
    assert await code_of(kms, "decrypt", CiphertextBlob=blob, KeyId=key_id) == invalid
    assert (
        await code_of(kms, "decrypt", CiphertextBlob=blob, KeyId=key_id, EncryptionAlgorithm="RSAES_OAEP_SHA_1")
        == invalid
    )
    assert (
        await code_of(kms, "decrypt", CiphertextBlob=blob, KeyId=other, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
        == invalid
    )


@pytest.mark.parametrize(
    ("spec", "usage", "algorithm"),
    [
        ("RSA_2048", "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT"),
        ("RSA_2048", "ENCRYPT_DECRYPT", "SM2PKE"),
        ("RSA_2048", "SIGN_VERIFY", "RSAES_OAEP_SHA_256"),
        ("ECC_NIST_P256", "SIGN_VERIFY", "RSAES_OAEP_SHA_256"),
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "RSAES_OAEP_SHA_1"),
    ],
)
async def test_encrypt_with_an_algorithm_the_key_does_not_take_is_invalid_key_usage(
    kms: Any, spec: str, usage: str, algorithm: str
) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage=usage)

    refused = await code_of(kms, "encrypt", KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm=algorithm)

    assert refused == (400, "InvalidKeyUsageException")


# --- symmetric-only operations, states, storage ----------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "usage"), [("RSA_2048", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY")])
async def test_symmetric_only_operations_refuse_an_asymmetric_key(kms: Any, spec: str, usage: str) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage=usage)
    symmetric = await new_key(kms)
    blob = (await call(kms, "encrypt", KeyId=symmetric, Plaintext=b"x"))["CiphertextBlob"]

    usage_error = (400, "InvalidKeyUsageException")
    assert await code_of(kms, "generate_data_key", KeyId=key_id, KeySpec="AES_256") == usage_error
    assert await code_of(kms, "generate_data_key_without_plaintext", KeyId=key_id, NumberOfBytes=16) == usage_error
    assert await code_of(kms, "re_encrypt", CiphertextBlob=blob, DestinationKeyId=key_id) == usage_error
    unsupported = (400, "UnsupportedOperationException")
    assert await code_of(kms, "enable_key_rotation", KeyId=key_id) == unsupported
    assert await code_of(kms, "disable_key_rotation", KeyId=key_id) == unsupported
    assert await code_of(kms, "rotate_key_on_demand", KeyId=key_id) == unsupported


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("sign", {"Message": MESSAGE, "SigningAlgorithm": "ECDSA_SHA_256"}),
        ("verify", {"Message": MESSAGE, "Signature": b"s" * 70, "SigningAlgorithm": "ECDSA_SHA_256"}),
        ("get_public_key", {}),
    ],
)
async def test_a_disabled_signing_key_is_refused_until_enabled(
    kms: Any, operation: str, params: dict[str, Any]
) -> None:
    key_id = await new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    await call(kms, "disable_key", KeyId=key_id)

    assert await code_of(kms, operation, KeyId=key_id, **params) == (400, "DisabledException")

    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)
    assert await code_of(kms, operation, KeyId=key_id, **params) == (400, "KMSInvalidStateException")


async def test_a_disabled_rsa_key_refuses_encrypt_and_decrypt(kms: Any) -> None:
    key_id = await new_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    algorithm = "RSAES_OAEP_SHA_1"
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm=algorithm))["CiphertextBlob"]
    await call(kms, "disable_key", KeyId=key_id)

    disabled = (400, "DisabledException")
    assert await code_of(kms, "encrypt", KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm=algorithm) == disabled
    assert await code_of(kms, "decrypt", CiphertextBlob=blob, KeyId=key_id, EncryptionAlgorithm=algorithm) == disabled

    await call(kms, "enable_key", KeyId=key_id)
    decrypted = await call(kms, "decrypt", CiphertextBlob=blob, KeyId=key_id, EncryptionAlgorithm=algorithm)
    assert decrypted["Plaintext"] == b"x"


@pytest.mark.parametrize(("spec", "usage"), [("RSA_2048", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY")])
async def test_the_private_key_is_stored_only_wrapped(kms: Any, redis_client: Redis, spec: str, usage: str) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage=usage)
    stored = await redis_client.hgetall(rediskeys.kms_key(key_id))

    # What the root key unwraps is the private key (DER PKCS#8) whose public half GetPublicKey answers...
    wrapped = stored[b"v1"]
    assert isinstance(wrapped, bytes)
    private_der = await RootKey.from_file(ROOT_KEY_FILE).unwrap(wrapped, key_id, 1)
    private = serialization.load_der_private_key(private_der, password=None)
    public_der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert public_der == (await call(kms, "get_public_key", KeyId=key_id))["PublicKey"]
    # ...and neither it nor its secret part is anywhere in Redis in the clear.
    secret = _secret_bytes(private)
    every_value = list(stored.values())
    async for name in redis_client.scan_iter():
        if await redis_client.type(name) == b"string":
            every_value.append(await redis_client.get(name) or b"")
    for value in every_value:
        assert isinstance(value, bytes)
        assert private_der not in value
        assert secret not in value


def _secret_bytes(private: Any) -> bytes:
    """The private scalar or exponent, big-endian (what must never be stored in the clear)."""
    numbers = private.private_numbers()
    value: int = numbers.private_value if isinstance(private, ec.EllipticCurvePrivateKey) else numbers.d
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


async def test_refusals_name_the_kms_errors(kms: Any) -> None:
    key_id = await new_key(kms, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")

    status, code, message = await refusal(
        kms, "verify", KeyId=key_id, Message=MESSAGE, Signature=b"\x00" * 256, SigningAlgorithm="RSASSA_PSS_SHA_256"
    )

    assert (status, code) == (400, "KMSInvalidSignatureException")
    assert message
