"""The devices of a chaos run and what they do: several guest identities of one pool, several devices each, every
device a loop of random ListRecords / UpdateRecords / DeleteDataset calls on its identity's datasets, each recorded
in the :class:`~chaos.history.History` with its outcome.

Devices call in three ways, by turns (DEVICE_KINDS): unmodified boto3 (``cognito-sync``, SigV4 with the identity's
temporary credentials, in threads of an executor of their own) with one attempt per call; the reference client's HTTP
layer (``syncsvc.client``'s SyncTransport: Bearer tokens from GetOpenIdToken), which does not re-send either; and
boto3 with its standard retries (3 attempts) naming its device (DeviceId) in UpdateRecords, which also re-sends
a write whose outcome it does not know, word for word, to the other instance (RESENDS), so that the server's
recognition of a re-sent write is under fire too (a re-send must be answered with the first result, never applied
twice). A device fails over as devices behind a load balancer do: when a call to its instance is refused, times out
or answers 5xx, its next call goes to the other instance.

A device writes one record per UpdateRecords, a value no other operation writes, with the SyncCount its last read
gave for that record: devices of one identity race, so conflicts are expected (and must be refused). After anything
but a success it reads the dataset again before writing. Only the retrying boto3 devices name themselves, so the
others are notified of every change, their own included; a named device is not notified of its own.

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

from chaos.history import History, Kind, Op, Outcome, Seen
from syncsvc.client import SyncClient, SyncClientError
from syncsvc.client.errors import CONNECTION_ERROR
from syncsvc.client.push import Backoff, PushListener
from syncsvc.client.transport import SyncTransport, identity_call, path

REGION = "us-east-1"
#: Seconds one call may take before it counts as indeterminate.
CALL_SECONDS = 5.0
DATASETS = ("alpha", "beta")
KEYS = ("k0", "k1", "k2", "k3")
PUSH_SYNC: Any = {"ApplicationArns": ["arn:aws:sns:us-east-1:123456789012:app/GCM/chaos"]}
STREAM_ROLE = "arn:aws:iam::123456789012:role/streams"
#: The devices' kinds, taken by turns (see Device): how each calls the service.
DEVICE_KINDS = ("boto3", "client", "boto3-retrying")
#: Seconds the load may go on past its time while the nemesis finishes its first round of faults.
HOLD_SECONDS = 60.0
#: How many times a retrying device re-sends a write whose outcome it does not know (to the other instance, after
#: 0.5 s, then 1 s), beside botocore's own retries: as apps with their own retry loop do.
RESENDS = 2


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
    """Unmodified boto3 with the identity's temporary credentials, in ``executor``'s threads.

    ``device_id`` None: one attempt per call, the device unnamed. Else botocore's standard retry mode (3 attempts:
    it re-sends after a 5xx, a timeout or a cut connection) and UpdateRecords names the device, as an app would
    that registered it: a re-sent write is recognised by the server as its device's last one and answered with the
    first result, never applied twice. After a re-send, nothing is definite any more but a first-attempt 4xx: a
    conflict answered to a re-send may hide a first attempt that committed.
    """

    def __init__(
        self,
        endpoint: str,
        pool: str,
        identity: str,
        credentials: dict[str, Any],
        executor: Any,
        device_id: str | None = None,
    ) -> None:
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=REGION,
        )
        config = Config(
            retries={"mode": "standard", "total_max_attempts": 1 if device_id is None else 3},
            connect_timeout=2,
            read_timeout=CALL_SECONDS,
            max_pool_connections=4,
        )
        self.sync = session.client("cognito-sync", endpoint_url=endpoint, config=config)
        self.me = {"IdentityPoolId": pool, "IdentityId": identity}
        self.executor = executor
        self.device_id = device_id

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = getattr(self.sync, operation)
        retrying = self.device_id is not None
        try:
            answer: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(
                self.executor, lambda: method(**self.me, **params)
            )
        except botocore.exceptions.ClientError as error:
            metadata = error.response.get("ResponseMetadata", {})
            status = metadata.get("HTTPStatusCode", 0)
            code = f"{status} {error.response.get('Error', {}).get('Code')}"
            resent = int(metadata.get("RetryAttempts", 0))
            definite = 400 <= status < 500 and not resent
            code += f" (attempt {1 + resent})" if resent else ""
            raise (RefusedError(code) if definite else IndeterminateError(code)) from error
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError) as error:
            if retrying:  # an earlier attempt may have been sent
                raise IndeterminateError(type(error).__name__) from error
            raise RefusedError(type(error).__name__, unreachable=True) from error  # never connected: nothing sent
        except botocore.exceptions.BotoCoreError as error:
            raise IndeterminateError(type(error).__name__) from error
        return answer

    async def list(self, dataset: str, last: int) -> dict[str, Any]:
        return await self._call("list_records", DatasetName=dataset, LastSyncCount=last, MaxResults=1024)

    async def update(self, dataset: str, token: str, patch: dict[str, Any]) -> dict[str, Any]:
        named = {} if self.device_id is None else {"DeviceId": self.device_id}
        return await self._call(
            "update_records", DatasetName=dataset, SyncSessionToken=token, RecordPatches=[patch], **named
        )

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
        op.named = kind == "update" and self.kind == "boto3-retrying"
        history.ops.append(op)
        self._plan(op, known, rng)
        try:
            answer = await self._until_known(op, known)
        except (RefusedError, IndeterminateError) as error:
            outcome: Outcome = "fail" if isinstance(error, RefusedError) else "info"
            op.complete(time.monotonic() - started, outcome, error=str(error))
            known.fresh = False
            return
        self._learn(op, known, answer, time.monotonic() - started)

    async def _until_known(self, op: Op, known: Known) -> dict[str, Any]:
        """The answer; a write of a retrying device whose outcome is unknown is re-sent (RESENDS times, to the next
        instance). Raises RefusedError only when nothing was applied, IndeterminateError when that is unknown."""
        resends = RESENDS if op.named else 0
        for attempt in range(resends + 1):
            op.attempts = attempt + 1
            try:
                return await self._send(op, self.calls[self.turn % len(self.calls)], known)
            except RefusedError as error:
                if error.unreachable:
                    self.turn += 1
                if attempt:  # the first attempt may have committed: a refusal of a re-send does not say it did not
                    raise IndeterminateError(f"{error} (re-send {attempt})") from error
                raise
            except IndeterminateError:
                self.turn += 1
                if attempt == resends:
                    raise
            await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def _plan(self, op: Op, known: Known, rng: random.Random) -> None:
        """An update's record, value (no other operation writes it) and the SyncCount its patch names."""
        if op.kind == "update":
            op.key = rng.choice(KEYS)
            op.value = f"{self.name}.{op.index}"
            op.given = known.counts.get(op.key, 0)
        elif op.kind == "list":
            op.given = 0

    async def _send(self, op: Op, calls: Calls, known: Known) -> dict[str, Any]:
        if op.kind == "list":
            return await calls.list(op.dataset, 0)
        if op.kind == "delete":
            return await calls.delete(op.dataset)
        patch = {"Op": "replace", "Key": op.key, "Value": op.value, "SyncCount": op.given}
        assert known.token is not None
        return await calls.update(op.dataset, known.token, patch)

    def _learn(self, op: Op, known: Known, answer: dict[str, Any], now: float) -> None:
        op.attempts += int(answer.get("ResponseMetadata", {}).get("RetryAttempts", 0))
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
    raise SyncClientError(CONNECTION_ERROR, f"no instance gave a token: {failure}", 0)


@dataclass
class Workload:
    """The pool, its devices, and the thread pool boto3's calls run in."""

    pool: str
    topic: str
    devices: list[Device]
    executor: ThreadPoolExecutor

    async def run(
        self, history: History, seconds: float, seed: int, started: float, hold: asyncio.Event | None = None
    ) -> None:
        """Every device's loop for ``seconds``, and past them until ``hold`` is set (the nemesis's first round is
        over; at most HOLD_SECONDS more). A failed assertion of one loop ends them all."""
        until = time.monotonic() + seconds
        latest = until + HOLD_SECONDS

        def going() -> bool:
            now = time.monotonic()
            return now < until or (hold is not None and not hold.is_set() and now < latest)

        async def loop(device: Device, rng: random.Random) -> None:
            while going():
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
            name = f"i{number}d{index}"
            devices.append(await _device(name, len(devices), endpoints, pool, identity, unsigned, executor))
    return Workload(pool, topic, devices, executor)


async def _device(
    name: str, number: int, endpoints: list[str], pool: str, identity: str, unsigned: Any, executor: ThreadPoolExecutor
) -> Device:
    """Device ``number`` of the run: by turns boto3 with one attempt, the reference client's transport, and boto3
    with retries and its DeviceId; its push client on instance ``number % 2``, registered and subscribed."""

    async def tokens() -> str:
        return await guest_tokens(endpoints, identity)

    kind = DEVICE_KINDS[number % len(DEVICE_KINDS)]
    push = SyncClient(endpoints[number % len(endpoints)], pool, identity, tokens, timeout=CALL_SECONDS)
    device_id = await push.register_device(token=f"chaos-{name}")
    for dataset in DATASETS:
        await push.subscribe(dataset)
    calls: list[Calls]
    if kind == "client":
        calls = [ClientCalls(endpoint, pool, identity, tokens) for endpoint in endpoints]
    else:
        answer = await asyncio.to_thread(unsigned.get_credentials_for_identity, IdentityId=identity)
        named = device_id if kind == "boto3-retrying" else None
        calls = [BotoCalls(url, pool, identity, answer["Credentials"], executor, named) for url in endpoints]
    device = Device(name, kind, identity, calls, push)
    device.turn = number
    return device


def listener_of(device: Device) -> PushListener:
    """The device's push listener: quick reconnects (the instances come back within seconds), pings after 5 s."""
    device.listener = device.push.listener(backoff=Backoff(initial=0.2, maximum=2.0), ping_interval=5.0)
    return device.listener
