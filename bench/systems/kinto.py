"""Kinto 26.5 on PostgreSQL as a peer in ``make bench``: installs it, runs it on a private cluster, seeds workloads.

Deployment, as a user following Kinto's "Running in production" page would set it up on this 2-core machine:

* Storage, permission and cache backends all ``kinto.core.*.postgresql`` on one database of a private PostgreSQL
  cluster (the Debian package's server, ``initdb`` into ``folder/pg``, 127.0.0.1 only, trust auth on loopback).
* Served by gunicorn. The page names uWSGI "or any other WSGI server like Gunicorn"; ``kinto start`` is pserve +
  waitress, one process meant for development, and uWSGI has no wheel on PyPI. Gunicorn's documented sizing is
  (2 x cores) + 1 workers; they are gthread workers so that connections stay open between requests (sync workers
  close every connection), ``THREADS`` threads each. No access log; Kinto's own request log is raised to WARNING.
* Durability: ``fsync = on`` and ``synchronous_commit = off``. A commit returns before its WAL is flushed; the WAL
  writer flushes within about 3 x ``wal_writer_delay`` (200 ms), so a crash loses at most the last ~0.6 s of
  acknowledged writes and never corrupts the database: the same promise as syncsvc's Redis ``appendfsync
  everysec``. Everything else is PostgreSQL's default configuration.
* Authentication: Basic auth (``u1:secret``); each user writes into its own ``default`` bucket (default_bucket
  plugin). No pagination limit (``paginate_by`` unset) so a 1,024-record collection comes back in one page.

Seeding: buckets, collections and the delta workload's changes go through Kinto's HTTP API. The bulk of the
records (100 per delta user, 1,024 per pull dataset) are inserted with one SQL statement into Kinto's ``objects``
table instead, because Kinto writes about 200 records a second here (50 pull datasets took 7 minutes through the
batch endpoint). The rows are the ones Kinto writes itself (``data`` without id and timestamp; ``last_modified``
set by Kinto's own ``bump_timestamp`` trigger), and every user's collection is then read back through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import random
import secrets
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.load import RequestTemplate, process_tree
from bench.systems.base import (
    DELTA_CHANGED,
    DELTA_RECORDS,
    INSTALLS,
    PEERS,
    PULL_RECORDS,
    PULL_VALUE_BYTES,
    WRITE_VALUE,
    ServerProcess,
    basic_auth,
    file_digest,
    for_each_user,
    free_port,
    pinned_version,
    run,
)

#: Every package of the Kinto install pinned with its hashes (compiled from bench/peers/kinto.in by ``make lock``).
REQUIREMENTS = PEERS / "kinto.txt"
HOME = INSTALLS / "kinto"
VENV = HOME / "venv"
WORKERS = 2 * (os.cpu_count() or 1) + 1
THREADS = 4
DATABASE = "kinto"
#: Kinto's default ``batch_max_requests``.
BATCH_SIZE = 25
RETRIES = 20
#: Unix socket paths are limited to 107 bytes; with a longer folder the cluster listens on TCP only.
SOCKET_PATH_LIMIT = 90


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda path: int(Path(path).parts[4]))
    return Path(found[-1]).parent if found else None


def install_postgresql() -> None:
    if postgres_bin() is not None:
        return
    command = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "postgresql"]
    try:
        run(command)
    except RuntimeError:
        run(["apt-get", "update", "-qq"])
        run(command)


def install_kinto() -> None:
    """Installs exactly the locked set into a venv of its own, once per version of the requirements file."""
    stamp = HOME / f"installed-{file_digest(REQUIREMENTS)}"
    if stamp.exists() and (VENV / "bin" / "gunicorn").exists():
        return
    HOME.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "venv", "--clear", str(VENV)])
    pip = [str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "--require-hashes"]
    run([*pip, "--requirement", str(REQUIREMENTS)])
    for old in HOME.glob("installed-*"):
        old.unlink()
    stamp.touch()


class Cluster:
    """A private PostgreSQL cluster in ``folder/pg`` with one database for Kinto, run as the ``postgres`` user."""

    def __init__(self, folder: Path) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed: call install() first")
        self.bin = binaries
        self.folder = folder
        self.data = folder / "pg"
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        """initdb, configure, start (returns once it accepts connections), create the database."""
        self._open_folder()
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        self.port = free_port()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(self._settings())
        log = self.folder / "pg.log"
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "-t", "60", "start"])
        self.sql(f"CREATE DATABASE {DATABASE} ENCODING 'UTF8' TEMPLATE template0", database="postgres")
        self.sql(f"ALTER DATABASE {DATABASE} SET TIMEZONE TO 'UTC'", database="postgres")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def postmaster(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def sql(self, script: str, *, database: str = DATABASE) -> str:
        """Runs ``script`` with psql (stops at the first error); its output."""
        psql = [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database]
        return self._run([*psql, "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"], script)

    def _run(self, command: list[str], stdin: str | None = None) -> str:
        """Runs ``command`` as the ``postgres`` system user (the server refuses to run as root)."""
        return run(["runuser", "-u", "postgres", "--", *command], cwd=self.data, stdin=stdin)

    def _open_folder(self) -> None:
        """Lets ``postgres`` reach the folder (search permission on it and its ancestors) and own ``pg``."""
        for directory in [self.folder, *self.folder.parents]:
            mode = directory.stat().st_mode
            if not mode & 0o001:
                directory.chmod(mode | 0o001)
        for owned in (self.data, self.folder / "pg-socket"):
            owned.mkdir(exist_ok=True)
            shutil.chown(owned, "postgres", "postgres")
        (self.folder / "pg.log").touch()
        shutil.chown(self.folder / "pg.log", "postgres", "postgres")

    def _settings(self) -> str:
        """Appended to postgresql.conf (see the module docstring for the durability choice)."""
        sockets = str(self.folder / "pg-socket")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": sockets if len(sockets) <= SOCKET_PATH_LIMIT else "",
            "timezone": "UTC",
            "fsync": "on",
            "synchronous_commit": "off",
        }
        return "".join(f"{name} = '{value}'\n" for name, value in settings.items())


def kinto_ini(database_url: str) -> str:
    """Kinto's configuration: PostgreSQL everywhere, Basic auth, default buckets, no pagination, quiet logs."""
    backends = "".join(
        f"kinto.{kind}_backend = kinto.core.{kind}.postgresql\nkinto.{kind}_url = {database_url}\n"
        for kind in ("storage", "permission", "cache")
    )
    return (
        "[app:main]\n"
        "use = egg:kinto\n"
        f"{backends}"
        "kinto.storage_max_fetch_size = 10000\n"
        "kinto.includes = kinto.plugins.default_bucket\n"
        "multiauth.policies = basicauth\n"
        f"kinto.userid_hmac_secret = {secrets.token_hex(32)}\n"
        "kinto.bucket_create_principals = system.Authenticated\n"
        "\n[loggers]\nkeys = root\n"
        "\n[handlers]\nkeys = console\n"
        "\n[formatters]\nkeys = generic\n"
        "\n[logger_root]\nlevel = WARNING\nhandlers = console\n"
        "\n[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n"
        "\n[formatter_generic]\nformat = %%(asctime)s %%(levelname)s [%%(name)s] %%(message)s\n"
    )


def gunicorn_command(ini: Path, port: int) -> list[str]:
    return [
        str(VENV / "bin" / "gunicorn"),
        "--paste",
        str(ini),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(WORKERS),
        "--worker-class",
        "gthread",
        "--threads",
        str(THREADS),
    ]


def pull_value() -> str:
    return ("0123456789abcdef" * (PULL_VALUE_BYTES // 16 + 1))[:PULL_VALUE_BYTES]


def insert_records(parents: list[str], records: int, value: str) -> str:
    """SQL adding records ``0`` .. ``records - 1`` holding ``{"value": value}`` under each Kinto parent id.

    Records that exist are left alone (a second seeding is a no-op). ``last_modified`` is left NULL for Kinto's
    ``bump_timestamp`` trigger, as Kinto's own inserts do. Parent ids
    are made of base64url and hex characters and ``value`` of hex digits, so literals need no escaping.
    """
    listed = ", ".join(f"'{parent}'" for parent in parents)
    return (
        "INSERT INTO objects (id, parent_id, resource_name, data, last_modified, deleted)\n"
        f"SELECT 'r' || n, parent, 'record', jsonb_build_object('value', '{value}'), NULL, FALSE\n"
        f"FROM unnest(ARRAY[{listed}]) AS parent, generate_series(0, {records - 1}) AS n ORDER BY parent, n\n"
        "ON CONFLICT DO NOTHING;\n"
    )


class Kinto(ServerProcess):
    """Kinto on PostgreSQL, served by gunicorn: an ``HttpSystem``."""

    name = "kinto"

    def __init__(self) -> None:
        self._cluster: Cluster | None = None

    def install(self) -> None:
        install_postgresql()
        install_kinto()

    def start(self, folder: Path, port: int) -> None:
        try:
            self._start(folder, port)
        except BaseException:
            self.stop()  # leave no cluster or gunicorn behind a failed start
            raise

    def _start(self, folder: Path, port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._cluster = Cluster(folder)
        self._cluster.start()
        ini = folder / "kinto.ini"
        ini.write_text(kinto_ini(self._cluster.url))
        run([str(VENV / "bin" / "kinto"), "migrate", "--ini", str(ini)], cwd=folder)
        self.serve(
            gunicorn_command(ini, port), port, what="kinto", ready_path="/v1/", log=folder / "kinto.log", cwd=folder
        )

    def stop(self) -> None:
        super().stop()
        if self._cluster is not None:
            self._cluster.stop()

    def pids(self) -> list[int]:
        postmaster = self._cluster.postmaster() if self._cluster is not None else None
        return super().pids() + (process_tree(postmaster) if postmaster is not None else [])

    def versions(self) -> dict[str, str]:
        binaries = postgres_bin()
        # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        postgresql = run([str(binaries / "postgres"), "--version"]).split()[2] if binaries else "not installed"
        return {
            "kinto": pinned_version(REQUIREMENTS, "kinto"),
            "gunicorn": pinned_version(REQUIREMENTS, "gunicorn"),
            "postgresql": postgresql,
        }

    async def write_templates(self, users: int) -> list[RequestTemplate]:
        names = [f"u{i}" for i in range(users)]
        await for_each_user(self.url, names, lambda session, user: create_collection(session, user, "bench"))
        return [
            RequestTemplate(
                "PUT",
                "/v1/buckets/default/collections/bench/records/r${seq}",
                orjson.dumps({"data": {"value": WRITE_VALUE}}).decode(),
                {"Content-Type": "application/json", "If-None-Match": "*", "Authorization": basic_auth(user)},
            )
            for user in names
        ]

    async def delta_templates(self, users: int) -> list[RequestTemplate]:
        names = [f"d{i}" for i in range(users)]
        await self._bulk_records(names, "delta", DELTA_RECORDS, "0")
        markers = await for_each_user(self.url, names, change_delta)
        return [
            RequestTemplate(
                "GET",
                f"/v1/buckets/default/collections/delta/records?_since={marker}",
                headers={"Authorization": basic_auth(user)},
            )
            for user, marker in zip(names, markers, strict=True)
        ]

    async def full_pull_templates(self, datasets: int) -> list[RequestTemplate]:
        names = [f"p{i}" for i in range(datasets)]
        await self._bulk_records(names, "pull", PULL_RECORDS, pull_value())
        await for_each_user(self.url, names, check_pull)
        return [
            RequestTemplate(
                "GET", "/v1/buckets/default/collections/pull/records", headers={"Authorization": basic_auth(user)}
            )
            for user in names
        ]

    async def _bulk_records(self, users: list[str], collection: str, records: int, value: str) -> None:
        """Creates each user's ``collection`` through the API, then ``records`` records in it with one SQL insert."""
        if self._cluster is None:
            raise RuntimeError("kinto is not started")
        buckets = await for_each_user(
            self.url, users, lambda session, user: create_collection(session, user, collection)
        )
        parents = [f"/buckets/{bucket}/collections/{collection}" for bucket in buckets]
        await asyncio.to_thread(self._cluster.sql, insert_records(parents, records, value))


async def request(
    session: aiohttp.ClientSession, user: str, method: str, path: str, body: object = None
) -> tuple[Any, Mapping[str, str]]:
    """One request as ``user``: the decoded JSON answer and its headers; a RuntimeError on a non-2xx status.

    Kinto answers 409 "Integrity constraint violated, please retry" when two writes under one parent (e.g. two
    users' default buckets, all children of the root) get the same millisecond timestamp; we retry as told.
    """
    headers = {"Authorization": basic_auth(user), "Content-Type": "application/json"}
    data = orjson.dumps(body) if body is not None else None
    for attempt in range(RETRIES + 1):
        async with session.request(method, path, data=data, headers=headers) as response:
            payload = await response.read()
            if response.status < 300:
                return orjson.loads(payload), response.headers
            if response.status != 409 or attempt == RETRIES:
                raise RuntimeError(f"kinto: {method} {path} as {user} answered {response.status}: {payload[:300]!r}")
        await asyncio.sleep(random.uniform(0.005, 0.05))
    raise AssertionError("unreachable")


async def create_collection(session: aiohttp.ClientSession, user: str, collection: str) -> str:
    """Creates ``user``'s default bucket (implicitly) and ``collection`` in it; the bucket's real id."""
    await request(session, user, "PUT", f"/v1/buckets/default/collections/{collection}", {"data": {}})
    hello, _ = await request(session, user, "GET", "/v1/")
    bucket: str = hello["user"]["bucket"]
    return bucket


async def records_of(
    session: aiohttp.ClientSession, user: str, path: str
) -> tuple[list[dict[str, Any]], Mapping[str, str]]:
    answer, headers = await request(session, user, "GET", path)
    records: list[dict[str, Any]] = answer["data"]
    return records, headers


async def change_delta(session: aiohttp.ClientSession, user: str) -> str:
    """Takes the delta collection's timestamp, then updates its last ``DELTA_CHANGED`` records: the timestamp."""
    in_batch = "/buckets/default/collections/delta/records"  # batch subrequest paths leave out the /v1 prefix
    collection = f"/v1{in_batch}"
    records, headers = await records_of(session, user, collection)
    if len(records) != DELTA_RECORDS:
        raise RuntimeError(f"kinto: {user}'s delta collection holds {len(records)} records, not {DELTA_RECORDS}")
    marker = headers["ETag"].strip('"')
    changed = [f"r{n}" for n in range(DELTA_RECORDS - DELTA_CHANGED, DELTA_RECORDS)]
    update = {"data": {"value": f"changed after {marker}"}}  # a new value, also when seeded a second time
    subrequests = [{"path": f"{in_batch}/{record}", "body": update} for record in changed]
    answer, _ = await request(
        session, user, "POST", "/v1/batch", {"defaults": {"method": "PATCH"}, "requests": subrequests}
    )
    failed = [response for response in answer["responses"] if response["status"] >= 300]
    if failed:
        raise RuntimeError(f"kinto: {user}'s delta updates had {len(failed)} failures, the first {failed[0]}")
    since, _ = await records_of(session, user, f"{collection}?_since={marker}")
    if sorted(record["id"] for record in since) != sorted(changed):
        raise RuntimeError(f"kinto: {user}'s changes since {marker} are {len(since)} records, not the changed ones")
    return marker


async def check_pull(session: aiohttp.ClientSession, user: str) -> None:
    """Checks that one GET answers all ``PULL_RECORDS`` records of the pull collection, on one page."""
    records, headers = await records_of(session, user, "/v1/buckets/default/collections/pull/records")
    complete = len(records) == PULL_RECORDS and all(record["value"] == pull_value() for record in records)
    if not complete or "Next-Page" in headers:
        raise RuntimeError(
            f"kinto: {user}'s pull answered {len(records)} records (Next-Page: {'Next-Page' in headers})"
        )
