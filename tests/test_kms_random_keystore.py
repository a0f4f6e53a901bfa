"""GenerateRandom with a CustomKeyStoreId: the bytes come from the store's PKCS#11 token (SoftHSM2 here), only while
the store is CONNECTED, driven by unmodified boto3 against the real server on real Redis."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import call
from tests.kms_calls import refusal
from tests.softhsm import PIN, TOKEN, SoftHsm

TRUST_ANCHOR = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"


@pytest.fixture
def overrides(softhsm: SoftHsm) -> dict[str, Any]:
    return {"pkcs11_module": softhsm.module}


async def a_store(kms: Any) -> str:
    created = await call(
        kms,
        "create_custom_key_store",
        CustomKeyStoreName="random source",
        CloudHsmClusterId=TOKEN,
        TrustAnchorCertificate=TRUST_ANCHOR,
        KeyStorePassword=PIN,
    )
    store_id: str = created["CustomKeyStoreId"]
    return store_id


async def test_generate_random_draws_from_a_connected_store_s_token(kms: Any) -> None:
    store_id = await a_store(kms)
    await call(kms, "connect_custom_key_store", CustomKeyStoreId=store_id)

    first = await call(kms, "generate_random", NumberOfBytes=64, CustomKeyStoreId=store_id)
    second = await call(kms, "generate_random", NumberOfBytes=64, CustomKeyStoreId=store_id)

    assert len(first["Plaintext"]) == len(second["Plaintext"]) == 64
    assert first["Plaintext"] != second["Plaintext"]
    await call(kms, "disconnect_custom_key_store", CustomKeyStoreId=store_id)


async def test_generate_random_from_a_disconnected_store_is_an_invalid_state(kms: Any) -> None:
    store_id = await a_store(kms)

    refused = await refusal(kms, "generate_random", NumberOfBytes=8, CustomKeyStoreId=store_id)

    assert refused == (
        400,
        "CustomKeyStoreInvalidStateException",
        f"Custom key store {store_id} is DISCONNECTED, not CONNECTED",
    )
