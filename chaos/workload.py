"""The devices of a chaos run and what they do: several guest identities of one pool, several devices each, every
device a loop of random ListRecords / UpdateRecords / DeleteDataset calls on its identity's datasets, each recorded
in the :class:`~chaos.history.History` with its outcome.

Half the devices call with unmodified boto3 (``cognito-sync``, SigV4 with the identity's temporary credentials, in
threads of an executor of their own), half with the reference client's HTTP layer (``syncsvc.client``'s
SyncTransport: Bearer tokens from GetOpenIdToken). Neither retries by itself (boto3 gets one attempt): each attempt
is one operation of the history. A device fails over as devices behind a load balancer do: when a call to its
instance is refused, times out or answers 5xx, its next call goes to the other instance.

A device writes one record per UpdateRecords, a value no other operation writes, with the SyncCount its last read
gave for that record: devices of one identity race, so conflicts are expected (and must be refused). After anything
but a success it reads the dataset again before writing. Calls do not name the device (no DeviceId), so every
device is notified of every change, its own included, and every push listener must reach the final count.

Every device also holds a push socket: the reference client's PushListener (resume on every reconnect, pull the
dataset when notified; boto3 has no push), on one of the two instances.

It talks to the instances only through their HTTP and WebSocket APIs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import boto3
import botocore
import botocore.exceptions
from botocore.config import Config

from chaos.history import History, Kind, Op, Seen
from syncsvc.client import SyncClient, SyncClientError
from syncsvc.client.push import Backoff, PushListener
from syncsvc.client.transport import SyncTransport, identity_call, path

REGION = "us-east-1"
#: Seconds one call may take before it counts as indeterminate.
CALL_SECONDS = 5.0
DATASETS = ("alpha", "beta")
KEYS = ("k0", "k1", "k2", "k3")
PUSH_SYNC: Any = {"ApplicationArns": ["arn:aws:sns:us-east-1:123456789012:app/GCM/chaos"]}
STREAM_ROLE = "arn:aws:iam::123456789012:role/streams"


class RefusedError(Exception):
    """The call definitely did not take effect (a 4xx, or the connection was refused before anything was sent:
    ``unreachable``)."""

    def __init__(self, error: str, *, unreachable: bool = False) -> None:
        super().__init__(error)
        self.unreachable = unreachable


class IndeterminateError(Exception):
    """The call may or may not have taken effect (timeout, connection cut, 5xx)."""


class Calls(Protocol):
    """One device's Cognito Sync calls at one endpoint; each answers, or raises RefusedError or IndeterminateError."""

    async def list(self, dataset: str, last: int) -> dict[str, Any]: ...

    async def update(self, dataset: str, token: str, patch: dict[str, Any]) -> dict[str, Any]: ...

    async def delete(self, dataset: str) -> dict[str, Any]: ...


class BotoCalls:
    """Unmodified boto3 with the identity's temporary credentials, in ``executor``'s threads."""

    def __init__(self, endpoint: str, pool: str, identity: str, credentials: dict[str, Any], executor: Any) -> None:
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=REGION,
        )
        config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=2,
            read_timeout=CALL_SECONDS,
            max_pool_connections=4,
        )
        self.sync = session.client("cognito-sync", endpoint_url=endpoint, config=config)
        self.me = {"IdentityPoolId": pool, "IdentityId": identity}
        self.executor = executor

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = getattr(self.sync, operation)
        try:
            answer: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(
                self.executor, lambda: method(**self.me, **params)
            )
        except botocore.exceptions.ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = f"{status} {error.response.get('Error', {}).get('Code')}"
            raise (RefusedError(code) if 400 <= status < 500 else IndeterminateError(code)) from error
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError) as error:
            raise RefusedError(type(error).__name__, unreachable=True) from error  # never connected: nothing was sent
        except botocore.exceptions.BotoCoreError as error:
            raise IndeterminateError(type(error).__name__) from error
        return answer

    async def list(self, dataset: str, last: int) -> dict[str, Any]:
        return await self._call("list_records", DatasetName=dataset, LastSyncCount=last, MaxResults=1024)

    async def update(self, dataset: str, token: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self._call("update_records", DatasetName=dataset, SyncSessionToken=token, RecordPatches=[patch])

    async def delete(self, dataset: str) -> dict[str, Any]:
        return await self._call("delete_dataset", DatasetName=dataset)


class ClientCalls:
    """The reference client's SyncTransport (Bearer tokens) at one endpoint."""

    def __init__(self, endpoint: str, pool: str, identity: str, tokens: Callable[[], Any]) -> None:
        self.transport = SyncTransport(endpoint, tokens, timeout=CALL_SECONDS)
        self.prefix = path("identitypools", pool, "identities", identity, "datasets")

    async def _call(self, method: str, dataset: str, **options: Any) -> dict[str, Any]:
        try:
            return await self.transport.call(method, f"{self.prefix}/{dataset}", **options)
        except SyncClientError as error:
            if error.status == 0:  # no answer: refused before sending, or cut / timed out after
                cause = error.__cause__
                never_sent = isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(cause, TimeoutError)
                what = f"{error.code} {type(cause).__name__}"
                raise (RefusedError(what, unreachable=True) if never_sent else IndeterminateError(what)) from error
            code = f"{error.status} {error.code}"
            raise (RefusedError(code) if error.status < 500 else IndeterminateError(code)) from error

    async def list(self, dataset: str, last: int) -> dict[str, Any]:
        return await self._call("GET", f"{dataset}/records", query={"lastSyncCount": str(last), "maxResults": "1024"})

    async def update(self, dataset: str, token: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", dataset, body={"SyncSessionToken": token, "RecordPatches": [patch]})

    async def delete(self, dataset: str) -> dict[str, Any]:
        return await self._call("DELETE", dataset)


@dataclass
class Known:
    """What a device last learned of one dataset: its session token and each record's SyncCount."""

    token: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    fresh: bool = False


class Device:
    """One device: its calls at each endpoint (the current one first), what it knows, its push client."""

    def __init__(self, name: str, kind: str, identity: str, calls: list[Calls], push: SyncClient) -> None:
        self.name, self.kind, self.identity, self.calls, self.push = name, kind, identity, calls, push
        self.turn = 0
        self.known = {dataset: Known() for dataset in DATASETS}
        self.listener: PushListener | None = None

    async def step(self, history: History, rng: random.Random, started: float) -> None:
        """One operation: a read when the device knows nothing fresh of the dataset, else mostly a write."""
        dataset = rng.choice(DATASETS)
        known = self.known[dataset]
        roll = rng.random()
        kind: Kind
        if known.token is None or not known.fresh or roll < 0.25:
            kind = "list"
        elif roll < 0.28:
            kind = "delete"
        else:
            kind = "update"
        op = Op(len(history.ops), self.name, self.kind, self.identity, dataset, kind, time.monotonic() - started)
        history.ops.append(op)
        calls = self.calls[self.turn % len(self.calls)]
        try:
            answer = await self._send(op, calls, known, rng)
        except RefusedError as error:
            op.complete(time.monotonic() - started, "fail", error=str(error))
            known.fresh = False
            if error.unreachable:
                self.turn += 1
            return
        except IndeterminateError as error:
            op.complete(time.monotonic() - started, "info", error=str(error))
            known.fresh = False
            self.turn += 1
            return
        self._learn(op, known, answer, time.monotonic() - started)

    async def _send(self, op: Op, calls: Calls, known: Known, rng: random.Random) -> dict[str, Any]:
        if op.kind == "list":
            op.given = 0
            return await calls.list(op.dataset, 0)
        if op.kind == "delete":
            return await calls.delete(op.dataset)
        op.key = rng.choice(KEYS)
        op.value = f"{self.name}.{op.index}"
        op.given = known.counts.get(op.key, 0)
        patch = {"Op": "replace", "Key": op.key, "Value": op.value, "SyncCount": op.given}
        assert known.token is not None
        return await calls.update(op.dataset, known.token, patch)

    def _learn(self, op: Op, known: Known, answer: dict[str, Any], now: float) -> None:
        if op.kind == "list":
            records = {r["Key"]: _seen(r) for r in answer.get("Records", [])}
            op.records = records
            known.token = answer["SyncSessionToken"]
            known.counts = {key: count for key, (_, count) in records.items()}
            known.fresh = True
            op.complete(now, "ok", sync_count=answer.get("DatasetSyncCount", 0))
        elif op.kind == "update":
            count = int(answer["Records"][0]["SyncCount"])
            known.counts[op.key or ""] = count
            op.complete(now, "ok", sync_count=count)
        else:
            # the dataset as it was before the deletion; the deletion takes the next count
            before = answer.get("Dataset", {}).get("SyncCount")
            known.counts, known.fresh = {}, False
            op.complete(now, "ok", sync_count=None if before is None else int(before) + 1)


def _seen(record: dict[str, Any]) -> Seen:
    return (record.get("Value"), int(record["SyncCount"]))


async def guest_tokens(endpoints: list[str], identity: str) -> str:
    """An OpenID token of the guest identity from whichever instance answers (unsigned GetOpenIdToken)."""
    failure: Exception | None = None
    for endpoint in endpoints:
        try:
            answer = await identity_call(endpoint, "GetOpenIdToken", {"IdentityId": identity})
            token: str = answer["Token"]
            return token
        except SyncClientError as error:
            failure = error
    raise SyncClientError("ConnectionError", f"no instance gave a token: {failure}", 0)


@dataclass
class Workload:
    """The pool, its devices, and the thread pool boto3's calls run in."""

    pool: str
    topic: str
    devices: list[Device]
    executor: ThreadPoolExecutor

    async def run(self, history: History, seconds: float, seed: int, started: float) -> None:
        """Every device's loop for ``seconds`` (a failed assertion of one ends them all)."""
        until = time.monotonic() + seconds

        async def loop(device: Device, rng: random.Random) -> None:
            while time.monotonic() < until:
                await device.step(history, rng, started)
                await asyncio.sleep(rng.uniform(0.005, 0.04))

        async with asyncio.TaskGroup() as group:
            for index, device in enumerate(self.devices):
                group.create_task(loop(device, random.Random(f"{seed}-{index}")))

    async def close(self) -> None:
        for device in self.devices:
            await device.push.close()
            for calls in device.calls:
                if isinstance(calls, ClientCalls):
                    await calls.transport.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


async def setup(endpoints: list[str], developer: tuple[str, str], identities: int, per_identity: int) -> Workload:
    """A pool with guests, push sync and a stream topic; ``identities`` guests with ``per_identity`` devices each,
    registered and subscribed to every dataset (their listeners not started yet)."""
    admin = boto3.session.Session(
        aws_access_key_id=developer[0], aws_secret_access_key=developer[1], region_name=REGION
    )
    config = Config(retries={"mode": "standard", "total_max_attempts": 3}, read_timeout=20)
    identity_admin = admin.client("cognito-identity", endpoint_url=endpoints[0], config=config)
    sync_admin = admin.client("cognito-sync", endpoint_url=endpoints[0], config=config)
    pool: str = (
        await asyncio.to_thread(
            identity_admin.create_identity_pool, IdentityPoolName="chaos", AllowUnauthenticatedIdentities=True
        )
    )["IdentityPoolId"]
    topic = f"chaos-{pool.split(':')[-1][:8]}"
    await asyncio.to_thread(
        sync_admin.set_identity_pool_configuration,
        IdentityPoolId=pool,
        PushSync=PUSH_SYNC,
        CognitoStreams={"StreamName": topic, "RoleArn": STREAM_ROLE, "StreamingStatus": "ENABLED"},
    )
    executor = ThreadPoolExecutor(max_workers=identities * per_identity, thread_name_prefix="chaos-boto3")
    unsigned = boto3.session.Session(region_name=REGION).client(
        "cognito-identity", endpoint_url=endpoints[0], config=Config(signature_version=botocore.UNSIGNED)
    )
    devices: list[Device] = []
    for number in range(identities):
        identity: str = (await asyncio.to_thread(unsigned.get_id, IdentityPoolId=pool))["IdentityId"]
        for index in range(per_identity):
            devices.append(await _device(f"i{number}d{index}", endpoints, pool, identity, unsigned, executor))
    return Workload(pool, topic, devices, executor)


async def _device(
    name: str, endpoints: list[str], pool: str, identity: str, unsigned: Any, executor: ThreadPoolExecutor
) -> Device:
    """A device alternating boto3 and the reference client (by its number), its push client on instance ``n % 2``."""
    number = int(name.split("d")[-1]) + int(name[1:].split("d")[0])

    async def tokens() -> str:
        return await guest_tokens(endpoints, identity)

    calls: list[Calls]
    if number % 2 == 0:
        kind = "boto3"
        credentials = (await asyncio.to_thread(unsigned.get_credentials_for_identity, IdentityId=identity))[
            "Credentials"
        ]
        calls = [BotoCalls(endpoint, pool, identity, credentials, executor) for endpoint in endpoints]
    else:
        kind = "client"
        calls = [ClientCalls(endpoint, pool, identity, tokens) for endpoint in endpoints]
    push = SyncClient(endpoints[number % len(endpoints)], pool, identity, tokens, timeout=CALL_SECONDS)
    await push.register_device(token=f"chaos-{name}")
    for dataset in DATASETS:
        await push.subscribe(dataset)
    device = Device(name, kind, identity, calls, push)
    device.turn = number
    return device


def listener_of(device: Device) -> PushListener:
    """The device's push listener: quick reconnects (the instances come back within seconds), pings after 5 s."""
    device.listener = device.push.listener(backoff=Backoff(initial=0.2, maximum=2.0), ping_interval=5.0)
    return device.listener
