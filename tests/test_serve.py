"""`syncsvc serve` as a user runs it: a real process, driven by an unmodified boto3 script."""

from __future__ import annotations

import asyncio
import resource
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop
from redis.asyncio import Redis

from syncsvc.cli.serve import loop_runner
from tests.conftest import Boto, free_port, make_settings
from tests.servers import SYNCSVC, environment, stop, syncsvc_process, wait_until_serving


@pytest.fixture(params=[(1, "asyncio"), (2, "asyncio"), (1, "uvloop")], ids=["one-worker", "two-workers", "uvloop"])
def served(request: pytest.FixtureRequest, redis_url: str, redis_client: Redis, tmp_path: Path) -> Iterator[str]:
    """`syncsvc serve` on a free port, on a flushed Redis (on the standard loop, the default, or on uvloop)."""
    workers, loop = request.param
    log = tmp_path / "serve.log"
    with syncsvc_process(redis_url, log, {"SYNCSVC_EVENT_LOOP": loop}, workers=workers) as process:
        yield process.url


async def test_every_sync_operation_works_from_an_unmodified_boto3_script(served: str) -> None:
    boto = Boto(served)
    pool = await boto.new_pool()
    me = {"IdentityPoolId": pool, "IdentityId": f"us-east-1:{uuid.uuid4()}", "DatasetName": "settings"}
    listed = await boto.call(boto.sync, "list_records", **me)
    written = await boto.call(
        boto.sync,
        "update_records",
        **me,
        SyncSessionToken=listed["SyncSessionToken"],
        DeviceId="phone",
        RecordPatches=[{"Op": "replace", "Key": "theme", "Value": "dark", "SyncCount": 0}],
    )
    assert [(r["Key"], r["Value"], r["SyncCount"]) for r in written["Records"]] == [("theme", "dark", 1)]
    delta = await boto.call(boto.sync, "list_records", **me, LastSyncCount=0)
    assert (delta["DatasetSyncCount"], delta["Count"], delta["DatasetExists"]) == (1, 1, True)
    described = await boto.call(boto.sync, "describe_dataset", **me)
    assert (described["Dataset"]["NumRecords"], described["Dataset"]["DataStorage"]) == (1, len("themedark"))
    datasets = await boto.call(boto.sync, "list_datasets", IdentityPoolId=pool, IdentityId=me["IdentityId"])
    assert [d["DatasetName"] for d in datasets["Datasets"]] == ["settings"]
    usage = await boto.call(boto.sync, "describe_identity_usage", IdentityPoolId=pool, IdentityId=me["IdentityId"])
    assert (usage["IdentityUsage"]["DatasetCount"], usage["IdentityUsage"]["DataStorage"]) == (1, 9)
    pool_usage = await boto.call(boto.sync, "describe_identity_pool_usage", IdentityPoolId=pool)
    assert pool_usage["IdentityPoolUsage"]["DataStorage"] == 9
    pools = await boto.call(boto.sync, "list_identity_pool_usage", MaxResults=60)
    assert pool in [p["IdentityPoolId"] for p in pools["IdentityPoolUsages"]]
    deleted = await boto.call(boto.sync, "delete_dataset", **me)
    assert deleted["Dataset"]["DatasetName"] == "settings"


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYNCSVC, *args], env=env, capture_output=True, text=True, timeout=30, check=False)


async def test_a_bad_setting_fails_the_start_with_one_clear_line(redis_url: str) -> None:
    done = await asyncio.to_thread(run_cli, "serve", env=environment(redis_url, SYNCSVC_PORT="eighty"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "syncsvc: invalid setting SYNCSVC_PORT: Input should be a valid integer, unable to parse string as an integer"
    ]


async def test_malformed_developer_credentials_fail_the_start(redis_url: str) -> None:
    env = environment(redis_url)
    env["SYNCSVC_DEVELOPER_CREDENTIALS"] = "no-colon-here"
    done = await asyncio.to_thread(run_cli, "serve", env=env)
    assert done.returncode == 2
    assert "ACCESS_KEY_ID:SECRET" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


async def test_unreachable_redis_fails_the_start_with_one_clear_line() -> None:
    env = environment(f"redis://:hunter2@127.0.0.1:{free_port()}/0", SYNCSVC_PORT=str(free_port()))
    done = await asyncio.to_thread(run_cli, "serve", env=env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("syncsvc: cannot reach Redis at redis://***@127.0.0.1:")
    assert "hunter2" not in done.stderr


def test_serve_lifts_its_open_files_limit_to_the_hard_limit(redis_url: str) -> None:
    """Every device socket is a file: a soft limit of 256 would cap push sync at a few hundred devices."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    port = free_port()
    process = subprocess.Popen(
        [SYNCSVC, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=environment(redis_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", process)
        limits = Path(f"/proc/{process.pid}/limits").read_text().splitlines()
        (line,) = [line for line in limits if line.startswith("Max open files")]
        soft_now, hard_now = (int(value) for value in line.split()[3:5])
        assert (soft_now, hard_now) == (hard, hard)
    finally:
        stop(process)


def test_serve_runs_on_the_standard_loop_unless_told_otherwise(redis_url: str) -> None:
    """asyncio by default (uvloop, past capacity, accepts new connections a few at a time); uvloop on request."""
    with loop_runner(make_settings(redis_url)) as runner:
        assert isinstance(runner.get_loop(), asyncio.BaseEventLoop)
        assert not isinstance(runner.get_loop(), uvloop.Loop)
    with loop_runner(make_settings(redis_url, event_loop="uvloop")) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
