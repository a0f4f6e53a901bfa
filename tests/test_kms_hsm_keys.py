"""KMS keys in a custom key store (Origin AWS_CLOUDHSM) on SoftHSM2, through unmodified boto3 and once through the AWS
CLI: the AES key really inside the token (seen from another process with python-pkcs11, its value unreadable), the
symmetric operations run there, their ciphertexts readable by a fresh instance, a disconnected store's keys refused,
deletion destroying the token's key, and every refusal."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from syncsvc.api.app import create_app
from syncsvc.config import Settings
from syncsvc.kms.keyservice import KeyService
from syncsvc.kms.model import DAY_MS
from tests.aws_cli import aws
from tests.conftest import call, free_port
from tests.kms_calls import kms_client, refusal
from tests.softhsm import PIN, TOKEN, SoftHsm

TRUST_ANCHOR = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
#: Run in another process (its own PKCS#11 login): what the token holds under a label, as JSON (null: nothing).
PROBE = """
import json, sys
import pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import AttributeSensitive, NoSuchKey

module, token_label, pin, label = sys.argv[1:5]
with pkcs11.lib(module).get_token(token_label=token_label).open(user_pin=pin) as session:
    try:
        key = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=label)
    except NoSuchKey:
        print("null")
        raise SystemExit(0)
    try:
        key[Attribute.VALUE]
        value = "readable"
    except AttributeSensitive:
        value = "sensitive"
    print(json.dumps({
        "bits": key[Attribute.VALUE_LEN] * 8, "token": key[Attribute.TOKEN], "sensitive": key[Attribute.SENSITIVE],
        "extractable": key[Attribute.EXTRACTABLE], "value": value,
    }))
"""


@pytest.fixture
def overrides(softhsm: SoftHsm) -> dict[str, Any]:
    return {"pkcs11_module": softhsm.module}


async def in_token(softhsm: SoftHsm, key_id: str) -> dict[str, Any] | None:
    """What the store's token holds for a KMS key, seen by another process logged in with python-pkcs11."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE, softhsm.module, TOKEN, PIN, f"syncsvc-kms:{key_id}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()
    found: dict[str, Any] | None = json.loads(out)
    return found


async def connected_store(kms: Any) -> str:
    created = await call(
        kms,
        "create_custom_key_store",
        CustomKeyStoreName="hsm keys",
        CloudHsmClusterId=TOKEN,
        TrustAnchorCertificate=TRUST_ANCHOR,
        KeyStorePassword=PIN,
    )
    store_id: str = created["CustomKeyStoreId"]
    await call(kms, "connect_custom_key_store", CustomKeyStoreId=store_id)
    return store_id


async def hsm_key(kms: Any, store_id: str) -> str:
    created = await call(kms, "create_key", Origin="AWS_CLOUDHSM", CustomKeyStoreId=store_id)
    key_id: str = created["KeyMetadata"]["KeyId"]
    return key_id


# --- creation -----------------------------------------------------------------------------------------------------


async def test_a_key_is_made_in_a_connected_store_and_described_as_kms_does(kms: Any) -> None:
    store_id = await connected_store(kms)
    before = time.time()
    created = (await call(kms, "create_key", Origin="AWS_CLOUDHSM", CustomKeyStoreId=store_id, Description="in hsm"))[
        "KeyMetadata"
    ]
    assert before - 1 <= created.pop("CreationDate").timestamp() <= time.time() + 1
    key_id = created["KeyId"]
    assert created == {
        "AWSAccountId": "000000000000",
        "KeyId": key_id,
        "Arn": f"arn:aws:kms:us-east-1:000000000000:key/{key_id}",
        "Enabled": True,
        "Description": "in hsm",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": "Enabled",
        "Origin": "AWS_CLOUDHSM",
        "CustomKeyStoreId": store_id,
        "CloudHsmClusterId": TOKEN,
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": False,
    }
    described = (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]
    described.pop("CreationDate")
    assert described == created


async def test_the_key_material_is_an_unreadable_aes_key_inside_the_token(kms: Any, softhsm: SoftHsm) -> None:
    key_id = await hsm_key(kms, await connected_store(kms))
    assert await in_token(softhsm, key_id) == {
        "bits": 256,
        "token": True,
        "sensitive": True,
        "extractable": False,
        "value": "sensitive",
    }


async def test_the_kms_key_stores_no_material(kms: Any, service: KeyService) -> None:
    key_id = await hsm_key(kms, await connected_store(kms))
    stored = await service.keys.store.load(key_id)
    assert stored is not None
    assert stored.versions == {}


async def test_a_key_in_an_unknown_store_is_not_found(kms: Any) -> None:
    assert await refusal(kms, "create_key", Origin="AWS_CLOUDHSM", CustomKeyStoreId="cks-00000000000000000") == (
        400,
        "CustomKeyStoreNotFoundException",
        "Custom key store with ID 'cks-00000000000000000' does not exist",
    )


async def test_a_key_in_a_disconnected_store_is_an_invalid_state(kms: Any) -> None:
    store_id = await connected_store(kms)
    await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)
    status, code, message = await refusal(kms, "create_key", Origin="AWS_CLOUDHSM", CustomKeyStoreId=store_id)
    assert (status, code) == (400, "CustomKeyStoreInvalidStateException")
    assert f"Custom key store {store_id} is DISCONNECTED" in message
    assert (await call(kms, "list_keys"))["Keys"] == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"KeySpec": "RSA_2048"}, "UnsupportedOperationException"),
        ({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}, "UnsupportedOperationException"),
        ({"KeyUsage": "SIGN_VERIFY"}, "ValidationException"),
    ],
)
async def test_only_symmetric_encryption_keys_are_made_in_a_store(
    kms: Any, spec: dict[str, str], expected: str
) -> None:
    store_id = await connected_store(kms)
    status, code, _ = await refusal(kms, "create_key", Origin="AWS_CLOUDHSM", CustomKeyStoreId=store_id, **spec)
    assert (status, code) == (400, expected)
    assert (await call(kms, "list_keys"))["Keys"] == []


async def test_origin_and_custom_key_store_go_together(kms: Any) -> None:
    store_id = await connected_store(kms)
    status, code, message = await refusal(kms, "create_key", Origin="AWS_CLOUDHSM")
    assert (status, code) == (400, "UnsupportedOperationException")
    assert "CustomKeyStoreId" in message
    status, code, message = await refusal(kms, "create_key", CustomKeyStoreId=store_id)
    assert (status, code) == (400, "UnsupportedOperationException")
    assert "AWS_CLOUDHSM" in message


async def test_a_store_with_keys_cannot_be_deleted(kms: Any) -> None:
    store_id = await connected_store(kms)
    await hsm_key(kms, store_id)
    await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)
    status, code, _ = await refusal(kms, "delete_custom_key_store", CustomKeyStoreId=store_id)
    assert (status, code) == (400, "CustomKeyStoreHasCMKsException")


# --- cryptography -------------------------------------------------------------------------------------------------


async def test_encrypt_and_decrypt_round_trip_with_the_encryption_context(kms: Any) -> None:
    key_id = await hsm_key(kms, await connected_store(kms))
    context = {"purpose": "test", "tenant": "a"}
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"secret", EncryptionContext=context))["CiphertextBlob"]
    assert blob.startswith(b"sk1" + key_id.encode())
    assert await call(kms, "decrypt", CiphertextBlob=blob, EncryptionContext=context) == {
        "KeyId": f"arn:aws:kms:us-east-1:000000000000:key/{key_id}",
        "Plaintext": b"secret",
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }


async def test_another_context_or_an_altered_blob_is_an_invalid_ciphertext(kms: Any) -> None:
    key_id = await hsm_key(kms, await connected_store(kms))
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"secret", EncryptionContext={"a": "1"}))[
        "CiphertextBlob"
    ]
    altered = blob[:-1] + bytes([blob[-1] ^ 1])
    for given in ({"CiphertextBlob": blob, "EncryptionContext": {"a": "2"}}, {"CiphertextBlob": blob}):
        status, code, _ = await refusal(kms, "decrypt", **given)
        assert (status, code) == (400, "InvalidCiphertextException")
    status, code, _ = await refusal(kms, "decrypt", CiphertextBlob=altered, EncryptionContext={"a": "1"})
    assert (status, code) == (400, "InvalidCiphertextException")


async def test_data_keys_are_sealed_by_the_token(kms: Any) -> None:
    key_id = await hsm_key(kms, await connected_store(kms))
    data_key = await call(kms, "generate_data_key", KeyId=key_id, KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32
    opened = await call(kms, "decrypt", CiphertextBlob=data_key["CiphertextBlob"])
    assert opened["Plaintext"] == data_key["Plaintext"]
    bare = await call(kms, "generate_data_key_without_plaintext", KeyId=key_id, NumberOfBytes=16)
    assert "Plaintext" not in bare
    assert len((await call(kms, "decrypt", CiphertextBlob=bare["CiphertextBlob"]))["Plaintext"]) == 16


async def test_re_encrypt_moves_a_ciphertext_between_a_token_key_and_an_ordinary_key(kms: Any) -> None:
    key_id = await hsm_key(kms, await connected_store(kms))
    ordinary = (await call(kms, "create_key"))["KeyMetadata"]["KeyId"]
    blob = (await call(kms, "encrypt", KeyId=ordinary, Plaintext=b"moved"))["CiphertextBlob"]
    into_hsm = (await call(kms, "re_encrypt", CiphertextBlob=blob, DestinationKeyId=key_id))["CiphertextBlob"]
    assert (await call(kms, "decrypt", CiphertextBlob=into_hsm))["Plaintext"] == b"moved"
    back = (await call(kms, "re_encrypt", CiphertextBlob=into_hsm, DestinationKeyId=ordinary))["CiphertextBlob"]
    assert (await call(kms, "decrypt", CiphertextBlob=back))["Plaintext"] == b"moved"


async def test_ciphertexts_decrypt_on_a_fresh_instance(kms: Any, settings: Settings) -> None:
    key_id = await hsm_key(kms, await connected_store(kms))
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"after restart"))["CiphertextBlob"]
    other = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await other.start_server()
    try:
        restarted = kms_client(str(other.make_url("")).rstrip("/"))
        assert (await call(restarted, "decrypt", CiphertextBlob=blob))["Plaintext"] == b"after restart"
    finally:
        await other.close()


async def test_a_disconnected_store_makes_its_keys_an_invalid_state_until_it_reconnects(kms: Any) -> None:
    store_id = await connected_store(kms)
    key_id = await hsm_key(kms, store_id)
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"kept"))["CiphertextBlob"]
    await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("encrypt", {"KeyId": key_id, "Plaintext": b"x"}),
        ("decrypt", {"CiphertextBlob": blob}),
        ("generate_data_key", {"KeyId": key_id, "NumberOfBytes": 32}),
        ("re_encrypt", {"CiphertextBlob": blob, "DestinationKeyId": key_id}),
    ]
    for operation, params in calls:
        status, code, message = await refusal(kms, operation, **params)
        assert (status, code) == (400, "KMSInvalidStateException"), operation
        assert store_id in message
    assert (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]["KeyState"] == "Enabled"
    await call(kms, "connect_custom_key_store", CustomKeyStoreId=store_id)
    assert (await call(kms, "decrypt", CiphertextBlob=blob))["Plaintext"] == b"kept"


async def test_a_disabled_token_key_is_disabled(kms: Any) -> None:
    key_id = await hsm_key(kms, await connected_store(kms))
    await call(kms, "disable_key", KeyId=key_id)
    status, code, _ = await refusal(kms, "encrypt", KeyId=key_id, Plaintext=b"x")
    assert (status, code) == (400, "DisabledException")


@pytest.mark.parametrize(
    "operation", ["enable_key_rotation", "disable_key_rotation", "rotate_key_on_demand", "list_key_rotations"]
)
async def test_keys_in_a_store_do_not_rotate(kms: Any, operation: str) -> None:
    key_id = await hsm_key(kms, await connected_store(kms))
    status, code, message = await refusal(kms, operation, KeyId=key_id)
    assert (status, code) == (400, "UnsupportedOperationException")
    assert "custom key store" in message


# --- deletion -----------------------------------------------------------------------------------------------------


async def test_the_sweep_deletes_the_key_and_destroys_it_in_the_token(
    kms: Any, service: KeyService, softhsm: SoftHsm
) -> None:
    store_id = await connected_store(kms)
    key_id = await hsm_key(kms, store_id)
    await call(kms, "create_alias", AliasName="alias/in-hsm", TargetKeyId=key_id)
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)
    assert await in_token(softhsm, key_id) is not None
    swept = await service.sweep(int(time.time() * 1000) + 8 * DAY_MS)
    assert swept.deleted == (key_id,)
    assert await in_token(softhsm, key_id) is None
    assert (await call(kms, "list_aliases"))["Aliases"] == []
    status, code, _ = await refusal(kms, "describe_key", KeyId=key_id)
    assert (status, code) == (400, "NotFoundException")
    await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)
    assert await call(kms, "delete_custom_key_store", CustomKeyStoreId=store_id) == {}


async def test_a_key_of_a_disconnected_store_is_deleted_and_its_token_key_left(
    kms: Any, service: KeyService, softhsm: SoftHsm
) -> None:
    store_id = await connected_store(kms)
    key_id = await hsm_key(kms, store_id)
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)
    await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)
    swept = await service.sweep(int(time.time() * 1000) + 8 * DAY_MS)
    assert swept.deleted == (key_id,)
    assert await in_token(softhsm, key_id) is not None
    assert await call(kms, "delete_custom_key_store", CustomKeyStoreId=store_id) == {}


# --- the AWS CLI --------------------------------------------------------------------------------------------------


async def test_the_aws_cli_makes_and_uses_a_key_in_a_store(kms: Any, endpoint: str, tmp_path: Path) -> None:
    store_id = await connected_store(kms)
    code, created, err = await aws(
        endpoint, tmp_path, "kms", "create-key", "--origin", "AWS_CLOUDHSM", "--custom-key-store-id", store_id
    )
    assert (code, err) == (0, "")
    assert (created["KeyMetadata"]["Origin"], created["KeyMetadata"]["CustomKeyStoreId"]) == ("AWS_CLOUDHSM", store_id)
    key_id = created["KeyMetadata"]["KeyId"]
    plaintext = tmp_path / "plain.txt"
    plaintext.write_bytes(b"through the cli")
    code, encrypted, err = await aws(
        endpoint, tmp_path, "kms", "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{plaintext}"
    )
    assert (code, err) == (0, "")
    blob = tmp_path / "blob"
    blob.write_bytes(base64.b64decode(encrypted["CiphertextBlob"]))
    code, decrypted, err = await aws(endpoint, tmp_path, "kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}")
    assert (code, err) == (0, "")
    assert base64.b64decode(decrypted["Plaintext"]) == b"through the cli"
