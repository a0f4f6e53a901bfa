"""`syncsvc user-pools …` / `syncsvc users …`: the operator commands, run as an operator runs them (a process with
the server's SYNCSVC_* settings), checked against what boto3 sees on the running server."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from syncsvc.cli import main
from tests.conftest import call, process_environment
from tests.servers import SYNCSVC
from tests.userpools_signin_helpers import PASSWORD, UserPoolClients, new_pool, new_user, refused, sign_in


@pytest.fixture
def syncsvc(
    redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Awaitable[tuple[int, str, str]]]:
    """Runs ``syncsvc <args>`` through the CLI's ``main`` (in a thread: it runs its own event loop, as the process
    does) with the environment a `syncsvc` process of this suite gets; (exit code, stdout, stderr)."""
    for key in [key for key in os.environ if key.startswith("SYNCSVC_")]:
        monkeypatch.delenv(key)
    for key, value in process_environment(SYNCSVC_REDIS_URL=redis_url, COLUMNS="200").items():
        monkeypatch.setenv(key, value)

    def run(args: tuple[str, ...]) -> int:
        try:
            main(list(args))
        except SystemExit as exit_:
            return int(exit_.code or 0)
        raise AssertionError("main() returns only by SystemExit")

    async def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.wait_for(asyncio.to_thread(run, args), timeout=30)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


Syncsvc = Callable[..., Awaitable[tuple[int, str, str]]]


async def as_json(syncsvc: Syncsvc, *args: str) -> Any:
    code, out, err = await syncsvc(*args, "--json")
    assert (code, err) == (0, ""), err
    return json.loads(out)


async def test_user_pools_list_and_describe(syncsvc: Syncsvc, endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients, name="cli-pool")
    listed = await as_json(syncsvc, "user-pools", "list")
    assert [(row["Id"], row["Name"]) for row in listed] == [(pool.pool_id, "cli-pool")]
    (described,) = await as_json(syncsvc, "user-pools", "describe", pool.pool_id)
    assert (described["Id"], described["Name"], described["EstimatedNumberOfUsers"]) == (pool.pool_id, "cli-pool", 0)
    assert described["AppClients"] == [f"{pool.client_id} (app)"]


async def test_users_list_with_a_filter_and_as_a_table(syncsvc: Syncsvc, endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    for name in ("alice", "bob", "anna"):
        await new_user(clients, pool.pool_id, name)
    everyone = await as_json(syncsvc, "users", "list", pool.pool_id)
    assert [row["Username"] for row in everyone] == ["alice", "anna", "bob"]
    assert {(row["UserStatus"], row["Enabled"]) for row in everyone} == {("CONFIRMED", True)}
    chosen = await as_json(syncsvc, "users", "list", pool.pool_id, "--filter", 'email ^= "a"')
    assert [row["email"] for row in chosen] == ["alice@example.com", "anna@example.com"]
    assert [row["Username"] for row in await as_json(syncsvc, "users", "list", pool.pool_id, "--limit", "1")] == [
        "alice"
    ]
    code, out, err = await syncsvc("users", "list", pool.pool_id)
    assert (code, err) == (0, "")
    for text in ("Username", "UserStatus", "alice", "anna", "bob", "CONFIRMED"):
        assert text in out


async def test_users_describe_shows_attributes_and_groups(syncsvc: Syncsvc, endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    await new_user(clients, pool.pool_id, "carol")
    await call(clients.admin, "create_group", UserPoolId=pool.pool_id, GroupName="admins")
    await call(clients.admin, "admin_add_user_to_group", UserPoolId=pool.pool_id, Username="carol", GroupName="admins")
    sub = (await call(clients.admin, "admin_get_user", UserPoolId=pool.pool_id, Username="carol"))["UserAttributes"][0]
    (row,) = await as_json(syncsvc, "users", "describe", pool.pool_id, sub["Value"])  # by an alias (its sub) too
    assert (row["Username"], row["sub"], row["Groups"]) == ("carol", sub["Value"], ["admins"])
    assert row["Attributes"] == {"email": "carol@example.com", "email_verified": "true", "name": "Carol"}


async def test_disable_ends_sessions_and_enable_lets_the_user_back(syncsvc: Syncsvc, endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    await new_user(clients, pool.pool_id, "dave")
    tokens = await sign_in(clients, pool, "dave")
    (row,) = await as_json(syncsvc, "users", "disable", pool.pool_id, "dave")
    assert row["Enabled"] is False
    assert await refused(clients.public, "get_user", AccessToken=tokens["AccessToken"]) == (
        "NotAuthorizedException",
        "User is disabled.",
    )
    code, _ = await refused(
        clients.public,
        "initiate_auth",
        ClientId=pool.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "dave", "PASSWORD": PASSWORD},
    )
    assert code == "NotAuthorizedException"
    (row,) = await as_json(syncsvc, "users", "enable", pool.pool_id, "dave")
    assert row["Enabled"] is True
    fresh = await sign_in(clients, pool, "dave")
    assert (await call(clients.public, "get_user", AccessToken=fresh["AccessToken"]))["Username"] == "dave"
    # The tokens from before the disable stay dead.
    code, _ = await refused(clients.public, "get_user", AccessToken=tokens["AccessToken"])
    assert code == "NotAuthorizedException"


async def test_sign_out_ends_every_session(syncsvc: Syncsvc, endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    await new_user(clients, pool.pool_id, "erin")
    tokens = await sign_in(clients, pool, "erin")
    assert await as_json(syncsvc, "users", "sign-out", pool.pool_id, "erin") == [
        {"Username": "erin", "SignedOut": True}
    ]
    assert await refused(clients.public, "get_user", AccessToken=tokens["AccessToken"]) == (
        "NotAuthorizedException",
        "Access Token has been revoked",
    )
    code, _ = await refused(
        clients.public,
        "initiate_auth",
        ClientId=pool.client_id,
        AuthFlow="REFRESH_TOKEN_AUTH",
        AuthParameters={"REFRESH_TOKEN": tokens["RefreshToken"]},
    )
    assert code == "NotAuthorizedException"
    assert "AccessToken" in await sign_in(clients, pool, "erin")


async def test_delete_removes_users_and_reports_unknown_ones(syncsvc: Syncsvc, endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    for name in ("fay", "gus", "hal"):
        await new_user(clients, pool.pool_id, name)
    deleted = await as_json(syncsvc, "users", "delete", pool.pool_id, "fay", "nobody", "gus")
    assert deleted == [
        {"Username": "fay", "Deleted": True},
        {"Username": "nobody", "Deleted": False},
        {"Username": "gus", "Deleted": True},
    ]
    listed = await call(clients.admin, "list_users", UserPoolId=pool.pool_id)
    assert [user["Username"] for user in listed["Users"]] == ["hal"]


async def test_errors_are_one_line(syncsvc: Syncsvc, endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    missing = "us-east-1_Nothing99"
    for args, expected in (
        (("users", "list", missing), "ResourceNotFoundException"),
        (("users", "describe", pool.pool_id, "nobody"), "UserNotFoundException"),
        (("users", "list", pool.pool_id, "--filter", "email = "), "InvalidParameterException"),
        (("user-pools", "describe", missing), "ResourceNotFoundException"),
    ):
        code, out, err = await syncsvc(*args)
        assert (code, out) == (1, ""), args
        assert err.startswith(f"syncsvc: {expected}: "), (args, err)
        assert err.count("\n") == 1, err


async def test_the_installed_command_prints_a_table(redis_url: str, endpoint: str) -> None:
    """The real `syncsvc` process, once: a table for people."""
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    await new_user(clients, pool.pool_id, "ivy")
    env = process_environment(SYNCSVC_REDIS_URL=redis_url, COLUMNS="200")
    process = await asyncio.create_subprocess_exec(
        SYNCSVC,
        "users",
        "describe",
        pool.pool_id,
        "ivy",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert (process.returncode, err) == (0, b"")
    for text in ("field", "value", "Username", "ivy", "UserStatus", "CONFIRMED", "ivy@example.com"):
        assert text in out.decode()
