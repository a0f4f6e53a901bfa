"""The rest of the KMS API — UpdateKeyDescription, ListKeyPolicies, ListKeyRotations, GenerateRandom — the key-only
operations given an alias, multi-Region keys, and the operations syncsvc does not serve, driven by unmodified boto3
against the real server on real Redis. The sweep is called with a ``now_ms`` in the future instead of waiting."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import botocore.session
import orjson
import pytest

from syncsvc.api.kms import SURFACE
from syncsvc.api.kms.unserved import REASONS
from syncsvc.kms.keyservice import KeyService
from syncsvc.kms.model import DAY_MS
from syncsvc.kms.policy import DEFAULT_POLICY
from tests.conftest import Boto, Raw, call
from tests.kms_calls import ARN_PREFIX, DEVELOPER, an_identity, arn, code_of, grant, new_key, refusal

MISSING = "1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER = "arn:aws:iam::000000000000:user/AKIDRETIRER"
ACCOUNT_ROOT = "arn:aws:iam::000000000000:root"
#: Operations of the KMS reference that other work in progress serves (imported key material, custom key stores):
#: until then they are unknown operations, neither served nor refused here.
IN_PROGRESS = {
    "GetParametersForImport",
    "ImportKeyMaterial",
    "DeleteImportedKeyMaterial",
    "CreateCustomKeyStore",
    "ConnectCustomKeyStore",
    "DescribeCustomKeyStores",
    "DisconnectCustomKeyStore",
    "UpdateCustomKeyStore",
    "DeleteCustomKeyStore",
}


def now_ms() -> int:
    return int(time.time() * 1000)


def near(moment: datetime, expected_ms: int, *, within_seconds: float = 10) -> bool:
    return abs(moment.timestamp() * 1000 - expected_ms) <= within_seconds * 1000


def material_id(key_id: str, version: int) -> str:
    return hashlib.sha256(f"{key_id}:{version}".encode()).hexdigest()


# --- UpdateKeyDescription ---------------------------------------------------------------------------------------------


async def test_update_key_description_changes_what_describe_key_answers(kms: Any) -> None:
    key_id = await new_key(kms, Description="before")

    assert await call(kms, "update_key_description", KeyId=arn(key_id), Description="after") == {}

    assert (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]["Description"] == "after"


async def test_update_key_description_errors(kms: Any) -> None:
    pending = await new_key(kms)
    await call(kms, "schedule_key_deletion", KeyId=pending, PendingWindowInDays=7)

    assert [
        await refusal(kms, "update_key_description", KeyId=pending, Description="x"),
        await refusal(kms, "update_key_description", KeyId=MISSING, Description="x"),
        await code_of(kms, "update_key_description", KeyId=pending, Description="d" * 8193),
    ] == [
        (400, "KMSInvalidStateException", f"{arn(pending)} is pending deletion."),
        (400, "NotFoundException", f"Key '{arn(MISSING)}' does not exist"),
        (400, "ValidationException"),
    ]


# --- ListKeyPolicies -------------------------------------------------------------------------------------------------


async def test_list_key_policies_answers_the_default_policy(kms: Any) -> None:
    key_id = await new_key(kms)

    assert await call(kms, "list_key_policies", KeyId=key_id) == {"PolicyNames": ["default"], "Truncated": False}
    assert await call(kms, "list_key_policies", KeyId=arn(key_id), Limit=1) == {
        "PolicyNames": ["default"],
        "Truncated": False,
    }
    assert await refusal(kms, "list_key_policies", KeyId=MISSING) == (
        400,
        "NotFoundException",
        f"Key '{arn(MISSING)}' does not exist",
    )
    assert await code_of(kms, "list_key_policies", KeyId=key_id, Limit=1001) == (400, "ValidationException")


# --- ListKeyRotations ------------------------------------------------------------------------------------------------


async def test_a_new_key_has_no_rotations(kms: Any) -> None:
    key_id = await new_key(kms)

    assert await call(kms, "list_key_rotations", KeyId=key_id) == {"Rotations": [], "Truncated": False}


async def test_list_key_rotations_lists_on_demand_and_automatic_rotations_oldest_first(
    kms: Any, service: KeyService
) -> None:
    key_id = await new_key(kms)
    await call(kms, "rotate_key_on_demand", KeyId=key_id)
    on_demand_at = now_ms()
    await call(kms, "enable_key_rotation", KeyId=key_id, RotationPeriodInDays=90)
    automatic_at = now_ms() + 91 * DAY_MS
    assert (await service.sweep(automatic_at)).rotated == (key_id,)

    listed = await call(kms, "list_key_rotations", KeyId=key_id)

    assert listed == {
        "Rotations": [
            {
                "KeyId": key_id,
                "KeyMaterialId": material_id(key_id, 2),
                "KeyMaterialState": "NON_CURRENT",
                "RotationDate": listed["Rotations"][0]["RotationDate"],
                "RotationType": "ON_DEMAND",
            },
            {
                "KeyId": key_id,
                "KeyMaterialId": material_id(key_id, 3),
                "KeyMaterialState": "CURRENT",
                "RotationDate": listed["Rotations"][1]["RotationDate"],
                "RotationType": "AUTOMATIC",
            },
        ],
        "Truncated": False,
    }
    assert near(listed["Rotations"][0]["RotationDate"], on_demand_at)
    assert near(listed["Rotations"][1]["RotationDate"], automatic_at)


async def test_list_key_rotations_with_all_key_material_adds_the_first_material(kms: Any) -> None:
    key_id = await new_key(kms)
    await call(kms, "rotate_key_on_demand", KeyId=key_id)

    listed = await call(kms, "list_key_rotations", KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")

    assert [(r["KeyMaterialId"], r["KeyMaterialState"], r.get("RotationType")) for r in listed["Rotations"]] == [
        (material_id(key_id, 1), "NON_CURRENT", None),
        (material_id(key_id, 2), "CURRENT", "ON_DEMAND"),
    ]
    assert "RotationDate" not in listed["Rotations"][0]


async def test_list_key_rotations_pages_with_markers(kms: Any) -> None:
    key_id = await new_key(kms)
    for _ in range(3):
        await call(kms, "rotate_key_on_demand", KeyId=key_id)

    first = await call(kms, "list_key_rotations", KeyId=key_id, Limit=2)
    rest = await call(kms, "list_key_rotations", KeyId=key_id, Limit=2, Marker=first["NextMarker"])

    assert [r["KeyMaterialId"] for r in first["Rotations"]] == [material_id(key_id, 2), material_id(key_id, 3)]
    assert first["Truncated"] is True
    assert [r["KeyMaterialId"] for r in rest["Rotations"]] == [material_id(key_id, 4)]
    assert rest["Truncated"] is False
    assert await code_of(kms, "list_key_rotations", KeyId=key_id, Marker="forged") == (400, "InvalidMarkerException")


async def test_list_key_rotations_of_a_key_that_cannot_rotate_is_unsupported(kms: Any) -> None:
    key_id = await new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")

    refused = await refusal(kms, "list_key_rotations", KeyId=key_id)

    assert refused == (
        400,
        "UnsupportedOperationException",
        f"{arn(key_id)} key spec is ECC_NIST_P256: only symmetric encryption keys have key rotations",
    )


# --- GenerateRandom --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 32, 1024])
async def test_generate_random_answers_the_bytes_asked_for(kms: Any, size: int) -> None:
    first = await call(kms, "generate_random", NumberOfBytes=size)
    second = await call(kms, "generate_random", NumberOfBytes=size)

    assert list(first) == ["Plaintext"]
    assert len(first["Plaintext"]) == len(second["Plaintext"]) == size
    assert size == 1 or first["Plaintext"] != second["Plaintext"]


@pytest.mark.parametrize(
    ("size", "constraint"),
    [(0, "greater than or equal to 1"), (1025, "less than or equal to 1024")],
)
async def test_generate_random_takes_1_to_1024_bytes(raw: Raw, size: int, constraint: str) -> None:
    answer = await kms_json(raw, "GenerateRandom", orjson.dumps({"NumberOfBytes": size}))

    assert answer == validation_error(f"Value '{size}' at 'numberOfBytes'", f"Member must have value {constraint}")


@pytest.mark.parametrize(
    ("valid_to", "quoted", "constraint"),
    [
        (
            "1.7976931348623157e308",
            "1.7976931348623157e+308",
            "Member must have value less than or equal to 99999999999.999",
        ),
        ("1e400", "inf", "Member must be a finite number"),
        ("-1", "-1", "Member must have value greater than or equal to 0"),
    ],
)
async def test_import_key_material_refuses_a_valid_to_date_past_what_the_store_keeps(
    raw: Raw, valid_to: str, quoted: str, constraint: str
) -> None:
    """A date is milliseconds in the store: one that cannot be (the largest double, infinity) is a validation error,
    not an overflow in the server."""
    body = (
        '{"KeyId": "2fb11998-3f54-44bf-a3d1-e201369c3fdc", "ImportToken": "AAAA", "EncryptedKeyMaterial": "AAAA", '
        f'"ExpirationModel": "KEY_MATERIAL_EXPIRES", "ValidTo": {valid_to}}}'
    )
    answer = await kms_json(raw, "ImportKeyMaterial", body.encode())

    assert answer == validation_error(f"Value '{quoted}' at 'validTo'", constraint)


async def kms_json(raw: Raw, operation: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """A KMS request of ``body`` exactly as given (a number boto3 would not send): the status and the answer."""
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"TrentService.{operation}"}
    status, answer, _ = await raw.send("POST", "/", body=body, service="kms", headers=headers)
    return status, answer


def validation_error(value_at: str, constraint: str) -> tuple[int, dict[str, str]]:
    """KMS's answer to one member breaking its constraint: ``value_at`` is "Value 'x' at 'member'"."""
    message = f"1 validation error detected: {value_at} failed to satisfy constraint: {constraint}"
    return 400, {"__type": "ValidationException", "message": message}


async def test_an_identity_may_generate_random_bytes(boto: Boto, endpoint: str) -> None:
    _, as_identity = await an_identity(boto, endpoint)

    assert len((await call(as_identity, "generate_random", NumberOfBytes=16))["Plaintext"]) == 16


async def test_generate_random_errors(kms: Any) -> None:
    assert [
        await refusal(kms, "generate_random"),
        await refusal(kms, "generate_random", NumberOfBytes=8, CustomKeyStoreId="cks-1234567890abcdef0"),
        await code_of(
            kms,
            "generate_random",
            NumberOfBytes=8,
            Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": b"doc"},
        ),
    ] == [
        (
            400,
            "ValidationException",
            "1 validation error detected: Value null at 'numberOfBytes' failed to satisfy constraint: Member must "
            "not be null",
        ),
        (400, "CustomKeyStoreNotFoundException", "Custom key store with ID 'cks-1234567890abcdef0' does not exist"),
        (400, "UnsupportedOperationException"),
    ]


# --- ListRetirableGrants --------------------------------------------------------------------------------------------


async def test_list_retirable_grants_lists_the_grants_a_principal_may_retire_across_keys(kms: Any) -> None:
    first, second = sorted([await new_key(kms), await new_key(kms)])
    retiring = await grant(kms, second, DEVELOPER, "Decrypt", RetiringPrincipal=OTHER, Name="b")
    earlier = await grant(kms, first, DEVELOPER, "Encrypt", RetiringPrincipal=OTHER)
    await grant(kms, first, DEVELOPER, "Decrypt", RetiringPrincipal=DEVELOPER)
    await grant(kms, second, DEVELOPER, "Decrypt")

    listed = await call(kms, "list_retirable_grants", RetiringPrincipal=OTHER)

    assert listed == {
        "Grants": [
            {
                "KeyId": arn(first),
                "GrantId": earlier["GrantId"],
                "CreationDate": ANY,
                "GranteePrincipal": DEVELOPER,
                "RetiringPrincipal": OTHER,
                "IssuingAccount": ACCOUNT_ROOT,
                "Operations": ["Encrypt"],
            },
            {
                "KeyId": arn(second),
                "GrantId": retiring["GrantId"],
                "Name": "b",
                "CreationDate": ANY,
                "GranteePrincipal": DEVELOPER,
                "RetiringPrincipal": OTHER,
                "IssuingAccount": ACCOUNT_ROOT,
                "Operations": ["Decrypt"],
            },
        ],
        "Truncated": False,
    }


async def test_list_retirable_grants_pages_with_markers(kms: Any) -> None:
    key_ids = sorted([await new_key(kms) for _ in range(2)])
    made = [await grant(kms, key_id, DEVELOPER, "Decrypt", RetiringPrincipal=OTHER) for key_id in key_ids * 2]
    expected = sorted((arn(key_id), g["GrantId"]) for key_id, g in zip(key_ids * 2, made, strict=True))

    first = await call(kms, "list_retirable_grants", RetiringPrincipal=OTHER, Limit=3)
    rest = await call(kms, "list_retirable_grants", RetiringPrincipal=OTHER, Limit=3, Marker=first["NextMarker"])

    assert [(g["KeyId"], g["GrantId"]) for g in first["Grants"] + rest["Grants"]] == expected
    assert (first["Truncated"], rest["Truncated"]) == (True, False)
    assert await code_of(kms, "list_retirable_grants", RetiringPrincipal=OTHER, Marker="forged") == (
        400,
        "InvalidMarkerException",
    )


async def test_list_retirable_grants_errors(kms: Any, boto: Boto, endpoint: str) -> None:
    _, as_identity = await an_identity(boto, endpoint)

    assert [
        await code_of(kms, "list_retirable_grants"),
        await code_of(kms, "list_retirable_grants", RetiringPrincipal="not-an-arn"),
        await code_of(kms, "list_retirable_grants", RetiringServicePrincipal="dynamodb.amazonaws.com"),
        await code_of(as_identity, "list_retirable_grants", RetiringPrincipal=OTHER),
    ] == [
        (400, "ValidationException"),
        (400, "InvalidArnException"),
        (400, "UnsupportedOperationException"),
        (400, "AccessDeniedException"),
    ]


# --- key-only operations given an alias -----------------------------------------------------------------------------


KEY_ONLY: list[tuple[str, dict[str, Any]]] = [
    ("enable_key", {}),
    ("disable_key", {}),
    ("schedule_key_deletion", {"PendingWindowInDays": 7}),
    ("cancel_key_deletion", {}),
    ("enable_key_rotation", {}),
    ("disable_key_rotation", {}),
    ("get_key_rotation_status", {}),
    ("rotate_key_on_demand", {}),
    ("update_key_description", {"Description": "changed"}),
    ("list_key_policies", {}),
    ("list_key_rotations", {}),
    ("get_key_policy", {"PolicyName": "default"}),
    ("put_key_policy", {"PolicyName": "default", "Policy": DEFAULT_POLICY}),
    ("create_grant", {"GranteePrincipal": DEVELOPER, "Operations": ["Decrypt"]}),
    ("list_grants", {}),
    ("revoke_grant", {"GrantId": "0" * 64}),
    ("list_aliases", {}),
]


@pytest.mark.parametrize(("operation", "params"), KEY_ONLY, ids=[operation for operation, _ in KEY_ONLY])
@pytest.mark.parametrize("form", ["alias", "alias ARN"])
async def test_a_key_only_operation_given_an_alias_is_not_found_and_leaves_the_key_alone(
    kms: Any, operation: str, params: dict[str, Any], form: str
) -> None:
    key_id = await new_key(kms, Description="as made")
    await call(kms, "create_alias", AliasName="alias/named", TargetKeyId=key_id)
    before = await call(kms, "describe_key", KeyId=key_id)
    reference = "alias/named" if form == "alias" else f"{ARN_PREFIX}:alias/named"

    refused = await refusal(kms, operation, KeyId=reference, **params)

    assert refused == (400, "NotFoundException", f"Invalid keyId {reference}")
    assert await call(kms, "describe_key", KeyId=key_id) == before
    assert await call(kms, "list_grants", KeyId=key_id) == {"Grants": [], "Truncated": False}
    assert await call(kms, "list_key_rotations", KeyId=key_id) == {"Rotations": [], "Truncated": False}
    assert await call(kms, "get_key_rotation_status", KeyId=key_id) == {"KeyRotationEnabled": False, "KeyId": key_id}


# --- multi-Region keys and the operations syncsvc does not serve -----------------------------------------------------


async def test_create_key_refuses_a_multi_region_key(kms: Any) -> None:
    refused = await refusal(kms, "create_key", MultiRegion=True)

    assert refused == (
        400,
        "UnsupportedOperationException",
        "Multi-Region keys are not supported: this syncsvc deployment holds keys of one region only (us-east-1), so "
        "there is no other region to replicate a key to",
    )
    assert await call(kms, "list_keys") == {"Keys": [], "Truncated": False}


UNSERVED: list[tuple[str, dict[str, Any]]] = [
    ("replicate_key", {"KeyId": MISSING, "ReplicaRegion": "eu-west-1"}),
    ("update_primary_region", {"KeyId": MISSING, "PrimaryRegion": "eu-west-1"}),
    ("derive_shared_secret", {"KeyId": MISSING, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b"k"}),
    ("encapsulate", {"KeyId": MISSING, "EncapsulationAlgorithm": "ML_KEM"}),
    ("decapsulate", {"KeyId": MISSING, "SharedSecretCiphertextBlob": b"c", "EncapsulationAlgorithm": "ML_KEM"}),
    ("get_key_last_usage", {"KeyId": MISSING}),
]


@pytest.mark.parametrize(("operation", "params"), UNSERVED, ids=[operation for operation, _ in UNSERVED])
async def test_an_unserved_operation_is_unsupported_with_its_reason(
    kms: Any, operation: str, params: dict[str, Any]
) -> None:
    name = kms.meta.method_to_api_mapping[operation]

    assert await refusal(kms, operation, **params) == (400, "UnsupportedOperationException", REASONS[name])


def test_the_readme_lists_every_unserved_operation() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme[readme.index("| operation | why |") :].split("\n\n")[0]

    assert all(f" {name}" in table for name in REASONS)


async def test_every_operation_of_the_kms_reference_is_served_refused_or_in_progress() -> None:
    reference = set(botocore.session.get_session().get_service_model("kms").operation_names)

    assert reference - set(SURFACE.operations) <= IN_PROGRESS
    assert set(REASONS) <= reference
