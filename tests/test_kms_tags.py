"""KMS tags — TagResource, UntagResource, ListResourceTags and CreateKey's Tags — driven by unmodified boto3 and the
unmodified AWS CLI against the real server on real Redis: KMS's tag rules and errors by their KMS names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syncsvc.kms.keyservice import KeyService
from tests.aws_cli import aws
from tests.conftest import Boto, call
from tests.kms_calls import ARN_PREFIX, an_identity, arn, code_of, new_key, refusal


def tags(**pairs: str) -> list[dict[str, str]]:
    return [{"TagKey": key, "TagValue": value} for key, value in pairs.items()]


async def test_create_key_tags_are_listed_in_tag_key_order(kms: Any) -> None:
    key_id = await new_key(kms, Tags=tags(team="sync", env="prod"))

    listed = await call(kms, "list_resource_tags", KeyId=key_id)

    assert listed == {"Tags": tags(env="prod", team="sync"), "Truncated": False}


async def test_tag_resource_adds_tags_and_replaces_the_value_of_a_tag_key_the_key_has(kms: Any) -> None:
    key_id = await new_key(kms, Tags=tags(env="dev"))

    await call(kms, "tag_resource", KeyId=arn(key_id), Tags=tags(env="prod", owner=""))

    assert (await call(kms, "list_resource_tags", KeyId=key_id))["Tags"] == tags(env="prod", owner="")


async def test_untag_resource_removes_the_tags_named_and_ignores_tag_keys_the_key_lacks(kms: Any) -> None:
    key_id = await new_key(kms, Tags=tags(a="1", b="2", c="3"))

    await call(kms, "untag_resource", KeyId=key_id, TagKeys=["a", "c", "missing"])

    assert (await call(kms, "list_resource_tags", KeyId=key_id))["Tags"] == tags(b="2")


async def test_list_resource_tags_pages_with_markers(kms: Any) -> None:
    key_id = await new_key(kms, Tags=tags(c="3", a="1", b="2"))

    first = await call(kms, "list_resource_tags", KeyId=key_id, Limit=2)
    rest = await call(kms, "list_resource_tags", KeyId=key_id, Limit=2, Marker=first["NextMarker"])

    assert first == {"Tags": tags(a="1", b="2"), "Truncated": True, "NextMarker": first["NextMarker"]}
    assert rest == {"Tags": tags(c="3"), "Truncated": False}
    assert await code_of(kms, "list_resource_tags", KeyId=key_id, Marker="forged") == (400, "InvalidMarkerException")


async def test_tags_live_in_the_key_s_own_hash_and_go_with_it(kms: Any, service: KeyService) -> None:
    key_id = await new_key(kms, Tags=tags(env="prod"))

    stored = await service.keys.store.load(key_id)

    assert stored is not None
    assert stored.meta["tags"] == {"env": "prod"}


async def test_a_key_holds_at_most_50_tags(kms: Any) -> None:
    key_id = await new_key(kms, Tags=[{"TagKey": f"k{i:02}", "TagValue": "v"} for i in range(49)])

    await call(kms, "tag_resource", KeyId=key_id, Tags=tags(k00="again", last="50th"))
    refused = await refusal(kms, "tag_resource", KeyId=key_id, Tags=tags(one_more="51st"))

    assert refused == (400, "TagException", f"A KMS key can have at most 50 tags; {arn(key_id)} has 50")
    assert len((await call(kms, "list_resource_tags", KeyId=key_id))["Tags"]) == 50


@pytest.mark.parametrize("tag_key", ["aws:team", "AWS:team", "Aws:x"])
async def test_the_aws_prefix_is_reserved(kms: Any, tag_key: str) -> None:
    key_id = await new_key(kms)
    message = f"Tag key {tag_key} is not valid: the prefix 'aws:' is reserved for AWS use"

    assert await refusal(kms, "tag_resource", KeyId=key_id, Tags=[{"TagKey": tag_key, "TagValue": "v"}]) == (
        400,
        "TagException",
        message,
    )
    assert await refusal(kms, "create_key", Tags=[{"TagKey": tag_key, "TagValue": "v"}]) == (
        400,
        "TagException",
        message,
    )
    assert await refusal(kms, "untag_resource", KeyId=key_id, TagKeys=[tag_key]) == (400, "TagException", message)


async def test_a_tag_key_given_twice_in_one_request_is_a_tag_exception(kms: Any) -> None:
    key_id = await new_key(kms)
    twice = [{"TagKey": "env", "TagValue": "a"}, {"TagKey": "env", "TagValue": "b"}]

    refused = await refusal(kms, "tag_resource", KeyId=key_id, Tags=twice)

    assert refused == (400, "TagException", "Duplicate tag key env: a tag key may appear once in a request")
    assert await code_of(kms, "create_key", Tags=twice) == (400, "TagException")


@pytest.mark.parametrize(
    "tag",
    [{"TagKey": "k" * 129, "TagValue": "v"}, {"TagKey": "k", "TagValue": "v" * 257}],
    ids=["key over 128", "value over 256"],
)
async def test_tag_lengths_are_validated(kms: Any, tag: dict[str, str]) -> None:
    key_id = await new_key(kms)

    assert await code_of(kms, "tag_resource", KeyId=key_id, Tags=[tag]) == (400, "ValidationException")
    assert await code_of(kms, "create_key", Tags=[tag]) == (400, "ValidationException")


async def test_a_key_pending_deletion_cannot_be_tagged_but_its_tags_can_be_listed(kms: Any) -> None:
    key_id = await new_key(kms, Tags=tags(env="prod"))
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)

    tagged = await refusal(kms, "tag_resource", KeyId=key_id, Tags=tags(x="y"))
    untagged = await refusal(kms, "untag_resource", KeyId=key_id, TagKeys=["env"])

    assert tagged == untagged == (400, "KMSInvalidStateException", f"{arn(key_id)} is pending deletion.")
    assert (await call(kms, "list_resource_tags", KeyId=key_id))["Tags"] == tags(env="prod")


@pytest.mark.parametrize("operation", ["tag_resource", "untag_resource", "list_resource_tags"])
async def test_tag_operations_take_a_key_id_or_key_arn_only(kms: Any, operation: str) -> None:
    key_id = await new_key(kms, Tags=tags(env="prod"))
    await call(kms, "create_alias", AliasName="alias/tagged", TargetKeyId=key_id)
    every: dict[str, dict[str, Any]] = {"tag_resource": {"Tags": tags(x="y")}, "untag_resource": {"TagKeys": ["env"]}}
    params = every.get(operation, {})

    by_alias = await refusal(kms, operation, KeyId="alias/tagged", **params)
    by_alias_arn = await refusal(kms, operation, KeyId=f"{ARN_PREFIX}:alias/tagged", **params)

    assert by_alias == (400, "NotFoundException", "Invalid keyId alias/tagged")
    assert by_alias_arn == (400, "NotFoundException", f"Invalid keyId {ARN_PREFIX}:alias/tagged")
    assert (await call(kms, "list_resource_tags", KeyId=key_id))["Tags"] == tags(env="prod")


async def test_tag_operations_on_a_missing_key_are_not_found(kms: Any) -> None:
    missing = "1234abcd-12ab-34cd-56ef-1234567890ab"

    assert await refusal(kms, "list_resource_tags", KeyId=missing) == (
        400,
        "NotFoundException",
        f"Key '{arn(missing)}' does not exist",
    )
    assert await code_of(kms, "tag_resource", KeyId=missing, Tags=tags(a="b")) == (400, "NotFoundException")
    assert await code_of(kms, "untag_resource", KeyId=missing, TagKeys=["a"]) == (400, "NotFoundException")


async def test_an_identity_may_not_tag_keys(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    _, as_identity = await an_identity(boto, endpoint)

    assert await code_of(as_identity, "tag_resource", KeyId=key_id, Tags=tags(a="b")) == (400, "AccessDeniedException")
    assert await code_of(as_identity, "list_resource_tags", KeyId=key_id) == (400, "AccessDeniedException")


# --- through the AWS CLI ---------------------------------------------------------------------------------------------


async def test_the_aws_cli_tags_lists_and_untags_a_key(kms: Any, endpoint: str, tmp_path: Path) -> None:
    key_id = await new_key(kms)

    tagged = await aws(
        endpoint, tmp_path, "kms", "tag-resource", "--key-id", key_id, "--tags", "TagKey=env,TagValue=prod"
    )
    listed = await aws(endpoint, tmp_path, "kms", "list-resource-tags", "--key-id", key_id)
    untagged = await aws(endpoint, tmp_path, "kms", "untag-resource", "--key-id", key_id, "--tag-keys", "env")
    after = await aws(endpoint, tmp_path, "kms", "list-resource-tags", "--key-id", key_id)

    assert tagged == (0, None, "")
    assert listed == (0, {"Tags": [{"TagKey": "env", "TagValue": "prod"}]}, "")
    assert untagged == (0, None, "")
    assert after == (0, {"Tags": []}, "")


async def test_the_aws_cli_creates_a_tagged_key_and_reports_a_reserved_tag_key(
    kms: Any, endpoint: str, tmp_path: Path
) -> None:
    code, created, _ = await aws(endpoint, tmp_path, "kms", "create-key", "--tags", "TagKey=team,TagValue=sync")
    refused = await aws(endpoint, tmp_path, "kms", "create-key", "--tags", "TagKey=aws:team,TagValue=sync")

    assert code == 0
    key_id = created["KeyMetadata"]["KeyId"]
    assert (await call(kms, "list_resource_tags", KeyId=key_id))["Tags"] == tags(team="sync")
    assert refused == (
        255,  # the AWS CLI's exit code for an error the service answered
        None,
        "\nAn error occurred (TagException) when calling the CreateKey operation: Tag key aws:team is not valid: the "
        "prefix 'aws:' is reserved for AWS use\n",
    )
