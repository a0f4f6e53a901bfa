"""The root key guards everything Redis holds: a copy of Redis alone forges nothing, and a server started with another
root key (or a key file that is not random) refuses to start instead of half-working."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from syncsvc import rediskeys
from syncsvc.config import Settings
from syncsvc.identity.credentials import CredentialAuthority
from syncsvc.kms.material import MaterialError
from syncsvc.kms.root import FileKey, RootKey
from syncsvc.kms.token_secret import open_token_secret
from syncsvc.runtime import StartupError, open_services
from syncsvc.tokens import TokenSigner
from tests.conftest import ROOT_KEY_FILE, Boto, make_settings
from tests.devices import Devices, guest, new_pool


def another_root_key(tmp_path: Path) -> Path:
    path = tmp_path / "other.key"
    FileKey.generate(path)
    return path


async def start(settings: Settings) -> None:
    """Opens the services of an instance (as `syncsvc serve` does at start-up) and closes them again."""
    async with open_services(settings):
        pass


async def test_a_server_started_with_another_root_key_refuses_with_one_line(
    redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    await start(make_settings(redis_url))
    with pytest.raises(StartupError) as refused:
        await start(make_settings(redis_url, root_key_file=another_root_key(tmp_path)))
    message = str(refused.value)
    assert "is not the root key this Redis's data is sealed under" in message
    assert "\n" not in message
    assert await RootKey.from_file(ROOT_KEY_FILE).check_value() in message  # the recorded value: which key it wants


async def test_the_check_value_names_the_key_without_revealing_it(tmp_path: Path) -> None:
    root = FileKey.read(ROOT_KEY_FILE)
    assert await root.check_value() == await FileKey.read(ROOT_KEY_FILE).check_value()
    assert await root.check_value() != await FileKey.read(another_root_key(tmp_path)).check_value()
    assert root.key.hex()[:32] not in await root.check_value()


async def test_the_token_secret_is_stored_sealed_by_the_root_key(
    redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    await start(make_settings(redis_url))
    stored = await redis_client.get(rediskeys.TOKEN_SECRET)
    assert isinstance(stored, bytes)
    secret = await open_token_secret(RootKey.from_file(ROOT_KEY_FILE), stored)
    assert len(secret) == 32
    assert secret not in stored
    with pytest.raises(MaterialError):
        await open_token_secret(RootKey.from_file(another_root_key(tmp_path)), stored)


async def test_what_a_copy_of_redis_holds_derives_no_credential(
    boto: Boto, redis_client: aioredis.Redis, endpoint: str
) -> None:
    """The review's attack: the stored token secret taken as the secret derives a credential's secret key from its
    access key id. It must not; the opened secret (root key and Redis together) does."""
    _, credentials = await guest(Devices(endpoint), await new_pool(boto))
    stored = await redis_client.get(rediskeys.TOKEN_SECRET)
    assert isinstance(stored, bytes)

    def derived(secret: bytes) -> str:
        return CredentialAuthority(TokenSigner(secret), secret, lifetime_seconds=60).secret_for(
            credentials["AccessKeyId"]
        )

    assert derived(stored) != credentials["SecretKey"]
    assert derived(await open_token_secret(RootKey.from_file(ROOT_KEY_FILE), stored)) == credentials["SecretKey"]


async def test_a_plaintext_token_secret_of_an_earlier_release_is_replaced(
    redis_url: str, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    legacy = b"ab" * 32
    await redis_client.set(rediskeys.TOKEN_SECRET, legacy)
    with caplog.at_level(logging.WARNING, logger="syncsvc"):
        await start(make_settings(redis_url))
    stored = await redis_client.get(rediskeys.TOKEN_SECRET)
    assert isinstance(stored, bytes)
    assert stored != legacy
    assert await open_token_secret(RootKey.from_file(ROOT_KEY_FILE), stored) != legacy
    assert any("stored in plaintext" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "contents",
    [pytest.param("00" * 32, id="all-zero"), pytest.param("0123" * 16, id="repeated-pattern")],
)
async def test_a_root_key_file_that_is_not_random_is_refused(
    redis_url: str, redis_client: aioredis.Redis, tmp_path: Path, contents: str
) -> None:
    path = tmp_path / "weak.key"
    path.write_text(contents + "\n")
    path.chmod(0o600)
    with pytest.raises(StartupError, match="does not hold a random key"):
        await start(make_settings(redis_url, root_key_file=path))
    assert await redis_client.get(rediskeys.TOKEN_SECRET) is None  # refused before anything was stored


async def test_a_root_key_file_readable_by_others_is_warned_about(
    redis_url: str, redis_client: aioredis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "shared.key"
    path.write_text(ROOT_KEY_FILE.read_text())
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="syncsvc"):
        await start(make_settings(redis_url, root_key_file=path))
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("can be read by others than its owner (mode 0o644)" in message for message in warnings)
    assert not any(FileKey.read(path).key.hex() in message for message in warnings)
