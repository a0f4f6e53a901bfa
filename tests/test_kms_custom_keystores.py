"""KMS custom key stores on SoftHSM2 tokens, through unmodified boto3 and once through the AWS CLI: creation,
description, connection (and its failures), update, deletion, every refusal, the state shared by instances, and the
PIN kept sealed."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from syncsvc.api.app import create_app
from syncsvc.api.messages import SERVICES
from syncsvc.config import Settings
from syncsvc.errors import CustomKeyStoreInvalidStateError
from syncsvc.store.connection import RedisClient
from syncsvc.store.custom_keystores import keystore_key
from tests.aws_cli import aws
from tests.conftest import Boto, call, free_port
from tests.kms_calls import an_identity, refusal
from tests.softhsm import OTHER_TOKEN, PIN, TOKEN, SoftHsm

TRUST_ANCHOR = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"


@pytest.fixture
def overrides(softhsm: SoftHsm) -> dict[str, Any]:
    return {"pkcs11_module": softhsm.module}


async def new_store(kms: Any, name: str = "hsm store", token: str = TOKEN, pin: str = PIN) -> str:
    created = await call(
        kms,
        "create_custom_key_store",
        CustomKeyStoreName=name,
        CloudHsmClusterId=token,
        TrustAnchorCertificate=TRUST_ANCHOR,
        KeyStorePassword=pin,
    )
    store_id: str = created["CustomKeyStoreId"]
    return store_id


async def described(kms: Any, store_id: str) -> dict[str, Any]:
    stores: list[dict[str, Any]] = (await call(kms, "describe_custom_key_stores", CustomKeyStoreId=store_id))[
        "CustomKeyStores"
    ]
    assert len(stores) == 1
    return stores[0]


async def state_of(kms: Any, store_id: str) -> tuple[str, str | None]:
    store = await described(kms, store_id)
    return store["ConnectionState"], store.get("ConnectionErrorCode")


# --- creation and description -----------------------------------------------------------------------------------------


async def test_a_new_store_is_described_disconnected_with_what_was_given(kms: Any) -> None:
    before = time.time()
    store_id = await new_store(kms)
    assert re.fullmatch(r"cks-[0-9a-f]{17}", store_id)
    store = await described(kms, store_id)
    created = store.pop("CreationDate").timestamp()
    assert before - 1 <= created <= time.time() + 1
    assert store == {
        "CustomKeyStoreId": store_id,
        "CustomKeyStoreName": "hsm store",
        "CloudHsmClusterId": TOKEN,
        "TrustAnchorCertificate": TRUST_ANCHOR,
        "ConnectionState": "DISCONNECTED",
        "CustomKeyStoreType": "AWS_CLOUDHSM",
    }


async def test_describe_finds_a_store_by_name(kms: Any) -> None:
    store_id = await new_store(kms, name="by name")
    stores = (await call(kms, "describe_custom_key_stores", CustomKeyStoreName="by name"))["CustomKeyStores"]
    assert [store["CustomKeyStoreId"] for store in stores] == [store_id]


async def test_describe_lists_every_store_in_pages(kms: Any) -> None:
    ids = sorted([await new_store(kms, name="first"), await new_store(kms, name="second", token=OTHER_TOKEN)])
    everything = await call(kms, "describe_custom_key_stores")
    assert ([store["CustomKeyStoreId"] for store in everything["CustomKeyStores"]], everything["Truncated"]) == (
        ids,
        False,
    )
    first = await call(kms, "describe_custom_key_stores", Limit=1)
    assert [store["CustomKeyStoreId"] for store in first["CustomKeyStores"]] == ids[:1]
    assert first["Truncated"] is True
    rest = await call(kms, "describe_custom_key_stores", Limit=1, Marker=first["NextMarker"])
    assert ([store["CustomKeyStoreId"] for store in rest["CustomKeyStores"]], rest["Truncated"]) == (ids[1:], False)


async def test_describe_refuses_a_marker_it_did_not_issue(kms: Any) -> None:
    assert await refusal(kms, "describe_custom_key_stores", Marker="not-a-marker") == (
        400,
        "InvalidMarkerException",
        "The marker is not valid for this operation",
    )


async def test_describe_of_an_unknown_store_is_not_found(kms: Any) -> None:
    assert await refusal(kms, "describe_custom_key_stores", CustomKeyStoreId="cks-00000000000000000") == (
        400,
        "CustomKeyStoreNotFoundException",
        "Custom key store with ID 'cks-00000000000000000' does not exist",
    )
    assert await refusal(kms, "describe_custom_key_stores", CustomKeyStoreName="nobody") == (
        400,
        "CustomKeyStoreNotFoundException",
        "Custom key store with name 'nobody' does not exist",
    )


async def test_describe_takes_an_id_or_a_name_not_both(kms: Any) -> None:
    store_id = await new_store(kms)
    status, code, _ = await refusal(
        kms, "describe_custom_key_stores", CustomKeyStoreId=store_id, CustomKeyStoreName="hsm store"
    )
    assert (status, code) == (400, "ValidationException")


async def test_a_name_in_use_is_refused(kms: Any) -> None:
    await new_store(kms, name="taken")
    with_same_name = {"name": "taken", "token": OTHER_TOKEN}
    status, code, message = await refusal(
        kms,
        "create_custom_key_store",
        CustomKeyStoreName=with_same_name["name"],
        CloudHsmClusterId=with_same_name["token"],
        TrustAnchorCertificate=TRUST_ANCHOR,
        KeyStorePassword=PIN,
    )
    assert (status, code, message) == (
        400,
        "CustomKeyStoreNameInUseException",
        "Custom key store name 'taken' is already in use",
    )


async def test_a_token_in_use_by_another_store_is_refused(kms: Any) -> None:
    await new_store(kms, name="first")
    status, code, message = await refusal(
        kms,
        "create_custom_key_store",
        CustomKeyStoreName="second",
        CloudHsmClusterId=TOKEN,
        TrustAnchorCertificate=TRUST_ANCHOR,
        KeyStorePassword=PIN,
    )
    assert (status, code) == (400, "CloudHsmClusterInUseException")
    assert TOKEN in message


async def test_a_token_the_module_does_not_have_is_not_found(kms: Any) -> None:
    status, code, message = await refusal(
        kms,
        "create_custom_key_store",
        CustomKeyStoreName="nowhere",
        CloudHsmClusterId="cluster-nosuchtokenhere",
        TrustAnchorCertificate=TRUST_ANCHOR,
        KeyStorePassword=PIN,
    )
    assert (status, code) == (400, "CloudHsmClusterNotFoundException")
    assert "cluster-nosuchtokenhere" in message
    assert (await call(kms, "describe_custom_key_stores"))["CustomKeyStores"] == []


async def test_a_cluster_id_out_of_kms_pattern_is_a_validation_error(kms: Any) -> None:
    status, code, message = await refusal(
        kms,
        "create_custom_key_store",
        CustomKeyStoreName="bad id",
        CloudHsmClusterId="cluster-has_underscore1",
        TrustAnchorCertificate=TRUST_ANCHOR,
        KeyStorePassword=PIN,
    )
    assert (status, code) == (400, "ValidationException")
    assert "cloudHsmClusterId" in message


async def test_a_cloudhsm_store_needs_its_cluster_trust_anchor_and_password(kms: Any) -> None:
    assert await refusal(kms, "create_custom_key_store", CustomKeyStoreName="bare") == (
        400,
        "ValidationException",
        "CloudHsmClusterId, TrustAnchorCertificate and KeyStorePassword are required for a custom key store of type "
        "AWS_CLOUDHSM",
    )


async def test_an_external_key_store_is_not_served(kms: Any) -> None:
    status, code, message = await refusal(
        kms,
        "create_custom_key_store",
        CustomKeyStoreName="xks",
        CustomKeyStoreType="EXTERNAL_KEY_STORE",
        XksProxyUriEndpoint="https://xks.example.com",
    )
    assert (status, code) == (400, "UnsupportedOperationException")
    assert "external key stores" in message


@pytest.mark.parametrize("overrides", [{}])
async def test_without_a_pkcs11_module_custom_key_stores_are_refused(kms: Any) -> None:
    status, code, message = await refusal(
        kms,
        "create_custom_key_store",
        CustomKeyStoreName="no module",
        CloudHsmClusterId=TOKEN,
        TrustAnchorCertificate=TRUST_ANCHOR,
        KeyStorePassword=PIN,
    )
    assert (status, code) == (400, "UnsupportedOperationException")
    assert "SYNCSVC_PKCS11_MODULE" in message


async def test_an_identity_may_not_manage_custom_key_stores(boto: Boto, endpoint: str) -> None:
    _, as_identity = await an_identity(boto, endpoint)
    status, code = (await refusal(as_identity, "describe_custom_key_stores"))[:2]
    assert (status, code) == (400, "AccessDeniedException")


# --- connection -------------------------------------------------------------------------------------------------------


async def test_connect_logs_in_to_the_token_and_disconnect_undoes_it(kms: Any) -> None:
    store_id = await new_store(kms)
    assert await call(kms, "connect_custom_key_store", CustomKeyStoreId=store_id) == {}
    assert await state_of(kms, store_id) == ("CONNECTED", None)
    assert await call(kms, "connect_custom_key_store", CustomKeyStoreId=store_id) == {}
    assert await state_of(kms, store_id) == ("CONNECTED", None)
    assert await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id) == {}
    assert await state_of(kms, store_id) == ("DISCONNECTED", None)


async def test_disconnecting_a_disconnected_store_is_an_invalid_state(kms: Any) -> None:
    store_id = await new_store(kms)
    status, code, message = await refusal(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)
    assert (status, code) == (400, "CustomKeyStoreInvalidStateException")
    assert "DISCONNECTED" in message


async def test_a_wrong_pin_fails_the_connection_with_invalid_credentials(
    kms: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store_id = await new_store(kms, pin="wrong-pin-1")
    with caplog.at_level(logging.DEBUG):
        assert await call(kms, "connect_custom_key_store", CustomKeyStoreId=store_id) == {}
    assert await state_of(kms, store_id) == ("FAILED", "INVALID_CREDENTIALS")
    assert "wrong-pin-1" not in caplog.text
    assert store_id in caplog.text
    status, code, _ = await refusal(kms, "connect_custom_key_store", CustomKeyStoreId=store_id)
    assert (status, code) == (400, "CustomKeyStoreInvalidStateException")
    await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)
    await call(kms, "update_custom_key_store", CustomKeyStoreId=store_id, KeyStorePassword=PIN)
    await call(kms, "connect_custom_key_store", CustomKeyStoreId=store_id)
    assert await state_of(kms, store_id) == ("CONNECTED", None)
    await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)


async def test_connecting_an_unknown_store_is_not_found(kms: Any) -> None:
    for operation in ("connect_custom_key_store", "disconnect_custom_key_store", "delete_custom_key_store"):
        assert await refusal(kms, operation, CustomKeyStoreId="cks-00000000000000000") == (
            400,
            "CustomKeyStoreNotFoundException",
            "Custom key store with ID 'cks-00000000000000000' does not exist",
        )


async def test_the_pin_is_stored_sealed_and_nowhere_in_the_clear(kms: Any, redis_client: RedisClient) -> None:
    store_id = await new_store(kms)
    stored = await redis_client.hgetall(keystore_key(store_id))
    assert stored
    assert all(PIN.encode() not in value for value in stored.values())


async def test_the_connection_state_holds_across_instances(kms: Any, settings: Settings) -> None:
    store_id = await new_store(kms)
    other = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await other.start_server()
    try:
        keystores = other.app[SERVICES].keystores
        with pytest.raises(CustomKeyStoreInvalidStateError):
            await keystores.token(store_id)
        await call(kms, "connect_custom_key_store", CustomKeyStoreId=store_id)
        token = await keystores.token(store_id)
        label = f"cross-instance-{store_id}"
        await token.create_aes_key(label)
        assert await token.decrypt(label, await token.encrypt(label, b"there")) == b"there"
        await token.destroy_key(label)
        await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)
        with pytest.raises(CustomKeyStoreInvalidStateError) as caught:
            await keystores.token(store_id)
        assert "DISCONNECTED" in caught.value.message
        with pytest.raises(Exception, match="closed"):
            await token.has_key(label)
    finally:
        await other.close()


# --- update and deletion ----------------------------------------------------------------------------------------------


async def test_update_renames_and_moves_a_disconnected_store(kms: Any) -> None:
    store_id = await new_store(kms)
    await call(
        kms, "update_custom_key_store", CustomKeyStoreId=store_id, NewCustomKeyStoreName="renamed",
        CloudHsmClusterId=OTHER_TOKEN,
    )  # fmt: skip
    store = await described(kms, store_id)
    assert (store["CustomKeyStoreName"], store["CloudHsmClusterId"]) == ("renamed", OTHER_TOKEN)
    await new_store(kms, name="hsm store", token=TOKEN)  # the old name and token are free again


async def test_a_connected_store_can_be_renamed_but_its_token_and_pin_not_changed(kms: Any) -> None:
    store_id = await new_store(kms)
    await call(kms, "connect_custom_key_store", CustomKeyStoreId=store_id)
    await call(kms, "update_custom_key_store", CustomKeyStoreId=store_id, NewCustomKeyStoreName="renamed")
    assert (await described(kms, store_id))["CustomKeyStoreName"] == "renamed"
    for change in ({"KeyStorePassword": "another-pin"}, {"CloudHsmClusterId": OTHER_TOKEN}):
        status, code, message = await refusal(kms, "update_custom_key_store", CustomKeyStoreId=store_id, **change)
        assert (status, code) == (400, "CustomKeyStoreInvalidStateException")
        assert "CONNECTED" in message
    store = await described(kms, store_id)
    assert (store["CloudHsmClusterId"], store["ConnectionState"]) == (TOKEN, "CONNECTED")
    await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)


async def test_update_refuses_a_name_or_token_of_another_store_and_a_missing_token(kms: Any) -> None:
    store_id = await new_store(kms, name="mine")
    await new_store(kms, name="theirs", token=OTHER_TOKEN)
    refusals = [
        (await refusal(kms, "update_custom_key_store", CustomKeyStoreId=store_id, **change))[:2]
        for change in (
            {"NewCustomKeyStoreName": "theirs"},
            {"CloudHsmClusterId": OTHER_TOKEN},
            {"CloudHsmClusterId": "cluster-nosuchtokenhere"},
        )
    ]
    assert refusals == [
        (400, "CustomKeyStoreNameInUseException"),
        (400, "CloudHsmClusterInUseException"),
        (400, "CloudHsmClusterNotFoundException"),
    ]
    assert (await described(kms, store_id))["CustomKeyStoreName"] == "mine"
    assert (await refusal(kms, "update_custom_key_store", CustomKeyStoreId="cks-00000000000000000"))[:2] == (
        400,
        "CustomKeyStoreNotFoundException",
    )


async def test_delete_removes_a_disconnected_store_and_frees_its_name(kms: Any) -> None:
    store_id = await new_store(kms)
    assert await call(kms, "delete_custom_key_store", CustomKeyStoreId=store_id) == {}
    assert (await refusal(kms, "describe_custom_key_stores", CustomKeyStoreId=store_id))[1] == (
        "CustomKeyStoreNotFoundException"
    )
    await new_store(kms)


async def test_delete_of_a_connected_store_is_an_invalid_state(kms: Any) -> None:
    store_id = await new_store(kms)
    await call(kms, "connect_custom_key_store", CustomKeyStoreId=store_id)
    assert (await refusal(kms, "delete_custom_key_store", CustomKeyStoreId=store_id))[:2] == (
        400,
        "CustomKeyStoreInvalidStateException",
    )
    assert await state_of(kms, store_id) == ("CONNECTED", None)
    await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)


# --- the AWS CLI ------------------------------------------------------------------------------------------------------


async def test_the_aws_cli_drives_a_store_through_its_life(endpoint: str, tmp_path: Path) -> None:
    code, created, err = await aws(
        endpoint, tmp_path, "kms", "create-custom-key-store", "--custom-key-store-name", "cli store",
        "--cloud-hsm-cluster-id", TOKEN, "--trust-anchor-certificate", TRUST_ANCHOR, "--key-store-password", PIN,
    )  # fmt: skip
    assert (code, err) == (0, "")
    store_id = created["CustomKeyStoreId"]
    for command in ("connect-custom-key-store", "disconnect-custom-key-store"):
        code, _, err = await aws(endpoint, tmp_path, "kms", command, "--custom-key-store-id", store_id)
        assert (code, err) == (0, "")
        code, listed, err = await aws(endpoint, tmp_path, "kms", "describe-custom-key-stores")
        expected = "CONNECTED" if command.startswith("connect") else "DISCONNECTED"
        assert [(store["CustomKeyStoreId"], store["ConnectionState"]) for store in listed["CustomKeyStores"]] == [
            (store_id, expected)
        ]
    code, _, err = await aws(endpoint, tmp_path, "kms", "delete-custom-key-store", "--custom-key-store-id", store_id)
    assert (code, err) == (0, "")
    code, _, err = await aws(endpoint, tmp_path, "kms", "delete-custom-key-store", "--custom-key-store-id", store_id)
    assert code == 255
    assert "CustomKeyStoreNotFoundException" in err
