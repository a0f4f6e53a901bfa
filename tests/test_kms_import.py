"""Imported key material (Origin EXTERNAL) through unmodified boto3 and the AWS CLI: CreateKey for import,
GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial, the expiry of material in the sweep, and each
error by its KMS name. The material is wrapped as a KMS user wraps it: by ``cryptography`` for boto3, by ``openssl``
exactly as the AWS developer guide shows for the CLI. Real Redis, nothing mocked; time moves on a ``ManualClock``
(the server's) instead of being waited for."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from syncsvc.clock import ManualClock
from syncsvc.kms.crypto import KeyCrypto
from syncsvc.kms.imports import KeyImports
from syncsvc.kms.keyservice import KeyService
from syncsvc.kms.keystore import MasterKeys
from syncsvc.kms.model import DAY_MS
from syncsvc.kms.root import FileKey, RootKey
from syncsvc.kms.rotation import rotate_root
from syncsvc.kms.sweeper import Sweep
from syncsvc.store.connection import RedisClient
from syncsvc.store.redis import RedisStore
from tests.aws_cli import cli_environment
from tests.conftest import call
from tests.kms_calls import ACCOUNT, arn, code_of, new_key, refusal

HOUR_MS = 3_600_000


@pytest.fixture
def app_clock() -> ManualClock:
    """The server's time, held still (and moved by the tests that need time to pass)."""
    return ManualClock(int(time.time() * 1000))


# --- helpers ---------------------------------------------------------------------------------------------------------


async def external_key(kms: Any) -> str:
    return await new_key(kms, Origin="EXTERNAL")


async def parameters(
    kms: Any, key_id: str, algorithm: str = "RSAES_OAEP_SHA_256", spec: str = "RSA_2048"
) -> dict[str, Any]:
    return await call(kms, "get_parameters_for_import", KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec)


def wrapped(given: dict[str, Any], algorithm: str, secret: bytes) -> bytes:
    """``secret`` wrapped under GetParametersForImport's PublicKey with ``algorithm``, as a KMS user does."""
    public = serialization.load_der_public_key(given["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    chosen = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()  # noqa: S303 (KMS's algorithm)
    oaep = padding.OAEP(mgf=padding.MGF1(chosen), algorithm=chosen, label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(secret, oaep)
    aes_key = os.urandom(32)
    return public.encrypt(aes_key, oaep) + aes_key_wrap_with_padding(aes_key, secret)


async def imported(kms: Any, key_id: str, secret: bytes, **expiration: Any) -> None:
    """``secret`` imported into ``key_id`` (KEY_MATERIAL_DOES_NOT_EXPIRE unless ``expiration`` says otherwise)."""
    given = await parameters(kms, key_id)
    expiration = expiration or {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}
    await call(
        kms,
        "import_key_material",
        KeyId=key_id,
        ImportToken=given["ImportToken"],
        EncryptedKeyMaterial=wrapped(given, "RSAES_OAEP_SHA_256", secret),
        **expiration,
    )


async def state_of(kms: Any, key_id: str) -> str:
    state: str = (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]["KeyState"]
    return state


def moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


# --- CreateKey -------------------------------------------------------------------------------------------------------


async def test_a_key_for_import_is_pending_import_without_material(kms: Any) -> None:
    created = await call(kms, "create_key", Origin="EXTERNAL", Description="byok")

    key_id = created["KeyMetadata"]["KeyId"]
    assert created["KeyMetadata"] == {
        "AWSAccountId": ACCOUNT,
        "KeyId": key_id,
        "Arn": arn(key_id),
        "CreationDate": ANY,
        "Enabled": False,
        "Description": "byok",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": "PendingImport",
        "Origin": "EXTERNAL",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "MultiRegion": False,
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
    }


async def test_a_key_for_import_cannot_encrypt_enable_or_disable_before_its_import(kms: Any) -> None:
    key_id = await external_key(kms)

    encrypting = await refusal(kms, "encrypt", KeyId=key_id, Plaintext=b"x")
    assert encrypting == (400, "KMSInvalidStateException", f"{arn(key_id)} is pending import.")
    assert await code_of(kms, "generate_data_key", KeyId=key_id, KeySpec="AES_256") == (400, "KMSInvalidStateException")
    assert await code_of(kms, "enable_key", KeyId=key_id) == (400, "KMSInvalidStateException")
    assert await code_of(kms, "disable_key", KeyId=key_id) == (400, "KMSInvalidStateException")


@pytest.mark.parametrize(
    "params",
    [{"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}, {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}],
)
async def test_only_symmetric_encryption_keys_are_made_for_import(kms: Any, params: dict[str, str]) -> None:
    status, code, message = await refusal(kms, "create_key", Origin="EXTERNAL", **params)

    assert (status, code) == (400, "UnsupportedOperationException")
    assert "imports symmetric encryption key material (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT) only" in message


async def test_a_key_for_import_cannot_be_in_a_custom_key_store(kms: Any) -> None:
    refused = await refusal(kms, "create_key", Origin="EXTERNAL", CustomKeyStoreId="cks-1234567890abcdef0")

    assert refused == (
        400,
        "UnsupportedOperationException",
        "Key material cannot be imported into a KMS key in a custom key store",
    )


async def test_a_key_for_import_does_not_rotate(kms: Any) -> None:
    key_id = await external_key(kms)
    await imported(kms, key_id, os.urandom(32))

    assert await code_of(kms, "enable_key_rotation", KeyId=key_id) == (400, "UnsupportedOperationException")
    assert await code_of(kms, "rotate_key_on_demand", KeyId=key_id) == (400, "UnsupportedOperationException")


# --- GetParametersForImport ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["RSA_2048", "RSA_3072", "RSA_4096"])
async def test_parameters_are_a_fresh_rsa_public_key_and_a_token_for_24_hours(
    kms: Any, app_clock: ManualClock, spec: str
) -> None:
    key_id = await external_key(kms)

    first = await parameters(kms, key_id, "RSA_AES_KEY_WRAP_SHA_256", spec)
    second = await parameters(kms, key_id, "RSA_AES_KEY_WRAP_SHA_256", spec)

    public = serialization.load_der_public_key(first["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == int(spec.removeprefix("RSA_"))
    assert first == {"KeyId": arn(key_id), "ImportToken": ANY, "PublicKey": ANY, "ParametersValidTo": ANY}
    assert first["ParametersValidTo"] == moment(app_clock.now_ms() + DAY_MS)
    assert first["PublicKey"] != second["PublicKey"]
    assert first["ImportToken"] != second["ImportToken"]


async def test_parameters_are_only_for_a_key_with_origin_external(kms: Any) -> None:
    key_id = await new_key(kms)

    assert await code_of(
        kms,
        "get_parameters_for_import",
        KeyId=key_id,
        WrappingAlgorithm="RSAES_OAEP_SHA_256",
        WrappingKeySpec="RSA_2048",
    ) == (
        400,
        "UnsupportedOperationException",
    )


async def test_parameters_are_refused_for_a_key_pending_deletion(kms: Any) -> None:
    key_id = await external_key(kms)
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)

    assert await code_of(
        kms,
        "get_parameters_for_import",
        KeyId=key_id,
        WrappingAlgorithm="RSAES_OAEP_SHA_256",
        WrappingKeySpec="RSA_2048",
    ) == (400, "KMSInvalidStateException")


async def test_parameters_take_a_key_id_or_key_arn_not_an_alias(kms: Any) -> None:
    key_id = await external_key(kms)
    await call(kms, "create_alias", AliasName="alias/byok", TargetKeyId=key_id)

    assert (await parameters(kms, arn(key_id)))["KeyId"] == arn(key_id)
    assert await code_of(
        kms,
        "get_parameters_for_import",
        KeyId="alias/byok",
        WrappingAlgorithm="RSAES_OAEP_SHA_256",
        WrappingKeySpec="RSA_2048",
    ) == (400, "NotFoundException")


@pytest.mark.parametrize(("algorithm", "spec"), [("RSAES_PKCS1_V1_5", "RSA_2048"), ("SM2PKE", "SM2")])
async def test_wrapping_kms_no_longer_offers_or_offers_only_in_china_is_refused(
    kms: Any, algorithm: str, spec: str
) -> None:
    key_id = await external_key(kms)

    assert await code_of(
        kms, "get_parameters_for_import", KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec
    ) == (400, "UnsupportedOperationException")


# --- ImportKeyMaterial -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"]
)
async def test_imported_material_encrypts_and_decrypts(kms: Any, algorithm: str) -> None:
    key_id = await external_key(kms)
    given = await parameters(kms, key_id, algorithm)

    answer = await call(
        kms,
        "import_key_material",
        KeyId=key_id,
        ImportToken=given["ImportToken"],
        EncryptedKeyMaterial=wrapped(given, algorithm, os.urandom(32)),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )

    assert answer == {}
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"records"))["CiphertextBlob"]
    assert (await call(kms, "decrypt", CiphertextBlob=blob))["Plaintext"] == b"records"
    metadata = (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Enabled"]) == ("Enabled", True)
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in metadata


async def test_material_that_expires_is_described_with_its_valid_to(kms: Any, app_clock: ManualClock) -> None:
    key_id = await external_key(kms)
    valid_to = app_clock.now_ms() // 1000 * 1000 + 30 * DAY_MS

    await imported(kms, key_id, os.urandom(32), ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=moment(valid_to))

    metadata = (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]
    assert (metadata["ExpirationModel"], metadata["ValidTo"]) == ("KEY_MATERIAL_EXPIRES", moment(valid_to))


@pytest.mark.parametrize(
    ("expiration", "message"),
    [
        ({}, "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES"),
        (
            {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ValidTo": datetime(2999, 1, 1, tzinfo=UTC)},
            "A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE",
        ),
        ({"ValidTo": datetime(2000, 1, 1, tzinfo=UTC)}, "The validTo date must be in the future"),
    ],
)
async def test_the_expiration_model_and_valid_to_follow_kms_rules(
    kms: Any, expiration: dict[str, Any], message: str
) -> None:
    key_id = await external_key(kms)
    given = await parameters(kms, key_id)

    refused = await refusal(
        kms,
        "import_key_material",
        KeyId=key_id,
        ImportToken=given["ImportToken"],
        EncryptedKeyMaterial=wrapped(given, "RSAES_OAEP_SHA_256", os.urandom(32)),
        **expiration,
    )

    assert refused == (400, "ValidationException", message)
    assert await state_of(kms, key_id) == "PendingImport"


async def test_material_that_is_not_256_bits_is_incorrect(kms: Any) -> None:
    key_id = await external_key(kms)

    with pytest.raises(Exception, match="IncorrectKeyMaterialException"):
        await imported(kms, key_id, os.urandom(16))
    assert await state_of(kms, key_id) == "PendingImport"


async def test_material_wrapped_under_another_public_key_is_an_invalid_ciphertext(kms: Any) -> None:
    key_id = await external_key(kms)
    given, other = await parameters(kms, key_id), await parameters(kms, key_id)

    refused = await code_of(
        kms,
        "import_key_material",
        KeyId=key_id,
        ImportToken=given["ImportToken"],
        EncryptedKeyMaterial=wrapped(other, "RSAES_OAEP_SHA_256", os.urandom(32)),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )

    assert refused == (400, "InvalidCiphertextException")


async def test_a_token_of_another_key_or_not_from_kms_is_invalid(kms: Any) -> None:
    key_id, other_id = await external_key(kms), await external_key(kms)
    other = await parameters(kms, other_id)

    for token in (other["ImportToken"], b"not a token from this service at all"):
        refused = await code_of(
            kms,
            "import_key_material",
            KeyId=key_id,
            ImportToken=token,
            EncryptedKeyMaterial=wrapped(other, "RSAES_OAEP_SHA_256", os.urandom(32)),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
        assert refused == (400, "InvalidImportTokenException")


async def test_a_token_is_used_up_by_its_import(kms: Any) -> None:
    key_id = await external_key(kms)
    given, secret = await parameters(kms, key_id), os.urandom(32)
    material = {
        "KeyId": key_id,
        "ImportToken": given["ImportToken"],
        "EncryptedKeyMaterial": wrapped(given, "RSAES_OAEP_SHA_256", secret),
        "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE",
    }
    await call(kms, "import_key_material", **material)
    await call(kms, "delete_imported_key_material", KeyId=key_id)

    assert await code_of(kms, "import_key_material", **material) == (400, "InvalidImportTokenException")


async def test_a_token_expires_after_24_hours(kms: Any, service: KeyService, app_clock: ManualClock) -> None:
    """The token is issued by an instance whose time is a day behind the server's (the server's own clock also
    checks request signatures, so it cannot be moved a day on)."""
    key_id = await external_key(kms)
    keys = service.keys
    yesterday = MasterKeys(
        keys.store, keys.root, region=keys.region, internal=False, clock=ManualClock(app_clock.now_ms() - DAY_MS)
    )
    issued = await KeyImports(yesterday).parameters(key_id, "RSAES_OAEP_SHA_256", "RSA_2048")

    refused = await code_of(
        kms,
        "import_key_material",
        KeyId=key_id,
        ImportToken=issued.token,
        EncryptedKeyMaterial=wrapped({"PublicKey": issued.public_key}, "RSAES_OAEP_SHA_256", os.urandom(32)),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )

    assert refused == (400, "ExpiredImportTokenException")


async def test_material_is_imported_only_into_a_key_pending_import(kms: Any) -> None:
    key_id = await external_key(kms)
    secret = os.urandom(32)
    await imported(kms, key_id, secret)

    with pytest.raises(Exception, match="KMSInvalidStateException"):
        await imported(kms, key_id, secret)


async def test_material_is_imported_only_into_a_key_with_origin_external(kms: Any) -> None:
    external_id, key_id = await external_key(kms), await new_key(kms)
    given = await parameters(kms, external_id)

    refused = await code_of(
        kms,
        "import_key_material",
        KeyId=key_id,
        ImportToken=given["ImportToken"],
        EncryptedKeyMaterial=wrapped(given, "RSAES_OAEP_SHA_256", os.urandom(32)),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )

    assert refused == (400, "UnsupportedOperationException")
    assert await code_of(kms, "delete_imported_key_material", KeyId=key_id) == (400, "UnsupportedOperationException")


# --- DeleteImportedKeyMaterial and re-import --------------------------------------------------------------------------


async def test_deleted_material_leaves_ciphertexts_undecryptable_until_the_same_material_returns(kms: Any) -> None:
    key_id = await external_key(kms)
    secret = os.urandom(32)
    await imported(kms, key_id, secret)
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"records"))["CiphertextBlob"]

    assert await call(kms, "delete_imported_key_material", KeyId=key_id) == {}

    metadata = (await call(kms, "describe_key", KeyId=key_id))["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Enabled"], "ExpirationModel" in metadata) == ("PendingImport", False, False)
    refused = await refusal(kms, "decrypt", CiphertextBlob=blob)
    assert refused == (400, "KMSInvalidStateException", f"{arn(key_id)} is pending import.")
    await imported(kms, key_id, secret)
    assert (await call(kms, "decrypt", CiphertextBlob=blob))["Plaintext"] == b"records"


async def test_different_material_is_refused_after_the_first(kms: Any) -> None:
    key_id = await external_key(kms)
    await imported(kms, key_id, os.urandom(32))
    await call(kms, "delete_imported_key_material", KeyId=key_id)

    with pytest.raises(Exception, match="IncorrectKeyMaterialException"):
        await imported(kms, key_id, os.urandom(32))
    assert await state_of(kms, key_id) == "PendingImport"


async def test_a_key_without_material_has_none_to_delete(kms: Any) -> None:
    key_id = await external_key(kms)

    assert await code_of(kms, "delete_imported_key_material", KeyId=key_id) == (400, "KMSInvalidStateException")


async def test_deleting_the_material_of_a_key_pending_deletion_keeps_its_state(kms: Any) -> None:
    key_id = await external_key(kms)
    await imported(kms, key_id, os.urandom(32))
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)

    await call(kms, "delete_imported_key_material", KeyId=key_id)

    assert await state_of(kms, key_id) == "PendingDeletion"
    await call(kms, "cancel_key_deletion", KeyId=key_id)
    assert await state_of(kms, key_id) == "PendingImport"


async def test_a_disabled_key_with_material_is_disabled_again_after_its_deletion_is_cancelled(kms: Any) -> None:
    key_id = await external_key(kms)
    await imported(kms, key_id, os.urandom(32))
    await call(kms, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)

    await call(kms, "cancel_key_deletion", KeyId=key_id)

    assert await state_of(kms, key_id) == "Disabled"


# --- expiry ----------------------------------------------------------------------------------------------------------


async def test_the_sweep_deletes_material_at_its_valid_to(
    kms: Any, service: KeyService, app_clock: ManualClock
) -> None:
    key_id, lasting_id = await external_key(kms), await external_key(kms)
    secret = os.urandom(32)
    valid_to = app_clock.now_ms() + HOUR_MS
    await imported(kms, key_id, secret, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=moment(valid_to))
    await imported(kms, lasting_id, os.urandom(32))
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"records"))["CiphertextBlob"]

    early = await service.sweep(valid_to - 1)
    swept = await service.sweep(valid_to)

    assert (early, swept) == (Sweep(), Sweep(expired=(key_id,)))
    assert (await state_of(kms, key_id), await state_of(kms, lasting_id)) == ("PendingImport", "Enabled")
    assert await code_of(kms, "decrypt", CiphertextBlob=blob) == (400, "KMSInvalidStateException")
    await imported(kms, key_id, secret)
    assert (await call(kms, "decrypt", CiphertextBlob=blob))["Plaintext"] == b"records"


# --- the AWS CLI, with material made and wrapped by openssl as the AWS developer guide shows --------------------------

CLI_FLOW = """
set -e
K=$(aws kms create-key --origin EXTERNAL --query KeyMetadata.KeyId --output text)
read -r PUBLIC_KEY IMPORT_TOKEN <<< "$(aws kms get-parameters-for-import --key-id $K \\
    --wrapping-algorithm RSAES_OAEP_SHA_256 --wrapping-key-spec RSA_4096 \\
    --query '[PublicKey, ImportToken]' --output text)"
echo $PUBLIC_KEY | base64 --decode > PublicKey.bin
echo $IMPORT_TOKEN | base64 --decode > ImportToken.bin
openssl rand -out PlaintextKeyMaterial.bin 32
openssl pkeyutl -encrypt -in PlaintextKeyMaterial.bin -out EncryptedKeyMaterial.bin \\
    -inkey PublicKey.bin -keyform DER -pubin \\
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
aws kms import-key-material --key-id $K --encrypted-key-material fileb://EncryptedKeyMaterial.bin \\
    --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_EXPIRES --valid-to {valid_to}
aws kms describe-key --key-id $K --query '[KeyMetadata.KeyState, KeyMetadata.ExpirationModel]' --output text
aws kms encrypt --key-id $K --plaintext fileb://secret.txt --output text --query CiphertextBlob \\
    | base64 --decode > enc
aws kms decrypt --ciphertext-blob fileb://enc --output text --query Plaintext | base64 --decode
aws kms delete-imported-key-material --key-id $K
aws kms describe-key --key-id $K --query KeyMetadata.KeyState --output text
"""


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
async def test_the_aws_cli_imports_material_made_by_openssl(
    endpoint: str, tmp_path: Path, app_clock: ManualClock
) -> None:
    (tmp_path / "secret.txt").write_bytes(b"the launch code is 0000\n")
    valid_to = moment(app_clock.now_ms() + 30 * DAY_MS).strftime("%Y-%m-%dT%H:%M:%SZ")
    bin_dir = str(Path(sys.executable).parent)
    env = cli_environment(
        tmp_path, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", AWS_ENDPOINT_URL=endpoint
    )
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-o",
        "pipefail",
        "-c",
        CLI_FLOW.format(valid_to=valid_to),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)

    assert (process.returncode, err.decode()) == (0, "")
    assert out.decode().splitlines() == [
        "Enabled\tKEY_MATERIAL_EXPIRES",
        "the launch code is 0000",
        "PendingImport",
    ]


# --- the root key ----------------------------------------------------------------------------------------------------


async def test_a_root_key_rotation_moves_the_commitment_so_the_same_material_still_imports(
    kms: Any, service: KeyService, redis_client: RedisClient
) -> None:
    key_id = await external_key(kms)
    secret = os.urandom(32)
    await imported(kms, key_id, secret)
    blob = (await call(kms, "encrypt", KeyId=key_id, Plaintext=b"records"))["CiphertextBlob"]
    await call(kms, "delete_imported_key_material", KeyId=key_id)
    keys = service.keys
    new_root = RootKey(FileKey(os.urandom(32))).replacing(keys.root)

    await rotate_root(RedisStore(redis_client), keys.store, new_root)

    after = MasterKeys(keys.store, RootKey(new_root.current), region=keys.region, internal=False, clock=keys.clock)
    issued = await KeyImports(after).parameters(key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
    wrapped_secret = wrapped({"PublicKey": issued.public_key}, "RSAES_OAEP_SHA_256", secret)
    await KeyImports(after).import_material(
        key_id, issued.token, wrapped_secret, expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE", valid_to_ms=None
    )
    assert (await KeyCrypto(after).decrypt(blob))[0] == b"records"
