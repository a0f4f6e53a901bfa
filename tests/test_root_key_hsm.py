"""The root key in an HSM (``SYNCSVC_ROOT_KEY_PKCS11``): made inside a real SoftHSM2 token by `syncsvc keys root-key`
and never extractable, every master key, secret and record value a server stores is sealed under it, a restart opens
it all again, another key is refused, `syncsvc keys rotate-root` moves a deployment from a key file into the token
(and from one token key to another), and a URI that cannot work is refused at start with one line that never shows
the PIN. Real Redis, real SoftHSM2 (tests/softhsm.py), the real command as a process."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
import pytest
import redis.asyncio as aioredis
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import AttributeSensitive
from pydantic import ValidationError

from syncsvc import rediskeys
from syncsvc.config import Settings
from syncsvc.kms import hsm
from syncsvc.kms.hsm import HsmToken, TokenRef
from syncsvc.kms.material import MaterialError
from syncsvc.kms.root import FileKey, RootKey
from syncsvc.kms.token_secret import open_token_secret
from syncsvc.runtime import Services, StartupError, open_services
from tests.conftest import ROOT_KEY_FILE, make_settings, process_environment
from tests.servers import SYNCSVC
from tests.softhsm import PIN, ROOT_TOKEN, SoftHsm

IDENTITY = "us-east-1:00000000-0000-4000-8000-000000000001"
POOL = "us-east-1:00000000-0000-4000-8000-0000000000aa"
CONTEXT = {"purpose": "root key in an HSM"}


@dataclass(frozen=True)
class Hsm:
    """The session's SoftHSM2 and a file holding the root token's user PIN."""

    softhsm: SoftHsm
    pin_file: Path

    def uri(self, label: str, *, pin: str | None = None) -> str:
        """The URI of the root key ``label`` in the root token (its PIN from the file, or ``pin`` inline)."""
        secret = f"pin-value={pin}" if pin is not None else f"pin-source=file:{self.pin_file}"
        return f"pkcs11:token={ROOT_TOKEN};object={label}?module-path={self.softhsm.module}&{secret}"


@pytest.fixture
def root_hsm(softhsm: SoftHsm, tmp_path: Path) -> Hsm:
    pin_file = tmp_path / "root.pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    return Hsm(softhsm, pin_file)


@pytest.fixture
async def root_token(softhsm: SoftHsm) -> AsyncIterator[HsmToken]:
    """A session of the test's own on the root token (the process is logged in to it while the session is open)."""
    token = await hsm.open_token(TokenRef(softhsm.module, label=ROOT_TOKEN), PIN)
    yield token
    await token.close()


def a_label() -> str:
    return f"root-{uuid.uuid4()}"


async def syncsvc_keys(*arguments: str, **env: str) -> tuple[int, str]:
    """Runs `syncsvc keys …` as a process; its exit code and standard error. The suite's key file is not given when
    ``env`` names a root key in a token."""
    environment = process_environment(**env)
    if "SYNCSVC_ROOT_KEY_PKCS11" in env:
        del environment["SYNCSVC_ROOT_KEY_FILE"]
    command = await asyncio.create_subprocess_exec(
        SYNCSVC,
        "keys",
        *arguments,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(command.communicate(), timeout=120)
    assert command.returncode is not None
    return command.returncode, err.decode()


async def made_root_key(root_hsm: Hsm) -> str:
    """A new root key made in the root token by `syncsvc keys root-key`; its URI."""
    uri = root_hsm.uri(a_label())
    code, err = await syncsvc_keys("root-key", uri)
    assert code == 0, err
    return uri


def in_hsm(redis_url: str, uri: str, **overrides: Any) -> Settings:
    """Settings of a server whose root key is the token key ``uri`` (and no key file)."""
    return make_settings(redis_url, root_key_file=None, root_key_pkcs11=uri, **overrides)


@dataclass(frozen=True)
class Stored:
    """What a deployment made: a KMS ciphertext, a sealed record value and its token secret."""

    kms_blob: bytes
    sealed_value: str
    token_secret: bytes


async def store_some(services: Services) -> Stored:
    key = await services.kms.lifecycle.create_key(description="an application key")
    kms_blob = await services.kms.encrypt(key.key_id, b"launch code", CONTEXT)
    cipher = await services.envelope.cipher(rediskeys.IdentityKeyspace.of(POOL, IDENTITY, services.settings.shards))
    stored = await services.store.stored_token_secret()
    assert stored is not None
    return Stored(
        kms_blob, cipher.seal("settings", "theme", "dark"), await open_token_secret(services.kms.keys.root, stored)
    )


async def reads_back(services: Services, stored: Stored) -> None:
    plaintext, _ = await services.kms.decrypt(stored.kms_blob, CONTEXT)
    cipher = await services.envelope.cipher(rediskeys.IdentityKeyspace.of(POOL, IDENTITY, services.settings.shards))
    sealed_secret = await services.store.stored_token_secret()
    assert sealed_secret is not None
    assert plaintext == b"launch code"
    assert cipher.open("settings", "theme", stored.sealed_value) == "dark"
    assert await open_token_secret(services.kms.keys.root, sealed_secret) == stored.token_secret


async def every_blob_opens_under(client: aioredis.Redis, root: RootKey) -> bool:
    """Every backing key of every KMS key and the token secret open under ``root`` alone."""
    try:
        for member in await client.zrange(rediskeys.KMS_KEYS, 0, -1):
            assert isinstance(member, bytes)
            key_id = member.decode()
            for field, wrapped in (await client.hgetall(rediskeys.kms_key(key_id))).items():
                assert isinstance(field, bytes)
                assert isinstance(wrapped, bytes)
                if field.startswith(b"v"):
                    await root.unwrap(wrapped, key_id, int(field[1:]))
        sealed = await client.get(rediskeys.TOKEN_SECRET)
        assert isinstance(sealed, bytes)
        await open_token_secret(root, sealed)
    except MaterialError:
        return False
    return True


async def test_root_key_makes_a_key_inside_the_token_that_cannot_leave_it(root_hsm: Hsm, root_token: HsmToken) -> None:
    label = a_label()
    uri = root_hsm.uri(label)
    first = await syncsvc_keys("root-key", uri)
    again = await syncsvc_keys("root-key", uri)  # the key exists: nothing new is made
    assert first[0] == again[0] == 0
    assert f"root key: the root key {label!r} in the PKCS#11 token labelled {ROOT_TOKEN!r}" in first[1]
    assert PIN not in first[1] + again[1]

    session = pkcs11.lib(root_hsm.softhsm.module).get_token(token_label=ROOT_TOKEN).open()
    try:
        keys = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}))
        assert len(keys) == 1
        key = keys[0]
        assert (key[Attribute.KEY_TYPE], key[Attribute.VALUE_LEN]) == (KeyType.AES, 32)
        assert (key[Attribute.SENSITIVE], key[Attribute.EXTRACTABLE], key[Attribute.TOKEN]) == (True, False, True)
        with pytest.raises(AttributeSensitive):
            key[Attribute.VALUE]
    finally:
        session.close()


async def test_a_server_seals_everything_under_the_key_in_the_token_and_opens_it_again_after_a_restart(
    redis_url: str, redis_client: aioredis.Redis, root_hsm: Hsm
) -> None:
    uri = await made_root_key(root_hsm)
    async with open_services(in_hsm(redis_url, uri)) as services:
        stored = await store_some(services)
        assert "FileKey" not in repr(services.kms.keys.root)  # no key bytes in this process
    recorded = await redis_client.hget(rediskeys.META, "root_key_check")
    assert isinstance(recorded, bytes)
    assert recorded.startswith(b"sealed:")  # the token sealed the check label: a key in a token has no HMAC to show
    # what Redis holds is under the token's key, not under the suite's key file
    assert not await every_blob_opens_under(redis_client, RootKey.from_file(ROOT_KEY_FILE))

    async with open_services(in_hsm(redis_url, uri)) as services:
        await reads_back(services, stored)
        assert await every_blob_opens_under(redis_client, services.kms.keys.root)


async def test_another_root_key_is_refused_whether_in_the_token_or_in_a_file(
    redis_url: str, redis_client: aioredis.Redis, root_hsm: Hsm
) -> None:
    uri = await made_root_key(root_hsm)
    async with open_services(in_hsm(redis_url, uri)):
        pass
    other = await made_root_key(root_hsm)
    with pytest.raises(StartupError) as in_token:
        async with open_services(in_hsm(redis_url, other)):
            pass
    with pytest.raises(StartupError) as in_file:
        async with open_services(make_settings(redis_url)):
            pass
    for refused in (in_token, in_file):
        message = str(refused.value)
        assert "is not the root key this Redis's data is sealed under" in message
        assert "\n" not in message
        assert PIN not in message


async def test_rotate_root_moves_a_deployment_from_a_key_file_into_the_token_and_on_to_another_token_key(
    redis_url: str, redis_client: aioredis.Redis, root_hsm: Hsm, tmp_path: Path
) -> None:
    old = tmp_path / "old.key"
    FileKey.generate(old)
    async with open_services(make_settings(redis_url, root_key_file=old)) as services:
        stored = await store_some(services)
    uri = await made_root_key(root_hsm)
    # while the move is prepared, a server holding the token key and the old file reads everything
    async with open_services(in_hsm(redis_url, uri, previous_root_key_file=old)) as services:
        await reads_back(services, stored)

    code, err = await syncsvc_keys(
        "rotate-root", "--new", uri, SYNCSVC_REDIS_URL=redis_url, SYNCSVC_ROOT_KEY_FILE=str(old)
    )
    assert code == 0, err
    assert "3 wrapped keys and secrets moved to the new root key (0 were already, 0 deleted" in err
    async with open_services(in_hsm(redis_url, uri)) as services:
        await reads_back(services, stored)
        assert await every_blob_opens_under(redis_client, services.kms.keys.root)
    with pytest.raises(StartupError, match="is not the root key this Redis's data is sealed under"):
        async with open_services(make_settings(redis_url, root_key_file=old)):
            pass

    newer = await made_root_key(root_hsm)
    env = {"SYNCSVC_REDIS_URL": redis_url, "SYNCSVC_ROOT_KEY_PKCS11": newer, "SYNCSVC_PREVIOUS_ROOT_KEY_PKCS11": uri}
    code, err = await syncsvc_keys("rotate-root", **env)
    assert code == 0, err
    async with open_services(in_hsm(redis_url, newer)) as services:
        await reads_back(services, stored)
    with pytest.raises(StartupError, match="is not the root key this Redis's data is sealed under"):
        async with open_services(in_hsm(redis_url, uri)):
            pass


@pytest.mark.parametrize(
    ("uri", "refusal"),
    [
        pytest.param("{token};object=absent?module-path={module}&pin-source=file:{pin}", "holds no AES key", id="key"),
        pytest.param(
            "pkcs11:token=no-such-token;object=x?module-path={module}&pin-source=file:{pin}",
            "the PKCS#11 token labelled 'no-such-token' of",
            id="token",
        ),
        pytest.param("{token};object=x?module-path={module}&pin-value=wrong-pin", "is not the user PIN", id="pin"),
        pytest.param("{token};object=x?module-path={module}", "says where its PIN is in neither", id="no-pin"),
        pytest.param(
            "{token};object=x?module-path={module}&pin-source=file:/nonexistent", "cannot read", id="pin-file"
        ),
        pytest.param("{token}?module-path={module}&pin-source=file:{pin}", "names no key (object=LABEL)", id="object"),
        pytest.param("{token};object=x?pin-source=file:{pin}", "names no module-path", id="module"),
        pytest.param("{token};object=x;id=%01?module-path={module}&pin-value=p", "does not know: ['id']", id="unknown"),
        pytest.param("{token};object=x;type=private?module-path={module}&pin-value=p", "type=secret-key", id="type"),
        pytest.param(
            "pkcs11:token={label};object=x?module-path=/nonexistent.so&pin-source=file:{pin}",
            "cannot load the PKCS#11 module /nonexistent.so",
            id="module-missing",
        ),
    ],
)
async def test_a_root_key_uri_that_cannot_work_is_refused_at_start_with_one_line(
    redis_url: str, redis_client: aioredis.Redis, root_hsm: Hsm, uri: str, refusal: str
) -> None:
    given = uri.format(
        token=f"pkcs11:token={ROOT_TOKEN}", label=ROOT_TOKEN, module=root_hsm.softhsm.module, pin=root_hsm.pin_file
    )
    with pytest.raises(StartupError) as refused:
        async with open_services(in_hsm(redis_url, given)):
            pass
    message = str(refused.value)
    assert refusal in message
    assert "\n" not in message
    assert PIN not in message
    assert "wrong-pin" not in message
    assert await redis_client.get(rediskeys.TOKEN_SECRET) is None  # refused before anything was stored


def test_a_root_key_in_a_file_and_in_a_token_at_once_is_refused(redis_url: str, root_hsm: Hsm) -> None:
    with pytest.raises(ValidationError, match="set SYNCSVC_ROOT_KEY_FILE or SYNCSVC_ROOT_KEY_PKCS11, not both"):
        make_settings(redis_url, root_key_pkcs11=root_hsm.uri("x"))
