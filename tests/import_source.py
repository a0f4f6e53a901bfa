"""The source of the `syncsvc import` tests: a separate syncsvc deployment (a `syncsvc serve` process on a
redis-server of its own) standing in for a live Cognito Sync, populated through the public APIs with unmodified
boto3 as an app's users would have filled it, and the `syncsvc import` command run against it as an operator runs it.

:func:`source_deployment` starts the source; :func:`populate` fills one pool with guests, developer-authenticated
identities, OIDC logins, datasets written several times (sync counts above 1), record tombstones, deleted datasets and
merged datasets (MergeDeveloperIdentities: ``<name>.<identity id>``), concurrently. :func:`import_command` runs
`syncsvc import` (as a process: a test can kill it) with the destination's Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore
from botocore.config import Config

from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION
from tests.devices import APP_CLIENT, DEVELOPER_PROVIDER, LOGIN, LOGIN2
from tests.oidc_provider import TestIdentityProvider
from tests.redis_processes import RedisProcess
from tests.servers import SYNCSVC, Served, environment, syncsvc_process

ROOT = Path(__file__).resolve().parents[1]
#: The trigger the source pool's Cognito Events name ("a Lambda function"), and the one the destination maps it to.
SOURCE_TRIGGER = "lambda-validate"
DESTINATION_TRIGGER = "validate"
DESTINATION_TRIGGERS = f"{DESTINATION_TRIGGER}=tests.trigger_examples:validate"
#: Calls to the source at once while populating it.
POPULATE_CONCURRENCY = 16
POOL_NAME = "moving-in"

Changes = Mapping[str, str | None]


@dataclass
class Source:
    """The source deployment: its endpoint, its process, and developer clients (the operator's)."""

    served: Served
    identity: Any
    sync: Any
    #: cognito-identity without credentials, as an app on a device holds it
    device_identity: Any
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(POPULATE_CONCURRENCY))
    #: (identity, dataset) -> (SyncSessionToken, record key -> sync count), for writes without a ListRecords each.
    sessions: dict[tuple[str, str], tuple[str, dict[str, int]]] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return self.served.url

    async def call(self, client: Any, operation: str, **params: Any) -> dict[str, Any]:
        async with self.gate:
            answer: dict[str, Any] = await asyncio.to_thread(getattr(client, operation), **params)
        answer.pop("ResponseMetadata", None)
        return answer

    async def write(
        self, pool: str, identity: str, dataset: str, changes: Changes, *, device: str = "seed", client: Any = None
    ) -> int:
        """One UpdateRecords of ``changes`` (None removes the key) with ``client`` (default: the developer's); the
        new sync count."""
        sync = client or self.sync
        known = self.sessions.get((identity, dataset))
        if known is None:
            listed = await self.call(
                sync, "list_records", IdentityPoolId=pool, IdentityId=identity, DatasetName=dataset
            )
            known = (listed["SyncSessionToken"], {r["Key"]: r["SyncCount"] for r in listed["Records"]})
        token, counts = known
        now = int(time.time())
        patches = [
            {"Op": "remove", "Key": key, "SyncCount": counts.get(key, 0), "DeviceLastModifiedDate": now}
            if value is None
            else {
                "Op": "replace",
                "Key": key,
                "Value": value,
                "SyncCount": counts.get(key, 0),
                "DeviceLastModifiedDate": now,
            }
            for key, value in changes.items()
        ]
        answer = await self.call(
            sync,
            "update_records",
            IdentityPoolId=pool,
            IdentityId=identity,
            DatasetName=dataset,
            SyncSessionToken=token,
            DeviceId=device,
            RecordPatches=patches,
        )
        counts.update({record["Key"]: record["SyncCount"] for record in answer["Records"]})
        self.sessions[(identity, dataset)] = (token, counts)
        return max(int(record["SyncCount"]) for record in answer["Records"])

    async def delete_dataset(self, pool: str, identity: str, dataset: str) -> None:
        await self.call(self.sync, "delete_dataset", IdentityPoolId=pool, IdentityId=identity, DatasetName=dataset)
        self.sessions.pop((identity, dataset), None)


def developer_clients(endpoint: str) -> tuple[Any, Any]:
    """(cognito-identity, cognito-sync) clients signed with the suite's developer credentials."""
    session = boto3.session.Session(
        aws_access_key_id=DEVELOPER_KEY, aws_secret_access_key=DEVELOPER_SECRET, region_name=REGION
    )
    config = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=POPULATE_CONCURRENCY)
    return (
        session.client("cognito-identity", endpoint_url=endpoint, config=config),
        session.client("cognito-sync", endpoint_url=endpoint, config=config),
    )


def identity_sync_client(endpoint: str, credentials: Mapping[str, Any]) -> Any:
    """An unmodified boto3 cognito-sync client signed with an identity's temporary credentials (a device's)."""
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    )
    return session.client("cognito-sync", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}))


def unsigned_identity_client(endpoint: str) -> Any:
    """What an app holds on a device: cognito-identity without credentials (GetId, GetCredentialsForIdentity…)."""
    return boto3.session.Session(region_name=REGION).client(
        "cognito-identity",
        endpoint_url=endpoint,
        config=Config(
            signature_version=botocore.UNSIGNED, retries={"max_attempts": 1}, max_pool_connections=POPULATE_CONCURRENCY
        ),
    )


@contextlib.asynccontextmanager
async def source_deployment(folder: Path, idp: TestIdentityProvider) -> AsyncIterator[Source]:
    """A `syncsvc serve` on a redis-server of its own (in ``folder``), accepting ``idp`` as ``login.test`` (client
    ``app-client``) and ``login2.test``, without rate limits; stopped with its Redis when the block ends."""
    redis_node = RedisProcess.new(folder / "redis")
    redis_node.start()
    providers = [
        {"name": LOGIN, "issuer": idp.issuer, "jwks_url": idp.jwks_url, "audiences": [APP_CLIENT]},
        {"name": LOGIN2, "issuer": idp.issuer, "jwks_url": idp.jwks_url},
    ]
    settings = {
        "SYNCSVC_OIDC_PROVIDERS": json.dumps(providers),
        "SYNCSVC_GET_ID_PER_SECOND": "0",
        "SYNCSVC_TOKEN_CALLS_PER_SECOND": "0",
        "SYNCSVC_POOL_CACHE_SECONDS": "0",
        "SYNCSVC_TRIGGERS": f"{SOURCE_TRIGGER}=tests.trigger_examples:validate",
        "PYTHONPATH": str(ROOT),
    }
    try:
        with syncsvc_process(redis_node.url, folder / "source.log", settings) as served:
            identity, sync = developer_clients(served.url)
            yield Source(served, identity, sync, unsigned_identity_client(served.url))
    finally:
        if redis_node.alive:
            redis_node.kill()


@dataclass
class Population:
    """What :func:`populate` made in the source pool."""

    pool_id: str
    guests: list[str] = field(default_factory=list)
    #: developer user id -> identity id (merged-away users point at the identity they joined)
    developer_users: dict[str, str] = field(default_factory=dict)
    #: OIDC subject (provider ``login.test``) -> identity id
    oidc_subjects: dict[str, str] = field(default_factory=dict)
    #: (identity, dataset name) of every live dataset, merged ones included
    datasets: set[tuple[str, str]] = field(default_factory=set)
    deleted: set[tuple[str, str]] = field(default_factory=set)
    merged: set[tuple[str, str]] = field(default_factory=set)

    @property
    def identities(self) -> set[str]:
        return {*self.guests, *self.developer_users.values(), *self.oidc_subjects.values()}

    def logins_csv(self) -> str:
        """The operator's mapping of OIDC subjects (``--logins-file``)."""
        lines = ["identity_id,provider,subject"]
        lines += [f"{identity},{LOGIN},{subject}" for subject, identity in sorted(self.oidc_subjects.items())]
        return "\n".join(lines) + "\n"


async def new_source_pool(source: Source) -> str:
    created = await source.call(
        source.identity,
        "create_identity_pool",
        IdentityPoolName=POOL_NAME,
        AllowUnauthenticatedIdentities=True,
        SupportedLoginProviders={LOGIN: APP_CLIENT},
        DeveloperProviderName=DEVELOPER_PROVIDER,
    )
    pool_id: str = created["IdentityPoolId"]
    return pool_id


async def new_guest(source: Source, pool: str) -> str:
    found = await source.call(source.device_identity, "get_id", IdentityPoolId=pool)
    identity: str = found["IdentityId"]
    return identity


async def new_developer_user(source: Source, pool: str, user: str) -> str:
    found = await source.call(
        source.identity,
        "get_open_id_token_for_developer_identity",
        IdentityPoolId=pool,
        Logins={DEVELOPER_PROVIDER: user},
    )
    identity: str = found["IdentityId"]
    return identity


async def new_oidc_user(source: Source, pool: str, idp: TestIdentityProvider, subject: str) -> str:
    token = idp.mint(subject, aud=APP_CLIENT)
    found = await source.call(source.device_identity, "get_id", IdentityPoolId=pool, Logins={LOGIN: token})
    identity: str = found["IdentityId"]
    return identity


async def fill(source: Source, pool: str, identity: str, number: int, made: Population) -> None:
    """The identity's datasets: ``settings`` written twice (a tombstone), every second identity ``scores`` written
    three times, every seventh a ``scratch`` dataset that is then deleted."""
    await source.write(pool, identity, "settings", {"theme": f"dark-{number}", "lang": "en", "volume": "3"})
    await source.write(pool, identity, "settings", {"theme": f"light-{number}", "volume": None})
    made.datasets.add((identity, "settings"))
    if number % 2 == 0:
        for level in (1, 2, 3):
            await source.write(pool, identity, "scores", {"level": str(level), "best": str(level * 10)})
        made.datasets.add((identity, "scores"))
    if number % 7 == 0:
        await source.write(pool, identity, "scratch", {"draft": "x"})
        await source.delete_dataset(pool, identity, "scratch")
        made.deleted.add((identity, "scratch"))


async def populate(
    source: Source, idp: TestIdentityProvider, *, guests: int, developer_users: int, oidc_users: int, merges: int
) -> Population:
    """A new pool of the source filled with ``guests`` + ``developer_users`` + ``oidc_users`` identities and their
    datasets; then ``merges`` developer users (the last ones) merged into the first ones."""
    pool = await new_source_pool(source)
    made = Population(pool)
    made.guests = list(await asyncio.gather(*(new_guest(source, pool) for _ in range(guests))))
    users = [f"user-{n}" for n in range(developer_users)]
    developer_ids = await asyncio.gather(*(new_developer_user(source, pool, user) for user in users))
    made.developer_users = dict(zip(users, developer_ids, strict=True))
    subjects = [f"subject-{n}" for n in range(oidc_users)]
    oidc_ids = await asyncio.gather(*(new_oidc_user(source, pool, idp, subject) for subject in subjects))
    made.oidc_subjects = dict(zip(subjects, oidc_ids, strict=True))
    everyone = [*made.guests, *developer_ids, *oidc_ids]
    await asyncio.gather(*(fill(source, pool, identity, n, made) for n, identity in enumerate(everyone)))
    for n in range(merges):
        merged_user, kept_user = users[-1 - n], users[n]
        merged_id, kept_id = made.developer_users[merged_user], made.developer_users[kept_user]
        await source.call(
            source.identity,
            "merge_developer_identities",
            SourceUserIdentifier=merged_user,
            DestinationUserIdentifier=kept_user,
            DeveloperProviderName=DEVELOPER_PROVIDER,
            IdentityPoolId=pool,
        )
        made.developer_users[merged_user] = kept_id
        for identity, name in [pair for pair in made.datasets if pair[0] == merged_id]:
            made.datasets.discard((identity, name))
            made.datasets.add((kept_id, f"{name}.{merged_id}"))
            made.merged.add((kept_id, f"{name}.{merged_id}"))
        made.deleted = {pair for pair in made.deleted if pair[0] != merged_id}
    return made


# --- the command ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """A `syncsvc import` process that ended."""

    code: int
    out: str
    err: str

    def line(self, starting: str) -> str:
        """The last output line that starts (after indentation) with ``starting``: the summary's, after the
        progress lines."""
        for line in reversed(self.out.splitlines()):
            if line.strip().startswith(starting):
                return line.strip()
        raise AssertionError(f"no line starting with {starting!r} in:\n{self.out}\n{self.err}")


def import_environment(destination_redis_url: str) -> dict[str, str]:
    """`syncsvc import`'s environment: the destination's settings (as `syncsvc serve`: its Redis, its triggers), no
    AWS configuration."""
    env = environment(
        destination_redis_url,
        SYNCSVC_TRIGGERS=DESTINATION_TRIGGERS,
        PYTHONPATH=str(ROOT),
        COLUMNS="200",
        AWS_EC2_METADATA_DISABLED="true",
    )
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    return env


def import_arguments(source: Source, pool: str, *extra: str) -> list[str]:
    return [
        SYNCSVC,
        "import",
        *[argument for argument in extra if argument == "verify"],
        "--source-endpoint",
        source.endpoint,
        "--source-region",
        REGION,
        "--access-key-id",
        DEVELOPER_KEY,
        "--secret-access-key",
        DEVELOPER_SECRET,
        "--pool",
        pool,
        *[argument for argument in extra if argument != "verify"],
    ]


async def start_import(
    destination_redis_url: str, source: Source, pool: str, *extra: str, settings: Mapping[str, str] | None = None
) -> asyncio.subprocess.Process:
    """`syncsvc import …` started (``extra``: "verify" and flags; ``settings``: more of the destination's
    ``SYNCSVC_*``), its output piped."""
    return await asyncio.create_subprocess_exec(
        *import_arguments(source, pool, *extra),
        env={**import_environment(destination_redis_url), **(settings or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def import_command(
    destination_redis_url: str,
    source: Source,
    pool: str,
    *extra: str,
    settings: Mapping[str, str] | None = None,
    timeout: float = 50,
) -> Finished:
    """Runs `syncsvc import …` to its end."""
    process = await start_import(destination_redis_url, source, pool, *extra, settings=settings)
    out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


def write_file(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)
