"""The unmodified AWS CLI against syncsvc (the README's and `make dev`'s examples)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from tests.aws_cli import aws
from tests.conftest import Boto


async def update_records(
    endpoint: str, tmp_path: Path, dataset: list[str], token: str, patches: str
) -> tuple[int, Any, str]:
    """`aws cognito-sync update-records` of ``dataset`` (its CLI arguments) with ``patches`` (JSON); (code, JSON out,
    stderr)."""
    return await aws(
        endpoint,
        tmp_path,
        "cognito-sync",
        "update-records",
        *dataset,
        "--sync-session-token",
        token,
        "--record-patches",
        patches,
    )


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
    code, written, err = await update_records(endpoint, tmp_path, dataset, listed["SyncSessionToken"], patches)
    assert (code, err) == (0, "")
    assert [(r["Key"], r["Value"], r["SyncCount"]) for r in written["Records"]] == [("lang", "fr", 1)]
    code, described, _ = await aws(endpoint, tmp_path, "cognito-sync", "describe-dataset", *dataset)
    assert (code, described["Dataset"]["NumRecords"], described["Dataset"]["DataStorage"]) == (0, 1, 6)


async def test_aws_cli_reports_a_conflict_by_its_aws_name(endpoint: str, boto: Boto, tmp_path: Path) -> None:
    ids = ["--identity-pool-id", await boto.new_pool(), "--identity-id", f"us-east-1:{uuid.uuid4()}"]
    dataset = [*ids, "--dataset-name", "prefs"]
    _, listed, _ = await aws(endpoint, tmp_path, "cognito-sync", "list-records", *dataset)
    stale = json.dumps([{"Op": "replace", "Key": "lang", "Value": "fr", "SyncCount": 4}])
    code, _, err = await update_records(endpoint, tmp_path, dataset, listed["SyncSessionToken"], stale)
    assert code != 0
    assert "ResourceConflictException" in err
    assert "Current SyncCount for: lang is: 0 not: 4" in err
