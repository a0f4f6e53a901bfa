"""PouchDB Server 4.2 (the CouchDB-protocol peer) in ``make bench``: installs it with npm, runs it, seeds workloads.

Deployment, as its README starts it (``pouchdb-server --port … --dir …``):

* Storage: PouchDB's default LevelDB adapter (leveldown 5.6, the native LevelDB binding), files in ``folder/db``.
  ``npm ci --ignore-scripts`` of bench/peers/pouchdb (every package locked with its integrity hash): leveldown ships
  prebuilt binaries for linux-x64 that node-gyp-build loads at run time (checked at install); the other skipped
  script belongs to the unused ``--sqlite`` backend (sqlite3 4.2, which predates Node 20). LevelDB writes without
  fsync: an acknowledged write survives a crash of the server process, not of the machine.
* One Node process (express-pouchdb), no clustering: that is how PouchDB Server runs.
* Authentication: CouchDB-style. ``config.json`` names one server admin (who seeds); each benchmark user is a
  ``_users`` document (pbkdf2, CouchDB's default 10 iterations) and sends Basic auth on every request; each
  database's ``_security`` lists its user as the only member, so no other user can read or write it.
* The CouchDB database-per-user pattern: user ``u3`` writes into database ``u3``, ``d3`` reads changes from ``d3``,
  ``p3`` pulls ``p3``. PouchDB Server keeps every database it opened open (one LevelDB store each, about four file
  handles: 2,300 databases held 9,200): ``MAX_DATABASES`` caps the databases a workload gets, and so its template
  count, so that all three workloads' databases fit one server under a 20,000 open-files limit.
* Logs: level ``warning`` (no per-request line) into ``folder/pouchdb.log``; not copied to stdout.

A PouchDB Server 4.2 quirk: an unauthorised ``PUT /<db>`` crashes the process (``db.info is not a function``), so
databases are only ever created as the admin.
"""

from __future__ import annotations

import json
import secrets
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.load import RequestTemplate
from bench.systems.base import (
    DELTA_CHANGED,
    DELTA_RECORDS,
    INSTALLS,
    PASSWORD,
    PEERS,
    PULL_RECORDS,
    PULL_VALUE_BYTES,
    WRITE_VALUE,
    ServerProcess,
    basic_auth,
    file_digest,
    for_each_user,
    run,
)

#: package.json (pouchdb-server 4.2.0) and the package-lock.json that pins every package with its integrity hash.
PACKAGE = PEERS / "pouchdb"
HOME = INSTALLS / "pouchdb"
BINARY = HOME / "node_modules" / ".bin" / "pouchdb-server"
ADMIN = "bench-admin"
#: Databases (so users, so templates) per workload at most: see the module docstring.
MAX_DATABASES = 1000
USERS_PER_BATCH = 500
JSON = {"Content-Type": "application/json"}


def install_pouchdb_server() -> None:
    """``npm ci``: exactly the locked packages, each checked against its integrity hash; once per lock."""
    stamp = HOME / f"installed-{file_digest(PACKAGE / 'package-lock.json')}"
    if stamp.exists() and BINARY.exists():
        return
    HOME.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(PACKAGE / name, HOME / name)
    run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"], cwd=HOME)
    # The prebuilt LevelDB binding must load on this Node, or the server would fail on its first database.
    run(["node", "-e", "require('leveldown')"], cwd=HOME)
    for old in HOME.glob("installed-*"):
        old.unlink()
    stamp.touch()


def server_config(folder: Path, admin_password: str) -> dict[str, Any]:
    """``config.json`` (PouchDB Server's ``/_config``): one admin, quiet logging into ``folder``."""
    return {
        "admins": {ADMIN: admin_password},
        "log": {"file": str(folder / "pouchdb.log"), "level": "warning"},
        "pouchdb_server": {"no-stdout-logs": True},
    }


def capped(count: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(min(count, MAX_DATABASES))]


class PouchDBServer(ServerProcess):
    """PouchDB Server on LevelDB, one database per user: an ``HttpSystem``."""

    name = "pouchdb"

    def __init__(self) -> None:
        self._admin = ""

    def install(self) -> None:
        install_pouchdb_server()

    def start(self, folder: Path, port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        admin_password = secrets.token_hex(16)
        self._admin = basic_auth(ADMIN, admin_password)
        config = folder / "config.json"
        config.write_text(json.dumps(server_config(folder, admin_password), indent=2) + "\n")
        command = [str(BINARY), "--host", "127.0.0.1", "--port", str(port)]
        command += ["--dir", str(folder / "db"), "--config", str(config), "--no-color"]
        self.serve(command, port, what="pouchdb-server", log=folder / "pouchdb-server.out", cwd=folder)

    def versions(self) -> dict[str, str]:
        package = HOME / "node_modules" / "pouchdb-server" / "package.json"
        version = str(json.loads(package.read_text())["version"]) if package.exists() else "not installed"
        return {"pouchdb-server": version, "node": run(["node", "--version"]).strip().removeprefix("v")}

    async def write_templates(self, users: int) -> list[RequestTemplate]:
        names = capped(users, "u")
        await self._databases(names)
        body = orjson.dumps({"value": WRITE_VALUE}).decode()
        return [
            RequestTemplate("PUT", f"/{user}/r${{seq}}", body, {**JSON, "Authorization": basic_auth(user)})
            for user in names
        ]

    async def delta_templates(self, users: int) -> list[RequestTemplate]:
        names = capped(users, "d")
        await self._databases(names)
        markers = await for_each_user(self.url, names, self._seed_delta)
        return [
            RequestTemplate("GET", changes_path(user, marker), headers={"Authorization": basic_auth(user)})
            for user, marker in zip(names, markers, strict=True)
        ]

    async def full_pull_templates(self, datasets: int) -> list[RequestTemplate]:
        names = capped(datasets, "p")
        await self._databases(names)
        await for_each_user(self.url, names, self._seed_pull)
        return [
            RequestTemplate("GET", f"/{user}/_all_docs?include_docs=true", headers={"Authorization": basic_auth(user)})
            for user in names
        ]

    async def _databases(self, users: list[str]) -> None:
        """A ``_users`` document per user, and a database of the same name whose only member is that user."""
        async with aiohttp.ClientSession(base_url=self.url, headers={"Authorization": self._admin}) as session:
            for start in range(0, len(users), USERS_PER_BATCH):
                docs = [user_doc(user) for user in users[start : start + USERS_PER_BATCH]]
                await post_json(session, "/_users/_bulk_docs", {"docs": docs}, existing_ok=True)
        await for_each_user(self.url, users, self._create_database)

    async def _create_database(self, session: aiohttp.ClientSession, user: str) -> None:
        async with session.put(f"/{user}", headers={"Authorization": self._admin}) as response:
            await expect(response, 201, 412)  # 412: it exists already (a second call on the same server)
        security = {"admins": {"names": [], "roles": []}, "members": {"names": [user], "roles": []}}
        headers = {**JSON, "Authorization": self._admin}
        async with session.put(f"/{user}/_security", data=orjson.dumps(security), headers=headers) as response:
            await expect(response, 200)

    async def _seed_delta(self, session: aiohttp.ClientSession, user: str) -> str:
        """DELTA_RECORDS documents, the database's ``update_seq`` (the marker), then DELTA_CHANGED of them updated."""
        auth = {"Authorization": basic_auth(user)}
        docs = [{"_id": f"r{k:04d}", "value": f"first {k}"} for k in range(DELTA_RECORDS)]
        written = await post_json(session, f"/{user}/_bulk_docs", {"docs": docs}, auth)
        async with session.get(f"/{user}", headers=auth) as response:
            marker = str((await expect(response, 200))["update_seq"])
        changed = [
            {"_id": result["id"], "_rev": result["rev"], "value": f"changed {result['id']}"}
            for result in written[-DELTA_CHANGED:]
        ]
        await post_json(session, f"/{user}/_bulk_docs", {"docs": changed}, auth)
        async with session.get(changes_path(user, marker), headers=auth) as response:
            results = (await expect(response, 200))["results"]
        if len(results) != DELTA_CHANGED:
            raise RuntimeError(f"pouchdb: {user} has {len(results)} changes since {marker}, not {DELTA_CHANGED}")
        return marker

    async def _seed_pull(self, session: aiohttp.ClientSession, user: str) -> None:
        """PULL_RECORDS documents with PULL_VALUE_BYTES-character values, in one ``_bulk_docs``."""
        auth = {"Authorization": basic_auth(user)}
        docs = [{"_id": f"r{k:04d}", "value": f"{k:04d}".ljust(PULL_VALUE_BYTES, "p")} for k in range(PULL_RECORDS)]
        await post_json(session, f"/{user}/_bulk_docs", {"docs": docs}, auth)
        async with session.get(f"/{user}/_all_docs?include_docs=true", headers=auth) as response:
            rows = (await expect(response, 200))["rows"]
        if len(rows) != PULL_RECORDS:
            raise RuntimeError(f"pouchdb: {user} holds {len(rows)} documents, not {PULL_RECORDS}")


def user_doc(user: str) -> dict[str, Any]:
    return {"_id": f"org.couchdb.user:{user}", "name": user, "password": PASSWORD, "roles": [], "type": "user"}


def changes_path(user: str, marker: str) -> str:
    return f"/{user}/_changes?since={urllib.parse.quote(marker, safe='')}&include_docs=true"


async def expect(response: aiohttp.ClientResponse, *statuses: int) -> Any:
    """The decoded JSON answer, or a RuntimeError if its status is not one of ``statuses``."""
    body = await response.read()
    if response.status not in statuses:
        raise RuntimeError(f"pouchdb: {response.method} {response.url.path} answered {response.status}: {body[:300]!r}")
    return orjson.loads(body)


async def post_json(
    session: aiohttp.ClientSession,
    path: str,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
    *,
    existing_ok: bool = False,
) -> list[dict[str, Any]]:
    """POSTs ``payload`` to a ``_bulk_docs`` endpoint; its per-document results, every one of which must be ok
    (or, with ``existing_ok``, a conflict: the document was written by an earlier call)."""
    async with session.post(path, data=orjson.dumps(payload), headers={**JSON, **(headers or {})}) as response:
        results: list[dict[str, Any]] = await expect(response, 201)
    failed = [r for r in results if not r.get("ok") and not (existing_ok and r.get("error") == "conflict")]
    if failed:
        raise RuntimeError(f"pouchdb: {path}: {len(failed)} documents failed, e.g. {failed[0]}")
    return results
