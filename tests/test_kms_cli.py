"""The unmodified AWS CLI against the KMS surface: the README's encrypt / decrypt / re-encrypt / enable-key-rotation
commands, run as written through ``bash -c`` (``aws`` from the venv on the PATH, the endpoint from
``AWS_ENDPOINT_URL``, the developer credentials in the environment)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.aws_cli import cli_environment
from tests.conftest import call
from tests.kms_calls import arn, new_key

BIN = Path(sys.executable).parent
SECRET = b"the launch code is 0000\n"
ENCRYPT = (
    "aws kms encrypt --key-id {K} --plaintext fileb://secret.txt --output text --query CiphertextBlob"
    " | base64 --decode > enc"
)
DECRYPT = "aws kms decrypt --ciphertext-blob fileb://enc --output text --query Plaintext | base64 --decode"
RE_ENCRYPT = "aws kms re-encrypt --destination-key-id {K2} --ciphertext-blob fileb://enc"
ENABLE_ROTATION = "aws kms enable-key-rotation --key-id {K}"


async def shell(command: str, endpoint: str, folder: Path) -> tuple[int, bytes, str]:
    """Runs ``command`` with bash (pipefail, so a failing ``aws`` fails the pipeline) in ``folder``; returns (exit
    code, stdout, stderr). Only the test's credentials and endpoint are in the environment."""
    env = cli_environment(folder, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", AWS_ENDPOINT_URL=endpoint)
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-o",
        "pipefail",
        "-c",
        command,
        cwd=folder,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out, err.decode()


async def encrypted(endpoint: str, folder: Path, key_id: str) -> None:
    """secret.txt encrypted into ``enc`` by the README's encrypt command."""
    (folder / "secret.txt").write_bytes(SECRET)
    assert await shell(ENCRYPT.format(K=key_id), endpoint, folder) == (0, b"", "")


async def test_encrypt_writes_a_binary_ciphertext_that_decrypt_turns_back_into_the_file(
    kms: Any, endpoint: str, tmp_path: Path
) -> None:
    key_id = await new_key(kms)

    await encrypted(endpoint, tmp_path, key_id)
    decrypted = await shell(DECRYPT, endpoint, tmp_path)

    assert decrypted == (0, SECRET, "")
    opened = await call(kms, "decrypt", CiphertextBlob=(tmp_path / "enc").read_bytes())
    assert opened == {"KeyId": arn(key_id), "Plaintext": SECRET, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}


async def test_re_encrypt_moves_the_ciphertext_to_another_key(kms: Any, endpoint: str, tmp_path: Path) -> None:
    key_id, other = await new_key(kms), await new_key(kms)
    await encrypted(endpoint, tmp_path, key_id)

    code, out, err = await shell(RE_ENCRYPT.format(K2=other), endpoint, tmp_path)

    moved = json.loads(out)
    assert (code, err) == (0, "")
    assert moved == {
        "CiphertextBlob": moved["CiphertextBlob"],
        "SourceKeyId": arn(key_id),
        "KeyId": arn(other),
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    opened = await call(kms, "decrypt", CiphertextBlob=base64.b64decode(moved["CiphertextBlob"]))
    assert (opened["KeyId"], opened["Plaintext"]) == (arn(other), SECRET)


async def test_enable_key_rotation_turns_rotation_on(kms: Any, endpoint: str, tmp_path: Path) -> None:
    key_id = await new_key(kms)

    enabled = await shell(ENABLE_ROTATION.format(K=key_id), endpoint, tmp_path)

    assert enabled == (0, b"", "")
    status = await call(kms, "get_key_rotation_status", KeyId=key_id)
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 365)
