"""GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext driven by unmodified boto3 against the real server on
real Redis: the pair is a real key pair, its private key opens with Decrypt under the same encryption context, and
each refusal comes by its KMS name."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_private_key

from tests.conftest import Boto, call
from tests.kms_calls import an_identity, arn, code_of, grant, new_key, refusal

CONTEXT = {"purpose": "tests"}


def public_of(private_der: bytes) -> bytes:
    private = load_der_private_key(private_der, password=None)
    return private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(
    ("spec", "kind", "size"),
    [
        ("RSA_2048", rsa.RSAPrivateKey, 2048),
        ("ECC_NIST_P256", ec.EllipticCurvePrivateKey, 256),
        ("ECC_NIST_P384", ec.EllipticCurvePrivateKey, 384),
        ("ECC_SECG_P256K1", ec.EllipticCurvePrivateKey, 256),
    ],
)
async def test_generate_data_key_pair_answers_a_pair_whose_private_key_decrypt_opens(
    kms: Any, spec: str, kind: type[Any], size: int
) -> None:
    key_id = await new_key(kms)

    pair = await call(kms, "generate_data_key_pair", KeyId=key_id, KeyPairSpec=spec, EncryptionContext=CONTEXT)

    assert set(pair) == {"PrivateKeyCiphertextBlob", "PrivateKeyPlaintext", "PublicKey", "KeyId", "KeyPairSpec"}
    assert (pair["KeyId"], pair["KeyPairSpec"]) == (arn(key_id), spec)
    private = load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
    assert isinstance(private, kind)
    assert private.key_size == size
    assert public_of(pair["PrivateKeyPlaintext"]) == pair["PublicKey"]
    opened = await call(kms, "decrypt", CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=CONTEXT)
    assert opened["Plaintext"] == pair["PrivateKeyPlaintext"]
    assert await code_of(kms, "decrypt", CiphertextBlob=pair["PrivateKeyCiphertextBlob"]) == (
        400,
        "InvalidCiphertextException",
    )


async def test_generate_data_key_pair_without_plaintext_answers_only_the_sealed_private_key(kms: Any) -> None:
    key_id = await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/pairs", TargetKeyId=key_id)

    pair = await call(kms, "generate_data_key_pair_without_plaintext", KeyId="alias/pairs", KeyPairSpec="ECC_NIST_P521")

    assert set(pair) == {"PrivateKeyCiphertextBlob", "PublicKey", "KeyId", "KeyPairSpec"}
    assert pair["KeyId"] == arn(key_id)
    opened = await call(kms, "decrypt", CiphertextBlob=pair["PrivateKeyCiphertextBlob"])
    assert public_of(opened["Plaintext"]) == pair["PublicKey"]


async def test_two_pairs_differ(kms: Any) -> None:
    key_id = await new_key(kms)

    first = await call(kms, "generate_data_key_pair", KeyId=key_id, KeyPairSpec="ECC_NIST_P256")
    second = await call(kms, "generate_data_key_pair", KeyId=key_id, KeyPairSpec="ECC_NIST_P256")

    assert first["PublicKey"] != second["PublicKey"]


async def test_generate_data_key_pair_errors(kms: Any) -> None:
    key_id, signing, disabled = (
        await new_key(kms),
        await new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY"),
        await new_key(kms),
    )
    await call(kms, "disable_key", KeyId=disabled)
    missing = "1234abcd-12ab-34cd-56ef-1234567890ab"

    assert [
        await refusal(kms, "generate_data_key_pair", KeyId=key_id, KeyPairSpec="SM2"),
        await code_of(kms, "generate_data_key_pair", KeyId=signing, KeyPairSpec="RSA_2048"),
        await code_of(kms, "generate_data_key_pair", KeyId=disabled, KeyPairSpec="RSA_2048"),
        await code_of(kms, "generate_data_key_pair_without_plaintext", KeyId=missing, KeyPairSpec="RSA_2048"),
        await code_of(kms, "generate_data_key_pair", KeyId=key_id, KeyPairSpec="RSA_2048", DryRun=True),
    ] == [
        (
            400,
            "UnsupportedOperationException",
            "KeyPairSpec SM2 is not supported: syncsvc makes RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, "
            "ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1 data key pairs",
        ),
        (400, "InvalidKeyUsageException"),
        (400, "DisabledException"),
        (400, "NotFoundException"),
        (400, "DryRunOperationException"),
    ]


async def test_an_identity_generates_a_pair_only_through_a_grant(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    principal, as_identity = await an_identity(boto, endpoint)

    refused = await code_of(as_identity, "generate_data_key_pair", KeyId=key_id, KeyPairSpec="ECC_NIST_P256")
    await grant(kms, key_id, principal, "GenerateDataKeyPair")
    allowed = await call(as_identity, "generate_data_key_pair", KeyId=key_id, KeyPairSpec="ECC_NIST_P256")

    assert refused == (400, "AccessDeniedException")
    assert public_of(allowed["PrivateKeyPlaintext"]) == allowed["PublicKey"]
    assert await code_of(
        as_identity, "generate_data_key_pair_without_plaintext", KeyId=key_id, KeyPairSpec="ECC_NIST_P256"
    ) == (400, "AccessDeniedException")
