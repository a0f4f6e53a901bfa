"""The unmodified AWS CLI against syncsvc (the README's and `make dev`'s examples)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION, Boto

AWS = str(Path(sys.executable).with_name("aws"))


def cli_environment(folder: Path, **extra: str) -> dict[str, str]:
    """The AWS CLI's environment: this one without AWS_* variables, plus the test's developer credentials, and a
    config home in ``folder`` (so no file of this machine's user is read)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=DEVELOPER_KEY,
        AWS_SECRET_ACCESS_KEY=DEVELOPER_SECRET,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(folder / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(folder / "credentials"),
        HOME=str(folder),
        **extra,
    )
    return env


async def aws(endpoint: str, tmp_path: Path, *args: str) -> tuple[int, Any, str]:
    """Runs `aws --endpoint-url ENDPOINT ARGS…` with only the test's credentials; returns (code, JSON out, stderr)."""
    env = cli_environment(tmp_path)
    process = await asyncio.create_subprocess_exec(
        AWS,
        "--endpoint-url",
        endpoint,
        "--output",
        "json",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, json.loads(out) if out.strip() else None, err.decode()


async def test_aws_cli_lists_identity_pools(endpoint: str, boto: Boto, tmp_path: Path) -> None:
    pool_id = await boto.new_pool()
    code, out, err = await aws(endpoint, tmp_path, "cognito-identity", "list-identity-pools", "--max-results", "10")
    assert (code, err) == (0, "")
    assert out == {"IdentityPools": [{"IdentityPoolId": pool_id, "IdentityPoolName": "tests"}]}


async def test_aws_cli_pulls_and_pushes_records(endpoint: str, boto: Boto, tmp_path: Path) -> None:
    ids = ["--identity-pool-id", await boto.new_pool(), "--identity-id", f"us-east-1:{uuid.uuid4()}"]
    dataset = [*ids, "--dataset-name", "prefs"]
    code, listed, _ = await aws(endpoint, tmp_path, "cognito-sync", "list-records", *dataset)
    assert (code, listed["DatasetExists"], listed["Records"]) == (0, False, [])
    patches = json.dumps([{"Op": "replace", "Key": "lang", "Value": "fr", "SyncCount": 0}])
    code, written, err = await aws(
        endpoint,
        tmp_path,
        "cognito-sync",
        "update-records",
        *dataset,
        "--sync-session-token",
        listed["SyncSessionToken"],
        "--record-patches",
        patches,
    )
    assert (code, err) == (0, "")
    assert [(r["Key"], r["Value"], r["SyncCount"]) for r in written["Records"]] == [("lang", "fr", 1)]
    code, described, _ = await aws(endpoint, tmp_path, "cognito-sync", "describe-dataset", *dataset)
    assert (code, described["Dataset"]["NumRecords"], described["Dataset"]["DataStorage"]) == (0, 1, 6)


async def test_aws_cli_reports_a_conflict_by_its_aws_name(endpoint: str, boto: Boto, tmp_path: Path) -> None:
    ids = ["--identity-pool-id", await boto.new_pool(), "--identity-id", f"us-east-1:{uuid.uuid4()}"]
    dataset = [*ids, "--dataset-name", "prefs"]
    _, listed, _ = await aws(endpoint, tmp_path, "cognito-sync", "list-records", *dataset)
    stale = json.dumps([{"Op": "replace", "Key": "lang", "Value": "fr", "SyncCount": 4}])
    code, _, err = await aws(
        endpoint,
        tmp_path,
        "cognito-sync",
        "update-records",
        *dataset,
        "--sync-session-token",
        listed["SyncSessionToken"],
        "--record-patches",
        stale,
    )
    assert code != 0
    assert "ResourceConflictException" in err
    assert "Current SyncCount for: lang is: 0 not: 4" in err
