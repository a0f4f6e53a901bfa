"""Get/SetCognitoEvents through unmodified boto3, the trigger listing and start-up checks of the registrations."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from botocore.exceptions import ClientError
from redis.asyncio import Redis

import syncsvc.triggers
from syncsvc.api.app import create_app
from syncsvc.config import Settings
from syncsvc.triggers import TriggerRegistry, spec
from tests import trigger_examples
from tests.conftest import Boto, Raw, free_port, make_settings
from tests.servers import SYNCSVC, environment

ROOT = Path(__file__).resolve().parent.parent
ARN = "arn:aws:lambda:us-east-1:123456789012:function:validate"
UNKNOWN_POOL = "us-east-1:00000000-0000-0000-0000-000000000000"


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url, triggers="validate=tests.trigger_examples:validate")


async def events(boto: Boto, pool_id: str) -> Any:
    return (await boto.call(boto.sync, "get_cognito_events", IdentityPoolId=pool_id))["Events"]


async def set_events(boto: Boto, pool_id: str, given: dict[str, str]) -> dict[str, Any]:
    answer = await boto.call(boto.sync, "set_cognito_events", IdentityPoolId=pool_id, Events=given)
    answer.pop("ResponseMetadata")
    return answer


async def refused(boto: Boto, operation: str, **params: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        await boto.call(boto.sync, operation, **params)
    error = caught.value.response
    return error["Error"]["Code"], error["Error"]["Message"], error["ResponseMetadata"]["HTTPStatusCode"]


async def test_a_new_pool_has_no_events(boto: Boto) -> None:
    assert await events(boto, await boto.new_pool()) == {}


async def test_a_registered_trigger_is_set_and_read_back(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    assert await set_events(boto, pool_id, {"SyncTrigger": "validate"}) == {}
    assert await events(boto, pool_id) == {"SyncTrigger": "validate"}


async def test_a_lambda_arn_is_stored_as_the_trigger_name(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    await set_events(boto, pool_id, {"SyncTrigger": ARN + ":prod"})
    assert await events(boto, pool_id) == {"SyncTrigger": "validate"}


async def test_an_empty_value_removes_the_trigger(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    await set_events(boto, pool_id, {"SyncTrigger": "validate"})
    await set_events(boto, pool_id, {"SyncTrigger": ""})
    assert await events(boto, pool_id) == {}


async def test_event_types_not_given_are_left_unchanged(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    await set_events(boto, pool_id, {"SyncTrigger": "validate"})
    await set_events(boto, pool_id, {})
    assert await events(boto, pool_id) == {"SyncTrigger": "validate"}


async def test_an_unregistered_trigger_is_an_invalid_parameter(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    given = {"SyncTrigger": "arn:aws:lambda:us-east-1:123456789012:function:nobody"}
    assert await refused(boto, "set_cognito_events", IdentityPoolId=pool_id, Events=given) == (
        "InvalidParameterException",
        "Events.SyncTrigger: no trigger named 'nobody' is registered on this server",
        400,
    )
    assert await events(boto, pool_id) == {}


async def test_three_entries_are_an_invalid_parameter(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    given = {"SyncTrigger": "validate", "SyncConflict": "reject", "Other": "validate"}
    assert await refused(boto, "set_cognito_events", IdentityPoolId=pool_id, Events=given) == (
        "InvalidParameterException",
        "Events: at most 2 entries are allowed, not 3",
        400,
    )


async def test_a_trigger_and_a_conflict_policy_are_set_together_and_read_back(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    await set_events(boto, pool_id, {"SyncTrigger": ARN, "SyncConflict": "last-writer-wins"})
    assert await events(boto, pool_id) == {"SyncTrigger": "validate", "SyncConflict": "last-writer-wins"}


async def test_a_registered_trigger_can_be_the_conflict_handler(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    await set_events(boto, pool_id, {"SyncConflict": "validate"})
    assert await events(boto, pool_id) == {"SyncConflict": "validate"}


async def test_an_unregistered_conflict_handler_is_an_invalid_parameter(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    assert await refused(boto, "set_cognito_events", IdentityPoolId=pool_id, Events={"SyncConflict": "merge"}) == (
        "InvalidParameterException",
        "Events.SyncConflict: no trigger named 'merge' is registered on this server",
        400,
    )


async def test_an_unknown_event_type_is_an_invalid_parameter(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    assert await refused(boto, "set_cognito_events", IdentityPoolId=pool_id, Events={"PreSync": "validate"}) == (
        "InvalidParameterException",
        "Events: unknown event type 'PreSync'; the event types are SyncTrigger and SyncConflict",
        400,
    )


async def test_an_unknown_pool_is_not_found(boto: Boto) -> None:
    message = f"IdentityPool '{UNKNOWN_POOL}' not found."
    assert await refused(boto, "get_cognito_events", IdentityPoolId=UNKNOWN_POOL) == (
        "ResourceNotFoundException",
        message,
        404,
    )
    assert await refused(
        boto, "set_cognito_events", IdentityPoolId=UNKNOWN_POOL, Events={"SyncTrigger": "validate"}
    ) == ("ResourceNotFoundException", message, 404)


async def test_events_stay_out_of_the_pool_configuration_operations(boto: Boto, raw: Raw) -> None:
    pool_id = await boto.new_pool()
    await set_events(boto, pool_id, {"SyncTrigger": "validate"})
    streams = {"StreamName": "changes", "StreamingStatus": "DISABLED"}
    configured = await boto.call(
        boto.sync, "set_identity_pool_configuration", IdentityPoolId=pool_id, CognitoStreams=streams
    )
    configured.pop("ResponseMetadata")
    assert configured == {"IdentityPoolId": pool_id, "CognitoStreams": streams}
    status, body, _ = await raw.send(
        "POST", f"/identitypools/{pool_id}/configuration", body={"Events": {"SyncTrigger": "validate"}}
    )
    assert (status, body["message"]) == (400, "Events is not a known member of this request")
    assert await events(boto, pool_id) == {"SyncTrigger": "validate"}


async def test_triggers_registered_in_code_can_be_attached(settings: Settings, redis_client: Redis) -> None:
    code = TriggerRegistry()
    code.register("upper", trigger_examples.uppercase)
    server = TestServer(create_app(settings, triggers=code), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        boto = Boto(str(server.make_url("")).rstrip("/"))
        pool_id = await boto.new_pool()
        await set_events(boto, pool_id, {"SyncTrigger": "upper"})
        assert await events(boto, pool_id) == {"SyncTrigger": "upper"}
    finally:
        await server.close()


def test_every_public_name_is_documented_in_the_contract() -> None:
    contract = inspect.getdoc(spec) or ""
    assert [name for name in syncsvc.triggers.__all__ if f"``{name}``" not in contract] == []


# --- the command line -----------------------------------------------------------------------------------------------


def run_cli(*args: str, triggers: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNCSVC_")}
    env.update(SYNCSVC_TRIGGERS=triggers, PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run([SYNCSVC, *args], env=env, capture_output=True, text=True, timeout=30, check=False)


async def test_triggers_list_shows_every_registered_trigger() -> None:
    specs = "validate=tests.trigger_examples:validate,upper=tests.trigger_examples:uppercase"
    done = await asyncio.to_thread(run_cli, "triggers", "list", "--json", triggers=specs)
    assert (done.returncode, done.stderr) == (0, "")
    common = {"source": "SYNCSVC_TRIGGERS", "timeout_seconds": 5.0, "max_concurrency": 16, "isolation": "thread"}
    assert json.loads(done.stdout) == [
        {"name": "upper", "handler": "tests.trigger_examples:uppercase", "kind": "async", **common},
        {"name": "validate", "handler": "tests.trigger_examples:validate", "kind": "sync", **common},
    ]


async def test_triggers_list_as_a_table_names_each_trigger() -> None:
    done = await asyncio.to_thread(run_cli, "triggers", "list", triggers="validate=tests.trigger_examples:validate")
    assert done.returncode == 0
    for text in ("validate", "SYNCSVC_TRIGGERS", "tests.trigger_examples:validate", "sync", "thread"):
        assert text in done.stdout


async def test_a_bad_trigger_fails_the_start_with_one_clear_line(redis_url: str) -> None:
    env = environment(redis_url, SYNCSVC_TRIGGERS="v=tests.trigger_examples:missing", PYTHONPATH=str(ROOT))
    env["SYNCSVC_PORT"] = str(free_port())
    done = await asyncio.to_thread(
        subprocess.run, [SYNCSVC, "serve"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "syncsvc: trigger 'v': 'tests.trigger_examples' has no attribute 'missing'"
    ]
