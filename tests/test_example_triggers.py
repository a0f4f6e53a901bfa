"""The example trigger package, ``examples/sync-triggers``, used as a developer uses it: installed into a directory,
found by ``syncsvc serve`` through its ``syncsvc.triggers`` entry points alone, attached to a pool with boto3 and
driven by guest devices signed with their identity's credentials (sync triggers only run for those).

One ``syncsvc serve`` subprocess serves the whole module (its start is the main cost); every test makes its own
pool and identities, so the tests share nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION, free_port
from tests.devices import Devices
from tests.servers import SYNCSVC, environment, syncsvc_process

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sync-triggers"
NICKNAME_40 = "x" * 40


# --- installing the example -----------------------------------------------------------------------------------------


def install_example(target: Path, scratch: Path) -> None:
    """``pip install --target`` of ``examples/sync-triggers``: the package and its metadata (entry points included),
    found by ``importlib.metadata`` once ``target`` is on ``sys.path``. Offline: the build uses the venv's
    setuptools and wheel (no build isolation); it runs on a copy, so the source tree gets no build/ or egg-info."""
    source = scratch / "sync-triggers"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*command, "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert done.returncode == 0, f"pip install of the example failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed example: put it on PYTHONPATH."""
    target = tmp_path_factory.mktemp("example-triggers-site")
    install_example(target, tmp_path_factory.mktemp("example-triggers-build"))
    return target


@pytest.fixture(scope="module")
def served(redis_url: str, installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``syncsvc serve`` with the example installed, on the session's Redis (each test uses pools of its own); its
    log, shown if the start fails, in a file."""
    log = tmp_path_factory.mktemp("example-triggers-serve") / "stderr.log"
    with syncsvc_process(redis_url, log, {"PYTHONPATH": str(installed), "PYTHONDONTWRITEBYTECODE": "1"}) as process:
        yield process.url


# --- clients --------------------------------------------------------------------------------------------------------


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in response.items() if name != "ResponseMetadata"}


class Recent:
    """Equal to a datetime within a minute of now (a record's LastModifiedDate)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, datetime) and abs(other.timestamp() - time.time()) < 60

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<a datetime within a minute of now>"


RECENT = Recent()


def record(key: str, value: str, sync_count: int, by: str) -> dict[str, Any]:
    """A record as boto3 shows it, written just now by ``by`` (the DeviceId, else the identity id)."""
    return {"Key": key, "Value": value, "SyncCount": sync_count, "LastModifiedBy": by, "LastModifiedDate": RECENT}


@dataclass
class Device:
    """An app on a device: a cognito-sync client signed with its identity's temporary credentials."""

    client: Any
    pool: str
    identity: str

    def dataset(self, name: str) -> dict[str, str]:
        return {"IdentityPoolId": self.pool, "IdentityId": self.identity, "DatasetName": name}

    def pull(self, dataset: str) -> dict[str, Any]:
        """ListRecords of the whole dataset, without ResponseMetadata."""
        return without_metadata(self.client.list_records(**self.dataset(dataset)))

    def push(self, dataset: str, token: str, patches: list[dict[str, Any]], device_id: str) -> dict[str, Any]:
        """UpdateRecords with a session token from an earlier pull, without ResponseMetadata."""
        answer = self.client.update_records(
            **self.dataset(dataset), SyncSessionToken=token, DeviceId=device_id, RecordPatches=patches
        )
        return without_metadata(answer)

    def write(self, dataset: str, values: dict[str, str], device_id: str) -> dict[str, Any]:
        """Pulls, then pushes ``values`` as new records (SyncCount 0)."""
        token = self.pull(dataset)["SyncSessionToken"]
        patches = [{"Op": "replace", "Key": key, "Value": value, "SyncCount": 0} for key, value in values.items()]
        return self.push(dataset, token, patches, device_id)


class Server:
    """The served syncsvc as the developer (developer credentials) and its devices see it."""

    def __init__(self, url: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id=DEVELOPER_KEY, aws_secret_access_key=DEVELOPER_SECRET, region_name=REGION
        )
        config = Config(retries={"max_attempts": 1})
        self.identity = session.client("cognito-identity", endpoint_url=url, config=config)
        self.sync = session.client("cognito-sync", endpoint_url=url, config=config)
        self.devices = Devices(url)

    def pool(self, **events: str) -> str:
        """A new pool allowing guests, with these Cognito Events (SyncTrigger, SyncConflict)."""
        created = self.identity.create_identity_pool(
            IdentityPoolName="example-triggers", AllowUnauthenticatedIdentities=True
        )
        pool: str = created["IdentityPoolId"]
        self.sync.set_cognito_events(IdentityPoolId=pool, Events=events)
        return pool

    def device(self, pool: str, identity: str | None = None) -> Device:
        """A device of a new guest identity, or of ``identity`` (the same user on another device)."""
        if identity is None:
            identity = self.devices.identity.get_id(IdentityPoolId=pool)["IdentityId"]
        credentials = self.devices.identity.get_credentials_for_identity(IdentityId=identity)["Credentials"]
        return Device(self.devices.sync_with(dict(credentials)), pool, identity)


@pytest.fixture(scope="module")
def server(served: str) -> Server:
    return Server(served)


def refusal(call: Any, **params: Any) -> tuple[str, str, int]:
    """(code, message, HTTP status) of a boto3 call that must fail."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    error = caught.value.response
    return error["Error"]["Code"], error["Error"]["Message"], error["ResponseMetadata"]["HTTPStatusCode"]


# --- the tests ------------------------------------------------------------------------------------------------------


def test_triggers_list_shows_both_example_triggers_from_their_entry_points(installed: Path) -> None:
    # `triggers list` needs no Redis: an address where none answers proves it.
    env = environment(f"redis://127.0.0.1:{free_port()}/0", PYTHONPATH=str(installed), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        [SYNCSVC, "triggers", "list", "--json"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    common = {"source": "entry point", "kind": "sync", "timeout_seconds": 5.0, "max_concurrency": 16}
    assert json.loads(done.stdout) == [
        {"name": "example-merge-scores", "handler": "example_triggers:merge_scores", **common, "isolation": "thread"},
        {"name": "example-profile", "handler": "example_triggers:profile", **common, "isolation": "thread"},
    ]


def test_the_profile_trigger_trims_the_nickname_and_stamps_the_write(server: Server) -> None:
    device = server.device(server.pool(SyncTrigger="example-profile"))
    stored = [record("nickname", "Ada", 1, "phone"), record("updatedBy", "trigger", 1, "phone")]
    assert device.write("profile", {"nickname": "  Ada  "}, device_id="phone") == {"Records": stored}
    assert device.pull("profile") == {
        "Count": 2,
        "DatasetDeletedAfterRequestedSyncCount": False,
        "DatasetExists": True,
        "DatasetSyncCount": 1,
        "LastModifiedBy": "phone",
        "MergedDatasetNames": [],
        "Records": stored,
        "SyncSessionToken": ANY,
    }


def test_the_profile_trigger_refuses_a_nickname_over_32_characters_and_nothing_is_stored(server: Server) -> None:
    device = server.device(server.pool(SyncTrigger="example-profile"))
    token = device.pull("profile")["SyncSessionToken"]
    patch = {"Op": "replace", "Key": "nickname", "Value": NICKNAME_40, "SyncCount": 0}
    assert refusal(
        device.client.update_records, **device.dataset("profile"), SyncSessionToken=token, RecordPatches=[patch]
    ) == ("InvalidLambdaFunctionOutputException", "nickname must be at most 32 characters after trimming, not 40", 400)
    assert device.pull("profile") == {
        "Count": 0,
        "DatasetDeletedAfterRequestedSyncCount": False,
        "DatasetExists": False,
        "DatasetSyncCount": 0,
        "MergedDatasetNames": [],
        "Records": [],
        "SyncSessionToken": ANY,
    }


def test_the_profile_trigger_leaves_other_datasets_as_written(server: Server) -> None:
    device = server.device(server.pool(SyncTrigger="example-profile"))
    assert device.write("settings", {"nickname": "  Ada  "}, device_id="phone") == {
        "Records": [record("nickname", "  Ada  ", 1, "phone")]
    }


def stale_write(server: Server, key: str, first: str, second: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One user on two devices of a pool whose conflict handler is example-merge-scores: the phone pulls, the tablet
    writes ``key`` = ``first``, then the phone pushes ``key`` = ``second`` based on its stale pull. Returns the phone's
    UpdateRecords answer and what the dataset holds afterwards."""
    tablet = server.device(server.pool(SyncConflict="example-merge-scores"))
    phone = server.device(tablet.pool, tablet.identity)
    stale_token = phone.pull("game")["SyncSessionToken"]
    tablet.write("game", {key: first}, device_id="tablet")
    patch = {"Op": "replace", "Key": key, "Value": second, "SyncCount": 0}
    answer = phone.push("game", stale_token, [patch], device_id="phone")
    return answer, phone.pull("game")


@pytest.mark.parametrize(
    ("first", "second", "answered", "kept"),
    [
        ("120", "150", [record("score", "150", 2, "phone")], record("score", "150", 2, "phone")),
        ("120", "95", [], record("score", "120", 1, "tablet")),
    ],
    ids=["the-stale-write-is-higher", "the-stored-score-is-higher"],
)
def test_a_conflicting_score_ends_with_the_higher_one_stored(
    server: Server, first: str, second: str, answered: list[dict[str, Any]], kept: dict[str, Any]
) -> None:
    answer, dataset = stale_write(server, "score", first, second)
    assert answer == {"Records": answered}
    assert (dataset["DatasetSyncCount"], dataset["Records"]) == (kept["SyncCount"], [kept])


def test_a_conflict_on_another_key_keeps_the_stored_version(server: Server) -> None:
    answer, dataset = stale_write(server, "title", "Knight", "Squire")
    assert answer == {"Records": []}
    assert (dataset["DatasetSyncCount"], dataset["Records"]) == (1, [record("title", "Knight", 1, "tablet")])


def test_the_examples_own_unit_tests_pass_against_the_installed_package(installed: Path) -> None:
    """examples/sync-triggers/tests call the handlers as plain functions, as docs/triggers.md shows."""
    env = {**os.environ, "PYTHONPATH": str(installed), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("12 passed")
