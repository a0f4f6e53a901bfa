"""``syncsvc watch POOL IDENTITY``: the push notifications of one identity, live, as the hub of every instance sees
them — for an operator checking that devices are woken, without a device.

It listens on the identity's push channel in Redis (the write scripts announce every commit there, see
``syncsvc.push.hub``) and prints one line per change: the dataset, its new sync count, the writer, and the devices
subscribed to it (who gets a notification, the writer excepted); ``--json`` prints JSON lines with the Cognito
payload plus ``writer`` and ``devices``. A device connecting shows as a ``connected`` line. Status goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson

from syncsvc.cli.signals import until_signalled
from syncsvc.config import Settings
from syncsvc.errors import InvalidParameterError
from syncsvc.model import check_identity_id
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.runtime import StartupError, open_services
from syncsvc.store import connection
from syncsvc.store.channels import ShardedChannels


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    watch = commands.add_parser("watch", help="show one identity's push notifications live")
    watch.add_argument("pool", help="identity pool id")
    watch.add_argument("identity", help="identity id")
    watch.add_argument("--json", action="store_true", help="JSON lines on stdout")
    watch.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Runs ``watch`` until SIGINT/SIGTERM (or Ctrl-C); returns the exit code."""
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_watch(settings, args))
    return 0


async def _watch(settings: Settings, args: argparse.Namespace) -> int:
    try:
        check_identity_id(args.identity)
    except InvalidParameterError as exc:
        print(f"syncsvc: {exc.message}", file=sys.stderr)
        return 2
    try:
        async with open_services(settings), _channels(settings.redis_url) as channels:
            keyspace = IdentityKeyspace.of(args.pool, args.identity, settings.shards)
            await channels.subscribe(keyspace.push_channel)
            print(f"watching identity {args.identity} of pool {args.pool} (Ctrl-C to stop)", file=sys.stderr)
            await until_signalled(_print(channels, keyspace, as_json=args.json))
            return 0
    except StartupError as exc:
        print(f"syncsvc: {exc}", file=sys.stderr)
        return 1


@contextlib.asynccontextmanager
async def _channels(redis_url: str) -> AsyncIterator[ShardedChannels]:
    """Sharded Pub/Sub on a Redis client of the command's own (the store's client is for ``store/`` modules only);
    the services opened around it have checked the deployment already."""
    client = connection.connect(redis_url)
    try:
        channels = ShardedChannels(client)
        try:
            yield channels
        finally:
            await channels.close()
    finally:
        await client.aclose()


async def _print(channels: ShardedChannels, keyspace: IdentityKeyspace, *, as_json: bool) -> None:
    while True:
        message = await channels.message(1.0)
        if message is not None:
            print(line(orjson.loads(message[1]), keyspace, as_json=as_json), flush=True)


def line(announced: dict[str, Any], keyspace: IdentityKeyspace, *, as_json: bool) -> str:
    """One announcement as printed."""
    if "hello" in announced:
        event: dict[str, Any] = {"connected": announced["hello"]}
        return orjson.dumps(event).decode() if as_json else f"{_now()}  device {announced['hello']} connected"
    devices = sorted(announced["to"]) if isinstance(announced["to"], list) else []
    if as_json:
        return orjson.dumps(
            {
                "source": "cognito-sync",
                "identityPoolId": keyspace.identity_pool_id,
                "identityId": keyspace.identity_id,
                "datasetName": announced["d"],
                "syncCount": announced["sc"],
                "writer": announced["w"],
                "devices": devices,
            }
        ).decode()
    to = ", ".join(devices) if devices else "no device subscribed"
    writer = announced["w"] or "(deleted)"
    return f"{_now()}  {announced['d']}  syncCount {announced['sc']}  by {writer}  -> {to}"


def _now() -> str:
    return datetime.datetime.now().astimezone().strftime("%H:%M:%S.%f")[:-3]
