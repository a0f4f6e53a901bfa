"""HMAC KMS keys (HMAC_224/256/384/512, KeyUsage GENERATE_VERIFY_MAC) driven by an unmodified boto3 ``kms`` client
and, once, the AWS CLI: CreateKey and DescribeKey's MacAlgorithms, GenerateMac (checked against an HMAC computed
independently from the key material the root key unwraps), VerifyMac, and each refusal by its KMS name. Real Redis,
nothing mocked."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from redis.asyncio import Redis

from syncsvc import rediskeys
from syncsvc.kms.model import MAC_ALGORITHMS
from syncsvc.kms.root import RootKey
from tests.aws_cli import aws
from tests.conftest import ROOT_KEY_FILE, Boto, call
from tests.kms_calls import an_identity, arn, code_of, grant, key_metadata, new_key, refusal

HMAC_SPECS = [(spec, algorithms[0]) for spec, algorithms in MAC_ALGORITHMS.items()]
MESSAGE = b"the record set of identity us-east-1:42"


async def hmac_key(kms: Any, spec: str = "HMAC_256") -> str:
    return await new_key(kms, KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")


def local_mac(secret: bytes, algorithm: str, message: bytes) -> bytes:
    """RFC 2104 HMAC computed here, without the server (``HMAC_SHA_384`` -> SHA-384)."""
    return hmac.new(secret, message, getattr(hashlib, "sha" + algorithm.rsplit("_", 1)[1])).digest()


async def secret_of(redis_client: Redis, key_id: str) -> bytes:
    """The key's material as the root key unwraps it from Redis."""
    wrapped = await redis_client.hget(rediskeys.kms_key(key_id), "v1")
    assert isinstance(wrapped, bytes)
    return await RootKey.from_file(ROOT_KEY_FILE).unwrap(wrapped, key_id, 1)


# --- CreateKey and DescribeKey ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "algorithm"), HMAC_SPECS)
async def test_create_key_makes_each_hmac_spec(kms: Any, spec: str, algorithm: str) -> None:
    created = (await call(kms, "create_key", KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC"))["KeyMetadata"]

    key_id = created["KeyId"]
    assert created == key_metadata(key_id, spec, "GENERATE_VERIFY_MAC", MacAlgorithms=[algorithm])
    assert (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"] == created


@pytest.mark.parametrize(
    ("spec", "usage"),
    [
        ("HMAC_256", "ENCRYPT_DECRYPT"),
        ("HMAC_384", "SIGN_VERIFY"),
        ("SYMMETRIC_DEFAULT", "GENERATE_VERIFY_MAC"),
        ("RSA_2048", "GENERATE_VERIFY_MAC"),
        ("ECC_NIST_P256", "GENERATE_VERIFY_MAC"),
    ],
)
async def test_generate_verify_mac_goes_with_hmac_specs_only(kms: Any, spec: str, usage: str) -> None:
    assert await code_of(kms, "create_key", KeySpec=spec, KeyUsage=usage) == (400, "ValidationException")


async def test_an_hmac_spec_without_a_key_usage_is_refused(kms: Any) -> None:
    # KeyUsage defaults to ENCRYPT_DECRYPT, which an HMAC key does not take.
    assert await code_of(kms, "create_key", KeySpec="HMAC_256") == (400, "ValidationException")


@pytest.mark.parametrize(("spec", "size"), [("HMAC_224", 28), ("HMAC_256", 32), ("HMAC_384", 48), ("HMAC_512", 64)])
async def test_the_key_material_is_random_bytes_of_the_specs_size_stored_only_wrapped(
    kms: Any, redis_client: Redis, spec: str, size: int
) -> None:
    first, second = await hmac_key(kms, spec), await hmac_key(kms, spec)

    secrets = [await secret_of(redis_client, key_id) for key_id in (first, second)]

    assert [len(secret) for secret in secrets] == [size, size]
    assert secrets[0] != secrets[1]
    stored = await redis_client.hgetall(rediskeys.kms_key(first))
    for value in stored.values():
        assert secrets[0] not in value


# --- GenerateMac and VerifyMac ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "algorithm"), HMAC_SPECS)
async def test_generate_mac_is_the_rfc_2104_hmac_under_the_keys_material(
    kms: Any, redis_client: Redis, spec: str, algorithm: str
) -> None:
    key_id = await hmac_key(kms, spec)

    generated = await call(kms, "generate_mac", KeyId=key_id, Message=MESSAGE, MacAlgorithm=algorithm)

    assert generated == {"KeyId": arn(key_id), "Mac": ANY, "MacAlgorithm": algorithm}
    assert generated["Mac"] == local_mac(await secret_of(redis_client, key_id), algorithm, MESSAGE)


@pytest.mark.parametrize(("spec", "algorithm"), HMAC_SPECS)
async def test_verify_mac_accepts_the_mac_generate_mac_made(kms: Any, spec: str, algorithm: str) -> None:
    key_id = await hmac_key(kms, spec)
    mac = (await call(kms, "generate_mac", KeyId=key_id, Message=MESSAGE, MacAlgorithm=algorithm))["Mac"]

    verified = await call(kms, "verify_mac", KeyId=key_id, Message=MESSAGE, Mac=mac, MacAlgorithm=algorithm)

    assert verified == {"KeyId": arn(key_id), "MacValid": True, "MacAlgorithm": algorithm}


async def test_verify_mac_accepts_a_mac_computed_independently(kms: Any, redis_client: Redis) -> None:
    key_id = await hmac_key(kms, "HMAC_512")
    mac = local_mac(await secret_of(redis_client, key_id), "HMAC_SHA_512", b"made offline")

    verified = await call(
        kms, "verify_mac", KeyId=key_id, Message=b"made offline", Mac=mac, MacAlgorithm="HMAC_SHA_512"
    )

    assert verified["MacValid"] is True


async def test_verify_mac_of_a_changed_message_mac_or_key_is_an_invalid_mac(kms: Any) -> None:
    key_id, other = await hmac_key(kms), await hmac_key(kms)
    mac = (await call(kms, "generate_mac", KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256"))["Mac"]
    flipped = mac[:-1] + bytes([mac[-1] ^ 1])

    for key, message, given in ((key_id, MESSAGE + b"!", mac), (key_id, MESSAGE, flipped), (other, MESSAGE, mac)):
        refused = await refusal(kms, "verify_mac", KeyId=key, Message=message, Mac=given, MacAlgorithm="HMAC_SHA_256")
        assert refused == (
            400,
            "KMSInvalidMacException",
            "The MAC is not valid for this message, key and MAC algorithm",
        )


async def test_a_truncated_mac_is_an_invalid_mac(kms: Any) -> None:
    key_id = await hmac_key(kms)
    mac = (await call(kms, "generate_mac", KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256"))["Mac"]

    refused = await code_of(kms, "verify_mac", KeyId=key_id, Message=MESSAGE, Mac=mac[:16], MacAlgorithm="HMAC_SHA_256")

    assert refused == (400, "KMSInvalidMacException")


async def test_a_mac_algorithm_of_another_spec_is_invalid_key_usage(kms: Any) -> None:
    key_id = await hmac_key(kms, "HMAC_256")

    generate = await refusal(kms, "generate_mac", KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_512")
    verify = await code_of(kms, "verify_mac", KeyId=key_id, Message=MESSAGE, Mac=b"m" * 64, MacAlgorithm="HMAC_SHA_512")

    assert generate == (
        400,
        "InvalidKeyUsageException",
        "Algorithm HMAC_SHA_512 is incompatible with key spec HMAC_256; it takes HMAC_SHA_256",
    )
    assert verify == (400, "InvalidKeyUsageException")


@pytest.mark.parametrize(
    ("spec", "usage"),
    [("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"), ("RSA_2048", "SIGN_VERIFY"), ("ECC_NIST_P256", "SIGN_VERIFY")],
)
async def test_mac_operations_refuse_a_key_that_is_not_hmac(kms: Any, spec: str, usage: str) -> None:
    key_id = await new_key(kms, KeySpec=spec, KeyUsage=usage)

    generate = await refusal(kms, "generate_mac", KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256")
    verify = await code_of(kms, "verify_mac", KeyId=key_id, Message=MESSAGE, Mac=b"m" * 32, MacAlgorithm="HMAC_SHA_256")

    assert generate == (
        400,
        "InvalidKeyUsageException",
        f"{arn(key_id)} key usage is {usage} which is not valid for GenerateMac or VerifyMac.",
    )
    assert verify == (400, "InvalidKeyUsageException")


@pytest.mark.parametrize(("size", "expected"), [(4096, None), (4097, "ValidationException")])
async def test_a_message_is_at_most_4096_bytes(kms: Any, size: int, expected: str | None) -> None:
    key_id = await hmac_key(kms)
    params = {"KeyId": key_id, "Message": b"m" * size, "MacAlgorithm": "HMAC_SHA_256"}

    if expected is None:
        mac = (await call(kms, "generate_mac", **params))["Mac"]
        assert (await call(kms, "verify_mac", Mac=mac, **params))["MacValid"] is True
    else:
        assert await code_of(kms, "generate_mac", **params) == (400, expected)
        assert await code_of(kms, "verify_mac", Mac=b"m" * 32, **params) == (400, expected)


async def test_an_empty_message_or_mac_is_a_validation_error(kms: Any) -> None:
    key_id = await hmac_key(kms)

    empty_message = await code_of(kms, "generate_mac", KeyId=key_id, Message=b"", MacAlgorithm="HMAC_SHA_256")
    empty_mac = await code_of(kms, "verify_mac", KeyId=key_id, Message=MESSAGE, Mac=b"", MacAlgorithm="HMAC_SHA_256")

    assert empty_message == (400, "ValidationException")
    assert empty_mac == (400, "ValidationException")


async def test_mac_operations_take_an_alias_and_a_key_arn(kms: Any) -> None:
    key_id = await hmac_key(kms)
    await call(kms, "create_alias", AliasName="alias/macs", TargetKeyId=key_id)

    by_alias = await call(kms, "generate_mac", KeyId="alias/macs", Message=MESSAGE, MacAlgorithm="HMAC_SHA_256")
    by_arn = await call(
        kms, "verify_mac", KeyId=arn(key_id), Message=MESSAGE, Mac=by_alias["Mac"], MacAlgorithm="HMAC_SHA_256"
    )

    assert by_alias["KeyId"] == arn(key_id)
    assert by_arn == {"KeyId": arn(key_id), "MacValid": True, "MacAlgorithm": "HMAC_SHA_256"}


async def test_dry_run_answers_dry_run_operation(kms: Any) -> None:
    key_id = await hmac_key(kms)
    mac = (await call(kms, "generate_mac", KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256"))["Mac"]
    params = {"KeyId": key_id, "Message": MESSAGE, "MacAlgorithm": "HMAC_SHA_256", "DryRun": True}

    generate = await refusal(kms, "generate_mac", **params)
    verify = await code_of(kms, "verify_mac", Mac=mac, **params)

    assert generate == (
        400,
        "DryRunOperationException",
        "The request would have succeeded, but the DryRun option is set.",
    )
    assert verify == (400, "DryRunOperationException")


async def test_a_missing_key_is_not_found(kms: Any) -> None:
    missing = "0b6a5b2e-58a4-4e34-9f53-2a0c4f3b9d11"

    refused = await code_of(kms, "generate_mac", KeyId=missing, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256")

    assert refused == (400, "NotFoundException")


# --- key states ------------------------------------------------------------------------------------------------------


async def test_a_disabled_hmac_key_is_refused_until_enabled(kms: Any) -> None:
    key_id = await hmac_key(kms)
    mac = (await call(kms, "generate_mac", KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256"))["Mac"]
    params = {"KeyId": key_id, "Message": MESSAGE, "MacAlgorithm": "HMAC_SHA_256"}

    await call(kms, "disable_key", KeyId=key_id)
    disabled = [await code_of(kms, "generate_mac", **params), await code_of(kms, "verify_mac", Mac=mac, **params)]
    await call(kms, "enable_key", KeyId=key_id)
    enabled = await call(kms, "verify_mac", Mac=mac, **params)

    assert disabled == [(400, "DisabledException")] * 2
    assert enabled["MacValid"] is True


async def test_an_hmac_key_pending_deletion_is_invalid_state(kms: Any) -> None:
    key_id = await hmac_key(kms)
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)

    refused = await code_of(kms, "generate_mac", KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256")

    assert refused == (400, "KMSInvalidStateException")


# --- what an HMAC key does not do ------------------------------------------------------------------------------------


async def test_an_hmac_key_does_not_encrypt_sign_or_make_data_keys(kms: Any) -> None:
    key_id = await hmac_key(kms)

    usage_error = (400, "InvalidKeyUsageException")
    assert await code_of(kms, "encrypt", KeyId=key_id, Plaintext=b"x") == usage_error
    assert await code_of(kms, "encrypt", KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256") == (
        usage_error
    )
    assert await code_of(kms, "generate_data_key", KeyId=key_id, KeySpec="AES_256") == usage_error
    assert await code_of(kms, "sign", KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256") == usage_error
    assert await code_of(kms, "get_public_key", KeyId=key_id) == (400, "UnsupportedOperationException")


async def test_an_hmac_key_does_not_rotate(kms: Any) -> None:
    key_id = await hmac_key(kms)

    refused = await refusal(kms, "enable_key_rotation", KeyId=key_id)

    assert refused == (
        400,
        "UnsupportedOperationException",
        f"{arn(key_id)} is an HMAC key: KMS does not rotate HMAC keys",
    )
    assert await code_of(kms, "rotate_key_on_demand", KeyId=key_id) == (400, "UnsupportedOperationException")


# --- grants ----------------------------------------------------------------------------------------------------------


async def test_an_identity_uses_an_hmac_key_only_as_its_grant_allows(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await hmac_key(kms)
    mac = (await call(kms, "generate_mac", KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256"))["Mac"]
    principal, as_identity = await an_identity(boto, endpoint)
    params = {"KeyId": key_id, "Message": MESSAGE, "MacAlgorithm": "HMAC_SHA_256"}

    before = await code_of(as_identity, "generate_mac", **params)
    await grant(kms, key_id, principal, "GenerateMac")
    generated = await call(as_identity, "generate_mac", **params)
    verify = await code_of(as_identity, "verify_mac", Mac=mac, **params)  # not granted
    await grant(kms, key_id, principal, "VerifyMac")
    verified = await call(as_identity, "verify_mac", Mac=mac, **params)

    assert before == (400, "AccessDeniedException")
    assert generated["Mac"] == mac
    assert verify == (400, "AccessDeniedException")
    assert verified["MacValid"] is True


# --- the AWS CLI -----------------------------------------------------------------------------------------------------


async def test_generate_mac_and_verify_mac_through_the_aws_cli(endpoint: str, tmp_path: Path) -> None:
    (tmp_path / "message.txt").write_bytes(MESSAGE)
    code, created, err = await aws(
        endpoint, tmp_path, "kms", "create-key", "--key-spec", "HMAC_384", "--key-usage", "GENERATE_VERIFY_MAC"
    )
    assert code == 0, err
    key_id = created["KeyMetadata"]["KeyId"]
    assert created["KeyMetadata"]["MacAlgorithms"] == ["HMAC_SHA_384"]
    message = ("--message", f"fileb://{tmp_path / 'message.txt'}", "--mac-algorithm", "HMAC_SHA_384")

    code, generated, err = await aws(endpoint, tmp_path, "kms", "generate-mac", "--key-id", key_id, *message)
    assert code == 0, err
    (tmp_path / "mac.bin").write_bytes(base64.b64decode(generated["Mac"]))
    mac = ("--mac", f"fileb://{tmp_path / 'mac.bin'}")
    code, verified, err = await aws(endpoint, tmp_path, "kms", "verify-mac", "--key-id", key_id, *message, *mac)

    assert code == 0, err
    assert generated == {"Mac": ANY, "MacAlgorithm": "HMAC_SHA_384", "KeyId": arn(key_id)}
    assert len(base64.b64decode(generated["Mac"])) == 48
    assert verified == {"KeyId": arn(key_id), "MacValid": True, "MacAlgorithm": "HMAC_SHA_384"}
    (tmp_path / "message.txt").write_bytes(MESSAGE + b"!")
    code, _, err = await aws(endpoint, tmp_path, "kms", "verify-mac", "--key-id", key_id, *message, *mac)
    assert code != 0
    assert "KMSInvalidMacException" in err
