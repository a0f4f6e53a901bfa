"""The KMS surface (json 1.1, ``TrentService.*``) driven by an unmodified boto3 ``kms`` client: keys, aliases,
cryptography, rotation, deletion and the sweep, each rule and each error by its KMS name. Real Redis, nothing mocked;
the sweep is called with a ``now_ms`` in the future instead of waiting for it."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import datetime
from typing import Any
from unittest.mock import ANY

import orjson
import pytest
from redis.asyncio import Redis

from syncsvc import rediskeys
from syncsvc.config import Settings
from syncsvc.kms import material
from syncsvc.kms.keyservice import KeyService
from syncsvc.kms.model import DAY_MS
from syncsvc.kms.sweeper import Sweep
from syncsvc.store.kms import RedisKeyStore
from tests.conftest import Boto, Raw, call, make_settings
from tests.devices import Devices, guest
from tests.kms_calls import ACCOUNT, ARN_PREFIX, arn, code_of, kms_client, new_key, refusal

DRY_RUN = "The request would have succeeded, but the DryRun option is set."


# --- fixtures and helpers --------------------------------------------------------------------------------------------


@pytest.fixture
def settings(redis_url: str, request: pytest.FixtureRequest) -> Settings:
    """The suite's settings; parametrize ``settings`` indirectly with a dict to override some."""
    return make_settings(redis_url, **getattr(request, "param", {}))


async def send(raw: Raw, operation: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """A KMS request made and signed by hand (for what botocore refuses to send, or to see the raw body)."""
    return await raw.send(
        "POST",
        "/",
        body=orjson.dumps(payload),
        service="kms",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"TrentService.{operation}"},
    )


def version_of(blob: bytes) -> int:
    return material.blob_header(blob).version


def now_ms() -> int:
    return int(time.time() * 1000)


def near(moment: datetime, expected_ms: int, *, within_seconds: float = 10) -> bool:
    """A date botocore parsed (a datetime) is within ``within_seconds`` of ``expected_ms``."""
    return abs(moment.timestamp() * 1000 - expected_ms) <= within_seconds * 1000


# --- keys ------------------------------------------------------------------------------------------------------------


async def test_create_key_answers_the_key_metadata(kms: Any) -> None:
    created = await call(kms, "create_key", Description="records", Tags=[{"TagKey": "team", "TagValue": "sync"}])

    key_id = created["KeyMetadata"]["KeyId"]
    assert created == {
        "KeyMetadata": {
            "AWSAccountId": ACCOUNT,
            "KeyId": key_id,
            "Arn": arn(key_id),
            "CreationDate": ANY,
            "Enabled": True,
            "Description": "records",
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": "Enabled",
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
            "MultiRegion": False,
        }
    }
    assert near(created["KeyMetadata"]["CreationDate"], now_ms())


async def test_create_key_refuses_a_spec_syncsvc_does_not_make_with_the_reason(kms: Any) -> None:
    status, code, message = await refusal(kms, "create_key", KeySpec="SM2", KeyUsage="SIGN_VERIFY")

    assert (status, code) == (400, "UnsupportedOperationException")
    assert message == (
        "KeySpec SM2 is not supported: KMS offers SM2 keys only in its China Regions, and syncsvc serves none"
    )


async def test_create_key_refuses_a_description_over_8192_characters(kms: Any) -> None:
    assert await code_of(kms, "create_key", Description="d" * 8193) == (400, "ValidationException")


@pytest.mark.parametrize("settings", [{"kms_key_quota": 2}], indirect=True)
async def test_create_key_past_the_quota_is_limit_exceeded(kms: Any) -> None:
    await new_key(kms)
    await new_key(kms)

    refused = await refusal(kms, "create_key")

    assert refused == (400, "LimitExceededException", "This deployment already holds its limit of 2 keys")


async def test_describe_key_accepts_key_id_key_arn_alias_and_alias_arn(kms: Any) -> None:
    key_id = await new_key(kms, Description="named")
    await call(kms, "create_alias", AliasName="alias/records", TargetKeyId=key_id)

    described = [
        await call(kms, "describe_key", KeyId=ref)
        for ref in (key_id, arn(key_id), "alias/records", f"{ARN_PREFIX}:alias/records")
    ]

    assert [d["KeyMetadata"]["KeyId"] for d in described] == [key_id] * 4
    assert described[1:] == described[:-1]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("1234abcd-12ab-34cd-56ef-1234567890ab", (400, "NotFoundException")),
        ("alias/missing", (400, "NotFoundException")),
        (f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab", (400, "NotFoundException")),
        ("arn:aws:kms:not-an-arn", (400, "InvalidArnException")),
    ],
)
async def test_describe_key_of_no_key(kms: Any, ref: str, expected: tuple[int, str]) -> None:
    assert await code_of(kms, "describe_key", KeyId=ref) == expected


async def test_list_keys_pages_with_markers(kms: Any) -> None:
    key_ids = sorted([await new_key(kms) for _ in range(5)])

    first = await call(kms, "list_keys", Limit=2)
    second = await call(kms, "list_keys", Limit=2, Marker=first["NextMarker"])
    last = await call(kms, "list_keys", Limit=2, Marker=second["NextMarker"])

    def entries(ids: list[str]) -> list[dict[str, str]]:
        return [{"KeyId": key_id, "KeyArn": arn(key_id)} for key_id in ids]

    assert first == {"Keys": entries(key_ids[:2]), "Truncated": True, "NextMarker": ANY}
    assert second == {"Keys": entries(key_ids[2:4]), "Truncated": True, "NextMarker": ANY}
    assert last == {"Keys": entries(key_ids[4:]), "Truncated": False}


async def test_list_keys_defaults_to_every_key_up_to_100(kms: Any) -> None:
    key_id = await new_key(kms)

    assert await call(kms, "list_keys") == {"Keys": [{"KeyId": key_id, "KeyArn": arn(key_id)}], "Truncated": False}


async def test_list_keys_refuses_a_limit_over_1000(kms: Any) -> None:
    assert await code_of(kms, "list_keys", Limit=1001) == (400, "ValidationException")


@pytest.mark.parametrize("operation", ["list_keys", "list_aliases"])
async def test_a_marker_not_issued_by_the_operation_is_invalid(kms: Any, operation: str) -> None:
    for index in range(2):
        await call(kms, "create_alias", AliasName=f"alias/a{index}", TargetKeyId=await new_key(kms))
    other = "list_aliases" if operation == "list_keys" else "list_keys"
    foreign = (await call(kms, other, Limit=1))["NextMarker"]

    refused = [await refusal(kms, operation, Marker=marker) for marker in ("not-a-marker", foreign)]

    assert refused == [(400, "InvalidMarkerException", "The marker is not valid for this operation")] * 2


# --- aliases ---------------------------------------------------------------------------------------------------------


async def test_list_aliases_lists_every_alias_or_those_of_one_key(kms: Any) -> None:
    first, second = await new_key(kms), await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/b", TargetKeyId=first)
    await call(kms, "create_alias", AliasName="alias/a", TargetKeyId=arn(second))

    every = await call(kms, "list_aliases")
    of_first = await call(kms, "list_aliases", KeyId=arn(first))

    def entry(name: str, key_id: str) -> dict[str, str]:
        return {"AliasName": name, "AliasArn": f"{ARN_PREFIX}:{name}", "TargetKeyId": key_id}

    assert every == {"Aliases": [entry("alias/a", second), entry("alias/b", first)], "Truncated": False}
    assert of_first == {"Aliases": [entry("alias/b", first)], "Truncated": False}


async def test_list_aliases_pages_with_markers(kms: Any) -> None:
    key_id = await new_key(kms)
    for name in ("alias/c", "alias/a", "alias/b"):
        await call(kms, "create_alias", AliasName=name, TargetKeyId=key_id)

    first = await call(kms, "list_aliases", Limit=2)
    last = await call(kms, "list_aliases", Limit=2, Marker=first["NextMarker"])

    assert [a["AliasName"] for a in first["Aliases"]] == ["alias/a", "alias/b"]
    assert (first["Truncated"], "NextMarker" in first) == (True, True)
    assert last == {"Aliases": [{"AliasName": "alias/c", "AliasArn": ANY, "TargetKeyId": key_id}], "Truncated": False}


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("records", (400, "ValidationException")),
        ("alias/with space", (400, "ValidationException")),
        ("alias/" + "x" * 251, (400, "ValidationException")),
        ("alias/", (400, "InvalidAliasNameException")),
        ("alias/aws/records", (400, "NotAuthorizedException")),
    ],
)
async def test_create_alias_enforces_kms_name_rules(kms: Any, alias: str, expected: tuple[int, str]) -> None:
    key_id = await new_key(kms)

    assert await code_of(kms, "create_alias", AliasName=alias, TargetKeyId=key_id) == expected
    assert await call(kms, "list_aliases") == {"Aliases": [], "Truncated": False}


async def test_create_alias_of_a_taken_name_already_exists(kms: Any) -> None:
    first, second = await new_key(kms), await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/records", TargetKeyId=first)

    refused = await refusal(kms, "create_alias", AliasName="alias/records", TargetKeyId=second)

    assert refused == (
        400,
        "AlreadyExistsException",
        f"An alias with the name {ARN_PREFIX}:alias/records already exists",
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("alias/records", (400, "NotFoundException")),
        (f"{ARN_PREFIX}:alias/records", (400, "NotFoundException")),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", (400, "NotFoundException")),
    ],
)
async def test_create_alias_targets_an_existing_key_by_id_or_arn(
    kms: Any, target: str, expected: tuple[int, str]
) -> None:
    await call(kms, "create_alias", AliasName="alias/records", TargetKeyId=await new_key(kms))

    assert await code_of(kms, "create_alias", AliasName="alias/other", TargetKeyId=target) == expected


async def test_create_alias_of_a_key_pending_deletion_is_an_invalid_state(kms: Any) -> None:
    key_id = await new_key(kms)
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)

    refused = await refusal(kms, "create_alias", AliasName="alias/late", TargetKeyId=key_id)

    assert refused == (400, "KMSInvalidStateException", f"{arn(key_id)} is pending deletion.")


# --- cryptography ----------------------------------------------------------------------------------------------------


async def test_encrypt_then_decrypt_without_key_id_round_trips(kms: Any) -> None:
    key_id = await new_key(kms)
    context = {"pool": "p1", "purpose": "test"}

    encrypted = await call(kms, "encrypt", KeyId=key_id, Plaintext=b"\x00secret\xff")
    blob = encrypted.pop("CiphertextBlob")
    decrypted = await call(kms, "decrypt", CiphertextBlob=blob)
    with_context = await call(kms, "encrypt", KeyId=key_id, Plaintext=b"ctx", EncryptionContext=context)
    opened = await call(
        kms, "decrypt", CiphertextBlob=with_context["CiphertextBlob"], EncryptionContext=dict(reversed(context.items()))
    )

    assert encrypted == {"KeyId": arn(key_id), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    assert decrypted == {
        "KeyId": arn(key_id),
        "Plaintext": b"\x00secret\xff",
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    assert opened["Plaintext"] == b"ctx"


async def test_encrypt_by_alias_names_the_key_by_arn(kms: Any) -> None:
    key_id = await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/records", TargetKeyId=key_id)

    encrypted = await call(kms, "encrypt", KeyId="alias/records", Plaintext=b"x")

    assert encrypted == {"CiphertextBlob": ANY, "KeyId": arn(key_id), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}


async def test_encrypt_refuses_plaintext_over_4096_bytes(kms: Any) -> None:
    key_id = await new_key(kms)

    assert await refusal(kms, "encrypt", KeyId=key_id, Plaintext=b"x" * 4097) == (
        400,
        "ValidationException",
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less "
        "than or equal to 4096",
    )  # AWS's words, and the plaintext is not quoted back


async def test_validation_errors_name_every_broken_member_in_aws_words(kms: Any) -> None:
    marker = "m" * 1025
    assert await refusal(kms, "list_aliases", Limit=101, Marker=marker) == (
        400,
        "ValidationException",
        "2 validation errors detected: Value '101' at 'limit' failed to satisfy constraint: Member must have value "
        f"less than or equal to 100; Value '{marker[:256]}...' at 'marker' failed to satisfy constraint: Member must "
        "have length less than or equal to 1024",
    )  # a long value is quoted cut short


async def test_encrypt_with_an_asymmetric_algorithm_is_invalid_key_usage(kms: Any) -> None:
    key_id = await new_key(kms)

    refused = await code_of(kms, "encrypt", KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")

    assert refused == (400, "InvalidKeyUsageException")


async def test_decrypt_with_another_key_id_is_incorrect_key(kms: Any) -> None:
    key_id, other = await new_key(kms), await new_key(kms)
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"x"))["CiphertextBlob"]

    refused = await refusal(kms, "decrypt", CiphertextBlob=blob, KeyId=other)

    assert refused == (
        400,
        "IncorrectKeyException",
        "The key ID in the request does not identify the key that encrypted the ciphertext",
    )


@pytest.mark.parametrize("context", [{}, {"pool": "p2"}, {"Pool": "p1"}, {"pool": "p1", "extra": "x"}])
async def test_decrypt_with_another_encryption_context_is_invalid_ciphertext(kms: Any, context: dict[str, str]) -> None:
    key_id = await new_key(kms)
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"x", EncryptionContext={"pool": "p1"}))[
        "CiphertextBlob"
    ]

    assert await code_of(kms, "decrypt", CiphertextBlob=blob, EncryptionContext=context) == (
        400,
        "InvalidCiphertextException",
    )


async def test_decrypt_of_a_blob_not_made_here_is_invalid_ciphertext(kms: Any) -> None:
    assert await code_of(kms, "decrypt", CiphertextBlob=b"not a ciphertext of ours") == (
        400,
        "InvalidCiphertextException",
    )


async def test_re_encrypt_moves_a_ciphertext_to_another_key_and_context(kms: Any) -> None:
    source, destination = await new_key(kms), await new_key(kms)
    blob = (await call(kms, "encrypt", KeyId=source, Plaintext=b"moved", EncryptionContext={"a": "1"}))[
        "CiphertextBlob"
    ]

    moved = await call(
        kms,
        "re_encrypt",
        CiphertextBlob=blob,
        SourceEncryptionContext={"a": "1"},
        SourceKeyId=source,
        DestinationKeyId=destination,
        DestinationEncryptionContext={"b": "2"},
    )
    opened = await call(kms, "decrypt", CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"b": "2"})

    assert moved == {
        "CiphertextBlob": ANY,
        "SourceKeyId": arn(source),
        "KeyId": arn(destination),
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    assert opened == {"KeyId": arn(destination), "Plaintext": b"moved", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}


async def test_re_encrypt_checks_the_source_key_and_context(kms: Any) -> None:
    source, destination = await new_key(kms), await new_key(kms)
    blob = (await call(kms, "encrypt", KeyId=source, Plaintext=b"x", EncryptionContext={"a": "1"}))["CiphertextBlob"]

    wrong_key = await code_of(kms, "re_encrypt", CiphertextBlob=blob, SourceKeyId=destination, DestinationKeyId=source)
    wrong_context = await code_of(kms, "re_encrypt", CiphertextBlob=blob, DestinationKeyId=destination)

    assert (wrong_key, wrong_context) == ((400, "IncorrectKeyException"), (400, "InvalidCiphertextException"))


@pytest.mark.parametrize(
    ("params", "size"), [({"KeySpec": "AES_256"}, 32), ({"KeySpec": "AES_128"}, 16), ({"NumberOfBytes": 1024}, 1024)]
)
async def test_generate_data_key_returns_a_key_and_its_blob(kms: Any, params: dict[str, Any], size: int) -> None:
    key_id = await new_key(kms)

    generated = await call(kms, "generate_data_key", KeyId=key_id, EncryptionContext={"k": "v"}, **params)
    opened = await call(kms, "decrypt", CiphertextBlob=generated["CiphertextBlob"], EncryptionContext={"k": "v"})

    assert generated == {"CiphertextBlob": ANY, "Plaintext": ANY, "KeyId": arn(key_id)}
    assert len(generated["Plaintext"]) == size
    assert opened["Plaintext"] == generated["Plaintext"]


async def test_generate_data_key_without_plaintext_returns_only_the_blob(kms: Any) -> None:
    key_id = await new_key(kms)

    generated = await call(kms, "generate_data_key_without_plaintext", KeyId=key_id, KeySpec="AES_256")
    opened = await call(kms, "decrypt", CiphertextBlob=generated["CiphertextBlob"])

    assert generated == {"CiphertextBlob": ANY, "KeyId": arn(key_id)}
    assert len(opened["Plaintext"]) == 32


@pytest.mark.parametrize("operation", ["generate_data_key", "generate_data_key_without_plaintext"])
@pytest.mark.parametrize(
    "params", [{}, {"KeySpec": "AES_256", "NumberOfBytes": 32}, {"NumberOfBytes": 1025}], ids=["none", "both", "big"]
)
async def test_generate_data_key_takes_exactly_one_size_in_range(
    kms: Any, operation: str, params: dict[str, Any]
) -> None:
    key_id = await new_key(kms)

    assert await code_of(kms, operation, KeyId=key_id, **params) == (400, "ValidationException")


# --- key states ------------------------------------------------------------------------------------------------------


async def test_a_disabled_key_refuses_cryptography_until_enabled(kms: Any) -> None:
    key_id = await new_key(kms)
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"x"))["CiphertextBlob"]

    await call(kms, "disable_key", KeyId=key_id)
    refused = [
        await refusal(kms, "encrypt", KeyId=key_id, Plaintext=b"x"),
        await refusal(kms, "decrypt", CiphertextBlob=blob),
        await refusal(kms, "generate_data_key", KeyId=key_id, KeySpec="AES_256"),
    ]
    described = (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]
    await call(kms, "enable_key", KeyId=key_id)

    assert refused == [(400, "DisabledException", f"{arn(key_id)} is disabled.")] * 3
    assert (described["KeyState"], described["Enabled"]) == ("Disabled", False)
    assert (await call(kms, "decrypt", CiphertextBlob=blob))["Plaintext"] == b"x"


async def test_schedule_key_deletion_answers_the_deletion_date(kms: Any) -> None:
    key_id = await new_key(kms)

    scheduled = await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)
    described = (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]

    assert scheduled == {
        "KeyId": arn(key_id),
        "DeletionDate": ANY,
        "KeyState": "PendingDeletion",
        "PendingWindowInDays": 7,
    }
    assert near(scheduled["DeletionDate"], now_ms() + 7 * DAY_MS)
    assert described == {
        **described,
        "KeyState": "PendingDeletion",
        "Enabled": False,
        "DeletionDate": scheduled["DeletionDate"],
        "PendingDeletionWindowInDays": 7,
    }


async def test_schedule_key_deletion_defaults_to_30_days(kms: Any) -> None:
    key_id = await new_key(kms)

    scheduled = await call(kms, "schedule_key_deletion", KeyId=key_id)

    assert scheduled["PendingWindowInDays"] == 30
    assert near(scheduled["DeletionDate"], now_ms() + 30 * DAY_MS)


@pytest.mark.parametrize("days", [1, 6, 31, 365])
async def test_schedule_key_deletion_takes_7_to_30_days(kms: Any, days: int) -> None:
    key_id = await new_key(kms)

    refused = await refusal(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=days)

    assert refused == (400, "ValidationException", "PendingWindowInDays must be between 7 and 30")


async def test_a_key_pending_deletion_is_in_an_invalid_state_for_use(kms: Any) -> None:
    key_id = await new_key(kms)
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"x"))["CiphertextBlob"]
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)

    refused = [
        await refusal(kms, "encrypt", KeyId=key_id, Plaintext=b"x"),
        await refusal(kms, "decrypt", CiphertextBlob=blob),
        await refusal(kms, "enable_key", KeyId=key_id),
        await refusal(kms, "disable_key", KeyId=key_id),
        await refusal(kms, "rotate_key_on_demand", KeyId=key_id),
        await refusal(kms, "schedule_key_deletion", KeyId=key_id),
    ]

    assert refused == [(400, "KMSInvalidStateException", f"{arn(key_id)} is pending deletion.")] * 6


async def test_cancel_key_deletion_leaves_the_key_disabled(kms: Any) -> None:
    key_id = await new_key(kms)
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)

    cancelled = await call(kms, "cancel_key_deletion", KeyId=key_id)
    described = (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]

    assert cancelled == {"KeyId": arn(key_id)}
    assert (described["KeyState"], "DeletionDate" in described) == ("Disabled", False)
    assert await code_of(kms, "encrypt", KeyId=key_id, Plaintext=b"x") == (400, "DisabledException")


async def test_cancel_key_deletion_of_a_key_not_pending_is_an_invalid_state(kms: Any) -> None:
    key_id = await new_key(kms)

    refused = await refusal(kms, "cancel_key_deletion", KeyId=key_id)

    assert refused == (400, "KMSInvalidStateException", f"{arn(key_id)} is not pending deletion.")


# --- DryRun ----------------------------------------------------------------------------------------------------------


async def dry_run_params(kms: Any, operation: str, key_id: str) -> dict[str, Any]:
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"x"))["CiphertextBlob"]
    return {
        "encrypt": {"KeyId": key_id, "Plaintext": b"x"},
        "decrypt": {"CiphertextBlob": blob},
        "re_encrypt": {"CiphertextBlob": blob, "DestinationKeyId": key_id},
        "generate_data_key": {"KeyId": key_id, "KeySpec": "AES_256"},
        "generate_data_key_without_plaintext": {"KeyId": key_id, "NumberOfBytes": 16},
    }[operation]


DRY_RUN_OPERATIONS = ["encrypt", "decrypt", "re_encrypt", "generate_data_key", "generate_data_key_without_plaintext"]


@pytest.mark.parametrize("operation", DRY_RUN_OPERATIONS)
async def test_dry_run_of_a_request_that_would_succeed(kms: Any, operation: str) -> None:
    key_id = await new_key(kms)
    params = await dry_run_params(kms, operation, key_id)

    refused = await refusal(kms, operation, DryRun=True, **params)

    assert refused == (400, "DryRunOperationException", DRY_RUN)


@pytest.mark.parametrize("operation", DRY_RUN_OPERATIONS)
async def test_dry_run_of_a_request_that_would_fail_answers_its_error(kms: Any, operation: str) -> None:
    key_id = await new_key(kms)
    params = await dry_run_params(kms, operation, key_id)
    await call(kms, "disable_key", KeyId=key_id)

    assert await code_of(kms, operation, DryRun=True, **params) == (400, "DisabledException")


# --- rotation --------------------------------------------------------------------------------------------------------


async def test_key_rotation_is_off_until_enabled(kms: Any) -> None:
    key_id = await new_key(kms)

    assert await call(kms, "get_key_rotation_status", KeyId=key_id) == {"KeyRotationEnabled": False, "KeyId": key_id}


async def test_enable_key_rotation_schedules_a_rotation_a_period_later(kms: Any) -> None:
    key_id = await new_key(kms)

    await call(kms, "enable_key_rotation", KeyId=key_id)
    default = await call(kms, "get_key_rotation_status", KeyId=key_id)
    await call(kms, "enable_key_rotation", KeyId=arn(key_id), RotationPeriodInDays=90)
    shorter = await call(kms, "get_key_rotation_status", KeyId=key_id)

    assert default == {
        "KeyRotationEnabled": True,
        "KeyId": key_id,
        "RotationPeriodInDays": 365,
        "NextRotationDate": ANY,
    }
    assert near(default["NextRotationDate"], now_ms() + 365 * DAY_MS)
    assert shorter == {**default, "RotationPeriodInDays": 90, "NextRotationDate": ANY}
    assert near(shorter["NextRotationDate"], now_ms() + 90 * DAY_MS)


async def test_disable_key_rotation_turns_it_off(kms: Any) -> None:
    key_id = await new_key(kms)
    await call(kms, "enable_key_rotation", KeyId=key_id)

    await call(kms, "disable_key_rotation", KeyId=key_id)

    assert await call(kms, "get_key_rotation_status", KeyId=key_id) == {"KeyRotationEnabled": False, "KeyId": key_id}


@pytest.mark.parametrize("days", [89, 2561])
async def test_enable_key_rotation_takes_90_to_2560_days(kms: Any, raw: Raw, days: int) -> None:
    key_id = await new_key(kms)

    # botocore itself refuses a period under 90 (the model's min), so the request is sent by hand
    status, body, _ = await send(raw, "EnableKeyRotation", {"KeyId": key_id, "RotationPeriodInDays": days})

    assert (status, body["__type"]) == (400, "ValidationException")
    assert (await call(kms, "get_key_rotation_status", KeyId=key_id))["KeyRotationEnabled"] is False


@pytest.mark.parametrize("operation", ["enable_key_rotation", "disable_key_rotation", "rotate_key_on_demand"])
async def test_rotation_changes_of_a_disabled_key_are_refused(kms: Any, operation: str) -> None:
    key_id = await new_key(kms)
    await call(kms, "disable_key", KeyId=key_id)

    assert await code_of(kms, operation, KeyId=key_id) == (400, "DisabledException")


async def test_a_key_pending_deletion_reports_rotation_off(kms: Any) -> None:
    key_id = await new_key(kms)
    await call(kms, "enable_key_rotation", KeyId=key_id)
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)

    assert await call(kms, "get_key_rotation_status", KeyId=key_id) == {"KeyRotationEnabled": False, "KeyId": key_id}


async def test_rotate_on_demand_seals_with_the_new_version_and_still_opens_old_ciphertexts(kms: Any) -> None:
    key_id = await new_key(kms)
    old = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"before", EncryptionContext={"c": "1"}))[
        "CiphertextBlob"
    ]

    rotated = await call(kms, "rotate_key_on_demand", KeyId=key_id)
    new = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"after"))["CiphertextBlob"]

    assert rotated == {"KeyId": key_id}
    assert (version_of(old), version_of(new)) == (1, 2)
    assert (await call(kms, "decrypt", CiphertextBlob=old, EncryptionContext={"c": "1"}))["Plaintext"] == b"before"
    assert (await call(kms, "decrypt", CiphertextBlob=new))["Plaintext"] == b"after"


async def test_rotate_on_demand_is_limited_to_25_per_key(kms: Any) -> None:
    key_id = await new_key(kms)
    for _ in range(25):
        await call(kms, "rotate_key_on_demand", KeyId=key_id)

    refused = await refusal(kms, "rotate_key_on_demand", KeyId=key_id)

    assert refused == (400, "LimitExceededException", f"{arn(key_id)} has reached the limit of 25 on-demand rotations")


async def test_rotate_on_demand_conflicts_with_an_automatic_rotation_due_soon(
    kms: Any, service: KeyService, redis_client: Redis
) -> None:
    key_id = await new_key(kms)
    key = await service.key(key_id)
    period = 90 * DAY_MS
    due_soon = key.evolve(rotation_enabled=True, rotation_period_days=90, rotated_ms=now_ms() - period + 60_000)
    await RedisKeyStore(redis_client).update(key_id, due_soon.stored(), revision=None)

    assert await code_of(kms, "rotate_key_on_demand", KeyId=key_id) == (400, "ConflictException")


async def test_concurrent_rotations_each_add_a_version_and_lose_none(kms: Any, service: KeyService) -> None:
    key_id = await new_key(kms)
    old = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"v1"))["CiphertextBlob"]

    await asyncio.gather(*(service.rotate(key_id) for _ in range(4)))
    blob = await service.encrypt(key_id, b"v5")

    assert ((await service.key(key_id)).current_version, version_of(blob)) == (5, 5)
    assert (await call(kms, "decrypt", CiphertextBlob=old))["Plaintext"] == b"v1"


# --- the sweep -------------------------------------------------------------------------------------------------------


async def test_the_sweep_deletes_a_key_after_its_window(kms: Any, service: KeyService, redis_client: Redis) -> None:
    key_id, kept = await new_key(kms), await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/doomed", TargetKeyId=key_id)
    await call(kms, "create_alias", AliasName="alias/kept", TargetKeyId=kept)
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"x"))["CiphertextBlob"]
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)

    early = await service.sweep(now_ms() + 6 * DAY_MS)
    swept = await service.sweep(now_ms() + 7 * DAY_MS + 60_000)

    assert (early, swept) == (Sweep(), Sweep(deleted=(key_id,)))
    assert await code_of(kms, "describe_key", KeyId=key_id) == (400, "NotFoundException")
    assert await code_of(kms, "decrypt", CiphertextBlob=blob) == (400, "NotFoundException")
    assert [a["AliasName"] for a in (await call(kms, "list_aliases"))["Aliases"]] == ["alias/kept"]
    assert await call(kms, "list_keys") == {"Keys": [{"KeyId": kept, "KeyArn": arn(kept)}], "Truncated": False}
    assert not await redis_client.exists(rediskeys.kms_key(key_id))


async def test_the_sweep_keeps_a_key_whose_deletion_was_cancelled(kms: Any, service: KeyService) -> None:
    key_id = await new_key(kms)
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)
    await call(kms, "cancel_key_deletion", KeyId=key_id)

    assert await service.sweep(now_ms() + 8 * DAY_MS) == Sweep()
    assert (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]["KeyState"] == "Disabled"


async def test_the_sweep_rotates_a_key_whose_rotation_is_due(kms: Any, service: KeyService) -> None:
    key_id, disabled = await new_key(kms), await new_key(kms)
    for ref in (key_id, disabled):
        await call(kms, "enable_key_rotation", KeyId=ref, RotationPeriodInDays=90)
    await call(kms, "disable_key", KeyId=disabled)
    old = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"old"))["CiphertextBlob"]
    later = now_ms() + 91 * DAY_MS

    early = await service.sweep(now_ms() + 89 * DAY_MS)
    swept = await service.sweep(later)
    again = await service.sweep(later)

    status = await call(kms, "get_key_rotation_status", KeyId=key_id)
    assert (early, swept, again) == (Sweep(), Sweep(rotated=(key_id,)), Sweep())
    assert near(status["NextRotationDate"], later + 90 * DAY_MS)
    assert version_of((await call(kms, "encrypt", KeyId=key_id, Plaintext=b"new"))["CiphertextBlob"]) == 2
    assert (await call(kms, "decrypt", CiphertextBlob=old))["Plaintext"] == b"old"


# --- the surface -----------------------------------------------------------------------------------------------------


async def test_identity_credentials_are_refused(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    _, credentials = await guest(Devices(endpoint), await boto.new_pool())
    as_identity = kms_client(endpoint, **credentials)

    refused = [
        await code_of(as_identity, "encrypt", KeyId=key_id, Plaintext=b"x"),
        await code_of(as_identity, "list_keys"),
        await code_of(as_identity, "create_key"),
    ]

    assert refused == [(400, "AccessDeniedException")] * 3
    assert (await call(kms, "list_keys"))["Keys"] == [{"KeyId": key_id, "KeyArn": arn(key_id)}]


async def test_an_operation_kms_does_not_have_is_unknown(raw: Raw) -> None:
    status, body, _ = await send(raw, "ListKeyMaterials", {})

    message = "Operation 'TrentService.ListKeyMaterials' is not supported"
    assert (status, body) == (400, {"__type": "UnknownOperationException", "message": message})


async def test_blobs_travel_as_standard_base64(kms: Any, service: KeyService, raw: Raw) -> None:
    key_id = await new_key(kms)
    plaintext = bytes(range(256))  # its base64 has both "+" and "/"

    status, body, _ = await send(raw, "Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(plaintext).decode()})

    assert (status, body) == (200, {"CiphertextBlob": ANY, "KeyId": arn(key_id), "EncryptionAlgorithm": ANY})
    assert await service.decrypt(base64.b64decode(body["CiphertextBlob"], validate=True)) == (plaintext, ANY)


@pytest.mark.parametrize(
    ("operation", "payload", "expected"),
    [
        ("Encrypt", {"KeyId": "alias/x"}, "ValidationException"),
        ("Encrypt", {"KeyId": "alias/x", "Plaintext": 5}, "SerializationException"),
        ("Encrypt", {"KeyId": "alias/x", "Plaintext": "AA==", "Grants": []}, "ValidationException"),
        ("Decrypt", {}, "ValidationException"),
        ("ListKeys", {"Limit": "10"}, "SerializationException"),
    ],
)
async def test_a_body_that_breaks_the_model_is_refused_by_kms_names(
    raw: Raw, operation: str, payload: dict[str, Any], expected: str
) -> None:
    status, body, headers = await send(raw, operation, payload)

    assert (status, body, headers["Content-Type"]) == (
        400,
        {"__type": expected, "message": ANY},
        "application/x-amz-json-1.1",
    )
