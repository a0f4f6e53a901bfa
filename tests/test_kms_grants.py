"""KMS grants and key policies, driven by unmodified boto3 clients (developer and identity credentials) against the
real server on real Redis; and the pure policy evaluation of ``syncsvc.kms.policy``."""

from __future__ import annotations

from typing import Any
from unittest.mock import ANY

import orjson
import pytest

from syncsvc.errors import MalformedPolicyDocumentError
from syncsvc.kms.keyservice import KeyService
from syncsvc.kms.policy import (
    DEFAULT_POLICY,
    ROOT,
    Grant,
    allowed,
    developer_principal,
    identity_principal,
    parse_policy,
)
from tests.conftest import Boto, call
from tests.kms_calls import DEVELOPER, an_identity, arn, code_of, grant, new_key, refusal

OTHER_DEVELOPER = "arn:aws:iam::000000000000:user/AKIDSOMEONEELSE"


def policy(*statements: dict[str, Any]) -> str:
    return orjson.dumps({"Version": "2012-10-17", "Statement": list(statements)}).decode()


ALLOW_DEVELOPERS = {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}


# --- grants ----------------------------------------------------------------------------------------------------------


async def test_create_grant_answers_an_id_and_a_token_and_list_grants_shows_it(kms: Any) -> None:
    key_id = await new_key(kms)

    created = await grant(
        kms,
        key_id,
        OTHER_DEVELOPER,
        "Decrypt",
        "Encrypt",
        RetiringPrincipal=DEVELOPER,
        Name="app",
        Constraints={"EncryptionContextSubset": {"app": "notes"}},
    )
    listed = await call(kms, "list_grants", KeyId=key_id)

    assert created == {"GrantId": ANY, "GrantToken": ANY}
    assert len(created["GrantId"]) == 64
    assert listed == {
        "Grants": [
            {
                "KeyId": arn(key_id),
                "GrantId": created["GrantId"],
                "Name": "app",
                "CreationDate": ANY,
                "GranteePrincipal": OTHER_DEVELOPER,
                "RetiringPrincipal": DEVELOPER,
                "IssuingAccount": ROOT,
                "Operations": ["Decrypt", "Encrypt"],
                "Constraints": {"EncryptionContextSubset": {"app": "notes"}},
            }
        ],
        "Truncated": False,
    }


async def test_list_grants_filters_and_pages(kms: Any) -> None:
    key_id = await new_key(kms)
    ids = sorted([(await grant(kms, key_id, f"{OTHER_DEVELOPER}{n}", "Decrypt"))["GrantId"] for n in range(3)])

    first = await call(kms, "list_grants", KeyId=arn(key_id), Limit=2)
    second = await call(kms, "list_grants", KeyId=key_id, Limit=2, Marker=first["NextMarker"])
    by_id = await call(kms, "list_grants", KeyId=key_id, GrantId=ids[1])
    by_grantee = await call(kms, "list_grants", KeyId=key_id, GranteePrincipal=f"{OTHER_DEVELOPER}2")

    assert [g["GrantId"] for g in first["Grants"]] == ids[:2]
    assert first["Truncated"] is True
    assert [g["GrantId"] for g in second["Grants"]] == ids[2:]
    assert second["Truncated"] is False
    assert [g["GrantId"] for g in by_id["Grants"]] == [ids[1]]
    assert [g["GranteePrincipal"] for g in by_grantee["Grants"]] == [f"{OTHER_DEVELOPER}2"]
    assert await code_of(kms, "list_grants", KeyId=key_id, Marker="nope") == (400, "InvalidMarkerException")
    assert await code_of(kms, "list_grants", KeyId="alias/x") == (400, "NotFoundException")


async def test_create_grant_errors(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    disabled = await new_key(kms)
    await call(kms, "disable_key", KeyId=disabled)
    _, as_identity = await an_identity(boto, endpoint)

    assert [
        await code_of(kms, "create_grant", KeyId=key_id, GranteePrincipal=DEVELOPER, Operations=["Fly"]),
        await code_of(kms, "create_grant", KeyId=key_id, GranteePrincipal=DEVELOPER, Operations=[]),
        await code_of(kms, "create_grant", KeyId=key_id, GranteePrincipal="bob", Operations=["Decrypt"]),
        await code_of(kms, "create_grant", KeyId=key_id, Operations=["Decrypt"]),
        await code_of(
            kms,
            "create_grant",
            KeyId="11111111-1111-1111-1111-111111111111",
            GranteePrincipal=DEVELOPER,
            Operations=["Decrypt"],
        ),
        await code_of(kms, "create_grant", KeyId=disabled, GranteePrincipal=DEVELOPER, Operations=["Decrypt"]),
        await code_of(
            kms, "create_grant", KeyId=key_id, GranteePrincipal=DEVELOPER, Operations=["Decrypt"], DryRun=True
        ),
        await code_of(
            kms,
            "create_grant",
            KeyId=key_id,
            GranteePrincipal=DEVELOPER,
            Operations=["Decrypt"],
            GrantTokens=["forged"],
        ),
        await code_of(as_identity, "create_grant", KeyId=key_id, GranteePrincipal=DEVELOPER, Operations=["Decrypt"]),
    ] == [
        (400, "ValidationException"),
        (400, "ValidationException"),
        (400, "InvalidArnException"),
        (400, "ValidationException"),
        (400, "NotFoundException"),
        (400, "DisabledException"),
        (400, "DryRunOperationException"),
        (400, "InvalidGrantTokenException"),
        (400, "AccessDeniedException"),
    ]
    assert (await call(kms, "list_grants", KeyId=key_id))["Grants"] == []


async def test_an_identity_decrypts_only_while_a_grant_allows_it(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"secret"))["CiphertextBlob"]
    principal, as_identity = await an_identity(boto, endpoint)

    before = await code_of(as_identity, "decrypt", CiphertextBlob=blob)
    grant_id = (await grant(kms, key_id, principal, "Decrypt"))["GrantId"]
    decrypted = await call(as_identity, "decrypt", CiphertextBlob=blob)
    encrypt = await code_of(as_identity, "encrypt", KeyId=key_id, Plaintext=b"x")  # not granted
    await call(kms, "revoke_grant", KeyId=key_id, GrantId=grant_id)
    after = await code_of(as_identity, "decrypt", CiphertextBlob=blob)

    assert before == (400, "AccessDeniedException")
    assert decrypted["Plaintext"] == b"secret"
    assert decrypted["KeyId"] == arn(key_id)
    assert encrypt == (400, "AccessDeniedException")
    assert after == (400, "AccessDeniedException")
    assert await code_of(as_identity, "list_keys") == (400, "AccessDeniedException")


async def test_a_grant_for_another_principal_does_not_help(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"secret"))["CiphertextBlob"]
    other, _ = await an_identity(boto, endpoint)
    _, as_identity = await an_identity(boto, endpoint)
    await grant(kms, key_id, other, "Decrypt")

    assert await code_of(as_identity, "decrypt", CiphertextBlob=blob) == (400, "AccessDeniedException")


async def test_grant_constraints_are_enforced(kms: Any, boto: Boto, endpoint: str) -> None:
    equals_key, subset_key = await new_key(kms), await new_key(kms)
    principal, as_identity = await an_identity(boto, endpoint)
    await grant(kms, equals_key, principal, "Encrypt", Constraints={"EncryptionContextEquals": {"app": "notes"}})
    await grant(kms, subset_key, principal, "Encrypt", Constraints={"EncryptionContextSubset": {"app": "notes"}})

    def encrypt(key_id: str, context: dict[str, str]) -> Any:
        return code_of(as_identity, "encrypt", KeyId=key_id, Plaintext=b"x", EncryptionContext=context)

    assert (await call(as_identity, "encrypt", KeyId=equals_key, Plaintext=b"x", EncryptionContext={"app": "notes"}))[
        "KeyId"
    ] == arn(equals_key)
    assert await encrypt(equals_key, {"app": "notes", "more": "1"}) == (400, "AccessDeniedException")
    assert await encrypt(equals_key, {}) == (400, "AccessDeniedException")
    assert (
        await call(
            as_identity, "encrypt", KeyId=subset_key, Plaintext=b"x", EncryptionContext={"app": "notes", "more": "1"}
        )
    )["KeyId"] == arn(subset_key)
    assert await encrypt(subset_key, {"app": "other"}) == (400, "AccessDeniedException")
    assert await encrypt(subset_key, {}) == (400, "AccessDeniedException")


async def test_a_grant_token_is_honoured_at_once(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    principal, as_identity = await an_identity(boto, endpoint)

    token = (await grant(kms, key_id, principal, "GenerateDataKey"))["GrantToken"]
    data_key = await call(as_identity, "generate_data_key", KeyId=key_id, KeySpec="AES_256", GrantTokens=[token])

    assert data_key["KeyId"] == arn(key_id)
    assert len(data_key["Plaintext"]) == 32
    assert await code_of(
        as_identity, "generate_data_key", KeyId=key_id, KeySpec="AES_256", GrantTokens=[token[:-2] + "xx"]
    ) == (400, "InvalidGrantTokenException")


async def test_retire_grant_by_whom_it_names(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    retirer, as_retirer = await an_identity(boto, endpoint)
    grantee, as_grantee = await an_identity(boto, endpoint)
    _, as_stranger = await an_identity(boto, endpoint)
    by_retirer = await grant(kms, key_id, grantee, "Decrypt", RetiringPrincipal=retirer)
    by_grantee = await grant(kms, key_id, grantee, "Decrypt", "RetireGrant")
    by_developer = await grant(kms, key_id, grantee, "Decrypt")

    stranger = await code_of(as_stranger, "retire_grant", GrantToken=by_retirer["GrantToken"])
    grantee_without = await code_of(as_grantee, "retire_grant", KeyId=key_id, GrantId=by_developer["GrantId"])
    await call(as_retirer, "retire_grant", GrantToken=by_retirer["GrantToken"])
    await call(as_grantee, "retire_grant", KeyId=arn(key_id), GrantId=by_grantee["GrantId"])
    await call(kms, "retire_grant", KeyId=key_id, GrantId=by_developer["GrantId"])

    assert stranger == grantee_without == (400, "AccessDeniedException")
    assert (await call(kms, "list_grants", KeyId=key_id))["Grants"] == []
    assert await code_of(kms, "retire_grant", GrantToken=by_retirer["GrantToken"]) == (400, "NotFoundException")


async def test_retire_and_revoke_errors(kms: Any) -> None:
    key_id = await new_key(kms)
    created = await grant(kms, key_id, OTHER_DEVELOPER, "Decrypt")

    assert [
        await code_of(kms, "retire_grant", GrantToken="not-a-token"),
        await code_of(kms, "retire_grant", KeyId=key_id),
        await code_of(kms, "retire_grant", KeyId=key_id, GrantId="zz"),
        await code_of(kms, "revoke_grant", KeyId=key_id, GrantId="0" * 64),
        await code_of(kms, "revoke_grant", KeyId=key_id, GrantId="bad id"),
        await code_of(kms, "revoke_grant", KeyId=key_id, GrantId=created["GrantId"], DryRun=True),
        await code_of(kms, "retire_grant", GrantToken=created["GrantToken"], DryRun=True),
    ] == [
        (400, "InvalidGrantTokenException"),
        (400, "ValidationException"),
        (400, "InvalidGrantIdException"),
        (400, "NotFoundException"),
        (400, "InvalidGrantIdException"),
        (400, "DryRunOperationException"),
        (400, "DryRunOperationException"),
    ]
    assert len((await call(kms, "list_grants", KeyId=key_id))["Grants"]) == 1
    await call(kms, "revoke_grant", KeyId=key_id, GrantId=created["GrantId"])
    assert await code_of(kms, "revoke_grant", KeyId=key_id, GrantId=created["GrantId"]) == (400, "NotFoundException")


async def test_grants_go_with_their_key(kms: Any, service: KeyService) -> None:
    key_id = await new_key(kms)
    await grant(kms, key_id, OTHER_DEVELOPER, "Decrypt")

    await service.discard(key_id)

    assert await code_of(kms, "list_grants", KeyId=key_id) == (400, "NotFoundException")


# --- key policies ----------------------------------------------------------------------------------------------------


async def test_a_key_starts_with_the_default_policy(kms: Any) -> None:
    key_id = await new_key(kms)

    got = await call(kms, "get_key_policy", KeyId=key_id)

    assert got == {"Policy": DEFAULT_POLICY, "PolicyName": "default"}
    assert orjson.loads(got["Policy"])["Statement"][0]["Principal"] == {"AWS": ROOT}
    assert await code_of(kms, "get_key_policy", KeyId=key_id, PolicyName="other") == (400, "NotFoundException")


async def test_a_deny_for_a_developer_denies_its_encrypt(kms: Any) -> None:
    key_id = await new_key(kms)
    document = policy(ALLOW_DEVELOPERS, {"Effect": "Deny", "Principal": {"AWS": [DEVELOPER]}, "Action": "kms:Encrypt"})

    await call(kms, "put_key_policy", KeyId=key_id, PolicyName="default", Policy=document)

    assert (await call(kms, "get_key_policy", KeyId=key_id))["Policy"] == document
    assert await code_of(kms, "encrypt", KeyId=key_id, Plaintext=b"x") == (400, "AccessDeniedException")
    assert (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]["KeyId"] == key_id


async def test_a_deny_beats_a_grant(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    principal, as_identity = await an_identity(boto, endpoint)
    await grant(kms, key_id, principal, "Encrypt")
    document = policy(ALLOW_DEVELOPERS, {"Effect": "Deny", "Principal": "*", "Action": ["kms:Encrypt"]})

    await call(kms, "put_key_policy", KeyId=key_id, Policy=document)

    assert await code_of(as_identity, "encrypt", KeyId=key_id, Plaintext=b"x") == (400, "AccessDeniedException")


async def test_create_key_takes_a_policy(kms: Any) -> None:
    document = policy({"Effect": "Allow", "Principal": {"AWS": DEVELOPER}, "Action": ["kms:*"]})

    key_id = await new_key(kms, Policy=document)

    assert (await call(kms, "get_key_policy", KeyId=key_id))["Policy"] == document


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        "[]",
        '{"Statement": []}',
        '{"Version": "2012-10-17"}',
        '{"Version": "2012-10-17", "Statement": []}',
        policy({"Effect": "Maybe", "Principal": "*", "Action": "kms:*"}),
        policy({"Effect": "Allow", "Principal": {"Service": "x"}, "Action": "kms:*"}),
        policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}),
        policy({"Effect": "Allow", "Principal": "*", "Action": []}),
        policy({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Condition": {"Bool": {"a": "b"}}}),
        policy({"Effect": "Allow", "Principal": "*", "NotAction": "kms:*"}),
    ],
)
async def test_malformed_policies_are_refused(kms: Any, document: str) -> None:
    key_id = await new_key(kms)

    status, code, message = await refusal(kms, "put_key_policy", KeyId=key_id, Policy=document)

    assert (status, code) == (400, "MalformedPolicyDocumentException")
    assert (await call(kms, "get_key_policy", KeyId=key_id))["Policy"] == DEFAULT_POLICY
    if "Condition" in document:
        assert "conditions are not supported" in message


async def test_a_policy_that_locks_the_caller_out_needs_the_bypass(kms: Any) -> None:
    key_id = await new_key(kms)
    lockout = policy({"Effect": "Allow", "Principal": {"AWS": OTHER_DEVELOPER}, "Action": "kms:*"})

    refused = await code_of(kms, "put_key_policy", KeyId=key_id, Policy=lockout)
    await call(kms, "put_key_policy", KeyId=key_id, Policy=lockout, BypassPolicyLockoutSafetyCheck=True)

    assert refused == (400, "MalformedPolicyDocumentException")
    assert await code_of(kms, "get_key_policy", KeyId=key_id) == (400, "AccessDeniedException")
    assert await code_of(kms, "put_key_policy", KeyId=key_id, Policy=DEFAULT_POLICY) == (400, "AccessDeniedException")


async def test_identities_may_not_manage_policies(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    _, as_identity = await an_identity(boto, endpoint)

    assert await code_of(as_identity, "get_key_policy", KeyId=key_id) == (400, "AccessDeniedException")
    assert await code_of(as_identity, "put_key_policy", KeyId=key_id, Policy=DEFAULT_POLICY) == (
        400,
        "AccessDeniedException",
    )


# --- policy evaluation (pure) ----------------------------------------------------------------------------------------


def test_the_default_policy_allows_every_developer_and_no_identity() -> None:
    default = parse_policy(DEFAULT_POLICY)

    assert default.decide(developer_principal("AKIDANY"), "kms:Decrypt") == "allow"
    assert default.decide(identity_principal("us-east-1:1234"), "kms:Decrypt") == "none"


def test_deny_wins_then_allow_then_nothing() -> None:
    evaluated = parse_policy(
        policy(
            {"Effect": "Allow", "Principal": "*", "Action": "kms:*"},
            {"Effect": "Deny", "Principal": {"AWS": [DEVELOPER]}, "Action": ["kms:Encrypt", "kms:ReEncrypt*"]},
            {"Effect": "Allow", "Principal": {"AWS": DEVELOPER}, "Action": "kms:Encrypt"},
        )
    )

    assert evaluated.decide(DEVELOPER, "kms:Encrypt") == "deny"
    assert evaluated.decide(DEVELOPER, "kms:ReEncryptTo") == "deny"
    assert evaluated.decide(DEVELOPER, "kms:decrypt") == "allow"  # actions match case-insensitively
    assert evaluated.decide(OTHER_DEVELOPER, "kms:Encrypt") == "allow"
    assert (
        parse_policy(policy({"Effect": "Allow", "Principal": {"AWS": DEVELOPER}, "Action": "kms:Sign"})).decide(
            OTHER_DEVELOPER, "kms:Sign"
        )
        == "none"
    )


def test_a_single_statement_object_is_accepted() -> None:
    document = orjson.dumps(
        {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "*"}}
    ).decode()

    assert parse_policy(document).decide(DEVELOPER, "kms:Decrypt") == "allow"


def test_parse_policy_refuses_conditions_and_oversized_documents() -> None:
    with pytest.raises(MalformedPolicyDocumentError, match="conditions are not supported"):
        parse_policy(policy({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Condition": {}}))
    with pytest.raises(MalformedPolicyDocumentError):
        parse_policy(" " * 131073)


def test_allowed_combines_policy_and_grants() -> None:
    default = parse_policy(DEFAULT_POLICY)
    identity = identity_principal("us-east-1:abcd")
    equals = Grant("a" * 64, "k", identity, ("Decrypt",), 0, context_equals={"app": "x"})
    subset = Grant("b" * 64, "k", identity, ("Encrypt",), 0, context_subset={"app": "x"})
    deny_all = parse_policy(policy(ALLOW_DEVELOPERS, {"Effect": "Deny", "Principal": "*", "Action": "kms:*"}))

    assert allowed(default, [], DEVELOPER, "Encrypt", developer=True)
    assert not allowed(default, [], identity, "Decrypt", developer=False)
    assert allowed(default, [equals], identity, "Decrypt", developer=False, context={"app": "x"})
    assert not allowed(default, [equals], identity, "Decrypt", developer=False, context={"app": "x", "b": "1"})
    assert not allowed(default, [equals], identity, "Encrypt", developer=False, context={"app": "x"})
    assert allowed(default, [subset], identity, "Encrypt", developer=False, context={"app": "x", "b": "1"})
    assert not allowed(default, [subset], identity, "Encrypt", developer=False, context={"b": "1"})
    assert not allowed(deny_all, [equals], identity, "Decrypt", developer=False, context={"app": "x"})
    assert not allowed(deny_all, [], DEVELOPER, "Encrypt", developer=True)


def test_a_grant_round_trips_through_storage() -> None:
    stored = Grant("c" * 64, "k", DEVELOPER, ("Decrypt", "RetireGrant"), 1000, retiring=ROOT, name="n")

    assert Grant.from_stored(stored.stored()) == stored
    assert stored.entry("arn:k")["Operations"] == ["Decrypt", "RetireGrant"]
