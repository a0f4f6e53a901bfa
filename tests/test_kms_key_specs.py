"""The key specs beyond RSA_2048 and ECC_NIST_P256 — RSA_3072, RSA_4096, ECC_NIST_P384, ECC_NIST_P521 and
ECC_SECG_P256K1 — driven by an unmodified boto3 ``kms`` client: DescribeKey's algorithm lists, GetPublicKey's DER key
(its size or curve checked with ``cryptography``; CreateKey and DescribeKey of every spec run in
tests/test_kms_asymmetric.py too), RSAES-OAEP limits per key size, digest lengths, and the specs
syncsvc refuses with the reason. Sign/Verify of every (spec, algorithm) with a signature verified locally runs in
tests/test_kms_asymmetric.py, which takes every spec of ``SIGNING_ALGORITHMS``. Real Redis, nothing mocked."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from syncsvc.kms.model import ENCRYPTION_ALGORITHMS, SIGNING_ALGORITHMS
from tests.conftest import call
from tests.kms_calls import arn, code_of, new_key, refusal

MESSAGE = b"the record set of identity us-east-1:42"
OAEP = list(ENCRYPTION_ALGORITHMS["RSA_3072"])
RSA_SIGNING = list(SIGNING_ALGORITHMS["RSA_3072"])


#: RSAES_OAEP_SHA_256 as KMS applies it: MGF1 with the same hash, no label.
OAEP_SHA_256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


# --- CreateKey, DescribeKey and GetPublicKey -------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "bits"), [("RSA_3072", 3072), ("RSA_4096", 4096)])
async def test_get_public_key_of_an_rsa_key_has_the_specs_size(kms: Any, spec: str, bits: int) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage="SIGN_VERIFY")

    answer = await call(kms, "get_public_key", KeyId=key_id)

    public = serialization.load_der_public_key(answer["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == bits
    assert answer == {
        "KeyId": arn(key_id),
        "PublicKey": answer["PublicKey"],
        "CustomerMasterKeySpec": spec,
        "KeySpec": spec,
        "KeyUsage": "SIGN_VERIFY",
        "SigningAlgorithms": RSA_SIGNING,
    }


@pytest.mark.parametrize(
    ("spec", "curve"),
    [("ECC_NIST_P384", ec.SECP384R1), ("ECC_NIST_P521", ec.SECP521R1), ("ECC_SECG_P256K1", ec.SECP256K1)],
)
async def test_get_public_key_of_an_ecc_key_is_on_the_specs_curve(kms: Any, spec: str, curve: type[Any]) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage="SIGN_VERIFY")

    answer = await call(kms, "get_public_key", KeyId=key_id)

    public = serialization.load_der_public_key(answer["PublicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, curve)
    assert answer["SigningAlgorithms"] == list(SIGNING_ALGORITHMS[spec])


@pytest.mark.parametrize(
    ("spec", "usage"), [("ECC_NIST_P384", "ENCRYPT_DECRYPT"), ("ECC_SECG_P256K1", "ENCRYPT_DECRYPT")]
)
async def test_an_ecc_key_does_not_encrypt(kms: Any, spec: str, usage: str) -> None:
    assert await code_of(kms, "create_key", KeySpec=spec, KeyUsage=usage) == (400, "ValidationException")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("SM2", "KMS offers SM2 keys only in its China Regions, and syncsvc serves none"),
        ("ECC_NIST_EDWARDS25519", "its ED25519_PH_SHA_512 signing algorithm (Ed25519ph) is not in the cryptography"),
        ("ML_DSA_65", "ML-DSA keys are not served"),
        ("ML_KEM_768", "ML-KEM keys are not served (syncsvc does not serve Encapsulate and Decapsulate)"),
    ],
)
async def test_a_spec_syncsvc_does_not_make_is_unsupported_with_the_reason(kms: Any, spec: str, reason: str) -> None:
    status, code, message = await refusal(kms, "create_key", KeySpec=spec, KeyUsage="SIGN_VERIFY")

    assert (status, code) == (400, "UnsupportedOperationException")
    assert message.startswith(f"KeySpec {spec} is not supported: {reason}")


async def test_key_agreement_is_unsupported(kms: Any) -> None:
    refused = await refusal(kms, "create_key", KeySpec="ECC_NIST_P384", KeyUsage="KEY_AGREEMENT")

    assert refused == (
        400,
        "UnsupportedOperationException",
        "KeyUsage KEY_AGREEMENT is not supported: syncsvc does not serve DeriveSharedSecret",
    )


# --- Sign and Verify: digests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "algorithm", "size"),
    [
        ("ECC_NIST_P384", "ECDSA_SHA_384", 48),
        ("ECC_NIST_P521", "ECDSA_SHA_512", 64),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256", 32),
        ("RSA_3072", "RSASSA_PKCS1_V1_5_SHA_384", 48),
    ],
)
async def test_a_digest_must_have_the_algorithms_length(kms: Any, spec: str, algorithm: str, size: int) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage="SIGN_VERIFY")
    chosen = {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[size]
    digest = hashlib.new(chosen.name, MESSAGE).digest()

    short = await refusal(
        kms, "sign", KeyId=key_id, Message=digest[:-1], MessageType="DIGEST", SigningAlgorithm=algorithm
    )
    signed = await call(kms, "sign", KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm)

    assert short == (
        400,
        "ValidationException",
        f"Digest is {size - 1} bytes: {algorithm} takes a {size}-byte digest with MessageType DIGEST",
    )
    public = serialization.load_der_public_key((await call(kms, "get_public_key", KeyId=key_id))["PublicKey"])
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signed["Signature"], digest, ec.ECDSA(Prehashed(chosen)))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signed["Signature"], digest, padding.PKCS1v15(), Prehashed(chosen))


async def test_an_algorithm_of_another_curve_is_invalid_key_usage(kms: Any) -> None:
    key_id = await new_key(kms, KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")

    refused = await refusal(kms, "sign", KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256")

    assert refused == (
        400,
        "InvalidKeyUsageException",
        "Algorithm ECDSA_SHA_256 is incompatible with key spec ECC_NIST_P384; it takes ECDSA_SHA_384",
    )


# --- Encrypt and Decrypt ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "algorithm", "limit"),
    [
        ("RSA_3072", "RSAES_OAEP_SHA_1", 342),
        ("RSA_3072", "RSAES_OAEP_SHA_256", 318),
        ("RSA_4096", "RSAES_OAEP_SHA_1", 470),
        ("RSA_4096", "RSAES_OAEP_SHA_256", 446),
    ],
)
async def test_rsa_encrypt_takes_plaintexts_up_to_kms_limit_for_the_key_size(
    kms: Any, spec: str, algorithm: str, limit: int
) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage="ENCRYPT_DECRYPT")

    fits = await call(kms, "encrypt", KeyId=key_id, Plaintext=b"p" * limit, EncryptionAlgorithm=algorithm)
    too_long = await code_of(kms, "encrypt", KeyId=key_id, Plaintext=b"p" * (limit + 1), EncryptionAlgorithm=algorithm)

    assert len(fits["CiphertextBlob"]) == int(spec.rsplit("_", 1)[1]) // 8
    assert too_long == (400, "ValidationException")
    decrypted = await call(
        kms, "decrypt", CiphertextBlob=fits["CiphertextBlob"], KeyId=key_id, EncryptionAlgorithm=algorithm
    )
    assert decrypted == {"KeyId": arn(key_id), "Plaintext": b"p" * limit, "EncryptionAlgorithm": algorithm}


@pytest.mark.parametrize("spec", ["RSA_3072", "RSA_4096"])
async def test_a_ciphertext_made_locally_with_the_public_key_decrypts_on_the_server(kms: Any, spec: str) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage="ENCRYPT_DECRYPT")
    public = serialization.load_der_public_key((await call(kms, "get_public_key", KeyId=key_id))["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    blob = public.encrypt(b"made offline", OAEP_SHA_256)

    decrypted = await call(kms, "decrypt", CiphertextBlob=blob, KeyId=key_id, EncryptionAlgorithm="RSAES_OAEP_SHA_256")

    assert decrypted["Plaintext"] == b"made offline"
