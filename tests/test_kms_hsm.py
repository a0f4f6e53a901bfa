"""syncsvc.kms.hsm against real SoftHSM2 tokens (tests/softhsm.py): keys made inside a token stay there, AES-GCM runs
in it, and every failure is an HsmError that says which."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from syncsvc.kms import hsm
from syncsvc.kms.hsm import IV_BYTES, TAG_BYTES, HsmError, HsmToken, TokenRef
from tests.softhsm import BARE_TOKEN, PIN, TOKEN, SoftHsm


@pytest.fixture
async def token(softhsm: SoftHsm) -> AsyncIterator[HsmToken]:
    opened = await hsm.open_token(TokenRef(softhsm.module, label=TOKEN), PIN)
    yield opened
    await opened.close()


def a_label() -> str:
    return f"test-{uuid.uuid4()}"


async def test_a_key_made_in_the_token_is_sensitive_unextractable_and_kept_in_the_token(
    token: HsmToken, softhsm: SoftHsm
) -> None:
    label = a_label()
    await token.create_aes_key(label)
    # a session of the test's own, on the same token: the process is logged in to it through ``token``
    session = pkcs11.lib(softhsm.module).get_token(token_label=TOKEN).open()
    try:
        key = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=label)
        attributes = [key[name] for name in (Attribute.SENSITIVE, Attribute.EXTRACTABLE, Attribute.TOKEN)]
        assert attributes == [True, False, True]
        assert key[Attribute.VALUE_LEN] == 32
        with pytest.raises(AttributeSensitive):
            key[Attribute.VALUE]
    finally:
        session.close()


async def test_encrypt_then_decrypt_in_the_token_gives_the_plaintext_back(token: HsmToken) -> None:
    label = a_label()
    await token.create_aes_key(label)
    sealed = await token.encrypt(label, b"the plaintext", b"associated data")
    assert len(sealed) == IV_BYTES + len(b"the plaintext") + TAG_BYTES
    assert await token.decrypt(label, sealed, b"associated data") == b"the plaintext"


async def test_each_encryption_draws_a_new_iv(token: HsmToken) -> None:
    label = a_label()
    await token.create_aes_key(label)
    sealed = [await token.encrypt(label, b"same") for _ in range(3)]
    assert len({blob[:IV_BYTES] for blob in sealed}) == 3


async def test_a_ciphertext_does_not_open_with_other_associated_data(token: HsmToken) -> None:
    label = a_label()
    await token.create_aes_key(label)
    sealed = await token.encrypt(label, b"secret", b"context A")
    with pytest.raises(HsmError) as caught:
        await token.decrypt(label, sealed, b"context B")
    assert caught.value.reason == "ciphertext"
    assert caught.value.code == "KMSInternalException"


async def test_a_tampered_ciphertext_does_not_open(token: HsmToken) -> None:
    label = a_label()
    await token.create_aes_key(label)
    sealed = bytearray(await token.encrypt(label, b"secret"))
    sealed[-1] ^= 1
    with pytest.raises(HsmError) as caught:
        await token.decrypt(label, bytes(sealed))
    assert caught.value.reason == "ciphertext"


async def test_a_ciphertext_does_not_open_under_another_key(token: HsmToken) -> None:
    first, second = a_label(), a_label()
    await token.create_aes_key(first)
    await token.create_aes_key(second)
    sealed = await token.encrypt(first, b"secret")
    with pytest.raises(HsmError) as caught:
        await token.decrypt(second, sealed)
    assert caught.value.reason == "ciphertext"


async def test_random_bytes_come_from_the_token(token: HsmToken) -> None:
    drawn = [await token.random(32) for _ in range(2)]
    assert [len(block) for block in drawn] == [32, 32]
    assert drawn[0] != drawn[1]


async def test_a_key_outlives_the_session_that_made_it(softhsm: SoftHsm) -> None:
    ref, label = TokenRef(softhsm.module, label=TOKEN), a_label()
    first = await hsm.open_token(ref, PIN)
    await first.create_aes_key(label)
    sealed = await first.encrypt(label, b"kept")
    await first.close()
    second = await hsm.open_token(ref, PIN)
    try:
        assert await second.has_key(label)
        assert await second.decrypt(label, sealed) == b"kept"
    finally:
        await second.close()


async def test_a_label_in_use_is_refused(token: HsmToken) -> None:
    label = a_label()
    await token.create_aes_key(label)
    with pytest.raises(HsmError) as caught:
        await token.create_aes_key(label)
    assert caught.value.reason == "key_exists"
    assert label in caught.value.message


async def test_a_destroyed_key_is_gone(token: HsmToken) -> None:
    label = a_label()
    await token.create_aes_key(label)
    await token.destroy_key(label)
    assert not await token.has_key(label)
    with pytest.raises(HsmError) as caught:
        await token.encrypt(label, b"x")
    assert caught.value.reason == "key_missing"
    with pytest.raises(HsmError) as destroyed:
        await token.destroy_key(label)
    assert destroyed.value.reason == "key_missing"


async def test_a_wrong_pin_is_refused(softhsm: SoftHsm) -> None:
    with pytest.raises(HsmError) as caught:
        await hsm.open_token(TokenRef(softhsm.module, label=BARE_TOKEN), "not-the-pin")
    assert caught.value.reason == "pin_incorrect"
    assert "not-the-pin" not in caught.value.message
    assert BARE_TOKEN in caught.value.message


async def test_a_wrong_pin_is_refused_while_the_process_is_logged_in_to_the_token(token: HsmToken) -> None:
    with pytest.raises(HsmError) as caught:
        await hsm.open_token(token.ref, "not-the-pin")
    assert caught.value.reason == "pin_incorrect"


async def test_a_second_session_with_the_right_pin_opens_beside_the_first(token: HsmToken) -> None:
    label = a_label()
    await token.create_aes_key(label)
    second = await hsm.open_token(token.ref, PIN)
    try:
        assert await second.decrypt(label, await token.encrypt(label, b"shared")) == b"shared"
    finally:
        await second.close()
    assert await token.has_key(label)


async def test_a_missing_token_is_named(softhsm: SoftHsm) -> None:
    with pytest.raises(HsmError) as caught:
        await hsm.open_token(TokenRef(softhsm.module, label="cluster-nosuchtokenhere"), PIN)
    assert caught.value.reason == "token_missing"
    assert "cluster-nosuchtokenhere" in caught.value.message


async def test_a_missing_slot_is_named(softhsm: SoftHsm) -> None:
    with pytest.raises(HsmError) as caught:
        await hsm.find_token(TokenRef(softhsm.module, slot=987654321))
    assert (caught.value.reason, "slot 987654321" in caught.value.message) == ("token_missing", True)


async def test_a_token_opens_by_slot(token: HsmToken, softhsm: SoftHsm) -> None:
    slot = pkcs11.lib(softhsm.module).get_token(token_label=TOKEN).slot.slot_id
    label = a_label()
    await token.create_aes_key(label)
    by_slot = await hsm.open_token(TokenRef(softhsm.module, slot=slot), PIN)
    try:
        assert await by_slot.has_key(label)
    finally:
        await by_slot.close()


async def test_a_missing_module_is_named(softhsm: SoftHsm) -> None:
    with pytest.raises(HsmError) as caught:
        await hsm.open_token(TokenRef("/nonexistent/libpkcs11.so", label=TOKEN), PIN)
    assert caught.value.reason == "module_missing"
    assert "/nonexistent/libpkcs11.so" in caught.value.message


async def test_a_closed_session_refuses_work(softhsm: SoftHsm) -> None:
    closed = await hsm.open_token(TokenRef(softhsm.module, label=TOKEN), PIN)
    await closed.close()
    await closed.close()
    with pytest.raises(HsmError) as caught:
        await closed.has_key("anything")
    assert caught.value.reason == "not_opened"


async def test_concurrent_calls_on_one_session_all_succeed(token: HsmToken) -> None:
    label = a_label()
    await token.create_aes_key(label)
    plaintexts = [f"message {n}".encode() for n in range(40)]
    sealed = await asyncio.gather(*(token.encrypt(label, text, b"ad") for text in plaintexts))
    opened = await asyncio.gather(*(token.decrypt(label, blob, b"ad") for blob in sealed))
    assert opened == plaintexts
