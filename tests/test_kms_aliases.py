"""KMS aliases beyond CreateAlias and ListAliases — DeleteAlias, UpdateAlias, and CreateAlias's name rules — driven
by unmodified boto3 and the unmodified AWS CLI against the real server on real Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syncsvc.kms.keyservice import KeyService
from tests.aws_cli import aws
from tests.conftest import Boto, call
from tests.kms_calls import ARN_PREFIX, an_identity, arn, code_of, new_key, refusal

MISSING = "1234abcd-12ab-34cd-56ef-1234567890ab"


async def aliases(kms: Any) -> dict[str, str]:
    return {entry["AliasName"]: entry["TargetKeyId"] for entry in (await call(kms, "list_aliases"))["Aliases"]}


# --- DeleteAlias -----------------------------------------------------------------------------------------------------


async def test_delete_alias_removes_the_alias_and_leaves_the_key(kms: Any) -> None:
    key_id = await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/gone", TargetKeyId=key_id)
    await call(kms, "create_alias", AliasName="alias/kept", TargetKeyId=key_id)

    assert await call(kms, "delete_alias", AliasName="alias/gone") == {}

    assert await aliases(kms) == {"alias/kept": key_id}
    assert (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]["KeyState"] == "Enabled"
    assert await code_of(kms, "describe_key", KeyId="alias/gone") == (400, "NotFoundException")


async def test_delete_alias_of_a_missing_alias_is_not_found(kms: Any) -> None:
    refused = await refusal(kms, "delete_alias", AliasName="alias/never")

    assert refused == (400, "NotFoundException", f"Alias {ARN_PREFIX}:alias/never is not found.")


async def test_delete_alias_of_a_key_pending_deletion_is_allowed(kms: Any) -> None:
    key_id = await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/late", TargetKeyId=key_id)
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)

    await call(kms, "delete_alias", AliasName="alias/late")

    assert await aliases(kms) == {}


async def test_an_alias_of_an_internal_key_does_not_exist_for_delete_or_update(kms: Any, service: KeyService) -> None:
    internal = await service.lifecycle.create_key(owner="pool:us-east-1:test")
    await service.create_alias("alias/internal", internal.key_id)
    public = await new_key(kms)

    deleted = await refusal(kms, "delete_alias", AliasName="alias/internal")
    updated = await refusal(kms, "update_alias", AliasName="alias/internal", TargetKeyId=public)

    assert deleted == updated == (400, "NotFoundException", f"Alias {ARN_PREFIX}:alias/internal is not found.")
    assert await service.keys.store.alias_target("alias/internal") == internal.key_id


async def test_delete_alias_validates_the_name_shape(kms: Any) -> None:
    assert await code_of(kms, "delete_alias", AliasName="alias/with space") == (400, "ValidationException")
    assert await code_of(kms, "delete_alias", AliasName="alias/" + "x" * 251) == (400, "ValidationException")


# --- UpdateAlias -----------------------------------------------------------------------------------------------------


async def test_update_alias_points_the_alias_at_another_key_of_the_same_type(kms: Any) -> None:
    first, second = await new_key(kms), await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/current", TargetKeyId=first)
    sealed = await call(kms, "encrypt", KeyId="alias/current", Plaintext=b"secret")

    assert await call(kms, "update_alias", AliasName="alias/current", TargetKeyId=arn(second)) == {}

    assert await aliases(kms) == {"alias/current": second}
    assert (await call(kms, "encrypt", KeyId="alias/current", Plaintext=b"x"))["KeyId"] == arn(second)
    assert (await call(kms, "decrypt", CiphertextBlob=sealed["CiphertextBlob"]))["Plaintext"] == b"secret"


@pytest.mark.parametrize(
    ("current", "new", "message"),
    [
        (
            {},
            {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"},
            "{current} (symmetric, ENCRYPT_DECRYPT); it cannot name {new} (asymmetric, SIGN_VERIFY)",
        ),
        (
            {"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"},
            {"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"},
            "{current} (asymmetric, ENCRYPT_DECRYPT); it cannot name {new} (asymmetric, SIGN_VERIFY)",
        ),
        (
            {"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"},
            {},
            "{current} (asymmetric, ENCRYPT_DECRYPT); it cannot name {new} (symmetric, ENCRYPT_DECRYPT)",
        ),
    ],
    ids=["symmetric to asymmetric", "other key usage", "asymmetric to symmetric"],
)
async def test_update_alias_refuses_a_key_of_another_type_or_usage(
    kms: Any, current: dict[str, str], new: dict[str, str], message: str
) -> None:
    first, second = await new_key(kms, **current), await new_key(kms, **new)
    await call(kms, "create_alias", AliasName="alias/typed", TargetKeyId=first)

    refused = await refusal(kms, "update_alias", AliasName="alias/typed", TargetKeyId=second)

    assert refused == (
        400,
        "ValidationException",
        f"alias/typed names {message.format(current=arn(first), new=arn(second))}: the current and new key must be "
        "the same type and key usage",
    )
    assert await aliases(kms) == {"alias/typed": first}


async def test_update_alias_errors(kms: Any) -> None:
    first, pending = await new_key(kms), await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/a", TargetKeyId=first)
    await call(kms, "create_alias", AliasName="alias/b", TargetKeyId=pending)
    await call(kms, "schedule_key_deletion", KeyId=pending, PendingWindowInDays=7)

    assert [
        await refusal(kms, "update_alias", AliasName="alias/missing", TargetKeyId=first),
        await refusal(kms, "update_alias", AliasName="alias/a", TargetKeyId=MISSING),
        await refusal(kms, "update_alias", AliasName="alias/a", TargetKeyId="alias/b"),
        await refusal(kms, "update_alias", AliasName="alias/a", TargetKeyId=pending),
    ] == [
        (400, "NotFoundException", f"Alias {ARN_PREFIX}:alias/missing is not found."),
        (400, "NotFoundException", f"Key '{arn(MISSING)}' does not exist"),
        (400, "NotFoundException", "Invalid targetKeyId alias/b"),
        (400, "KMSInvalidStateException", f"{arn(pending)} is pending deletion."),
    ]
    assert await aliases(kms) == {"alias/a": first, "alias/b": pending}


async def test_an_identity_may_not_change_aliases(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/mine", TargetKeyId=key_id)
    _, as_identity = await an_identity(boto, endpoint)

    assert await code_of(as_identity, "delete_alias", AliasName="alias/mine") == (400, "AccessDeniedException")
    assert await code_of(as_identity, "update_alias", AliasName="alias/mine", TargetKeyId=key_id) == (
        400,
        "AccessDeniedException",
    )
    assert await aliases(kms) == {"alias/mine": key_id}


# --- CreateAlias's name rules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alias/a:b", "alias/with space", "alias/é", "alias/a.b"])
async def test_create_alias_refuses_every_character_kms_refuses(kms: Any, name: str) -> None:
    key_id = await new_key(kms)

    refused = await refusal(kms, "create_alias", AliasName=name, TargetKeyId=key_id)

    assert refused == (
        400,
        "ValidationException",
        f"1 validation error detected: Value '{name}' at 'aliasName' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: ^[a-zA-Z0-9/_-]+$ and have length at most 256",
    )
    assert await aliases(kms) == {}


# --- through the AWS CLI ---------------------------------------------------------------------------------------------


async def test_the_aws_cli_updates_and_deletes_an_alias(kms: Any, endpoint: str, tmp_path: Path) -> None:
    first, second = await new_key(kms), await new_key(kms)

    created = await aws(
        endpoint, tmp_path, "kms", "create-alias", "--alias-name", "alias/app", "--target-key-id", first
    )
    updated = await aws(
        endpoint, tmp_path, "kms", "update-alias", "--alias-name", "alias/app", "--target-key-id", second
    )
    listed = await aws(endpoint, tmp_path, "kms", "list-aliases", "--key-id", second)
    deleted = await aws(endpoint, tmp_path, "kms", "delete-alias", "--alias-name", "alias/app")
    again = await aws(endpoint, tmp_path, "kms", "delete-alias", "--alias-name", "alias/app")

    assert created == updated == deleted == (0, None, "")
    assert listed == (
        0,
        {"Aliases": [{"AliasName": "alias/app", "AliasArn": f"{ARN_PREFIX}:alias/app", "TargetKeyId": second}]},
        "",
    )
    assert again == (
        255,
        None,
        f"\nAn error occurred (NotFoundException) when calling the DeleteAlias operation: Alias {ARN_PREFIX}:alias/app "
        "is not found.\n",
    )


async def test_the_aws_cli_reports_a_colon_in_a_new_alias_name(kms: Any, endpoint: str, tmp_path: Path) -> None:
    key_id = await new_key(kms)

    refused = await aws(
        endpoint, tmp_path, "kms", "create-alias", "--alias-name", "alias/a:b", "--target-key-id", key_id
    )

    assert refused == (
        255,
        None,
        "\nAn error occurred (ValidationException) when calling the CreateAlias operation: 1 validation error "
        "detected: Value 'alias/a:b' at 'aliasName' failed to satisfy constraint: Member must satisfy regular "
        "expression pattern: ^[a-zA-Z0-9/_-]+$ and have length at most 256\n",
    )
