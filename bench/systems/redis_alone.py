"""The storage ceiling: Redis alone running syncsvc's write script, driven by redis-benchmark.

Each request is one EVALSHA of ``update_records.lua`` with the arguments syncsvc sends for a one-record
UpdateRecords: the same eleven keys, the caller's identity check (its profile, as a Bearer write checks it), a
sealed-size value (171 characters, what a 100-byte value becomes), the outbox entry for the stream and the push
announcement. What is left out is everything syncsvc does around the script
(HTTP, authentication, JSON, sealing), so ``syncsvc / Redis alone`` shows how much of Redis's capacity the service
reaches.

redis-benchmark replaces each ``__rand_int__`` by a random number, which makes every write a new record
(see KEYSPACE). All writes go to one identity's dataset; the record limits passed to the
script are raised so that dataset can take them (the limit checks themselves still run).
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from importlib.resources import files

import orjson
import redis

from bench.load import CORES, Point, cpu_seconds, run_generator
from syncsvc.rediskeys import IdentityKeyspace

POOL = "us-east-1:00000000-0000-4000-8000-00000000bench"
IDENTITY = "us-east-1:00000000-0000-4000-8000-0000000000b1"
SEALED_VALUE = "e1:" + base64.urlsafe_b64encode(os.urandom(128)).decode()
NAME = "redis-alone"
#: redis-benchmark's -r is a C int; 10^9 record names make collisions (a conflict answer) about one in 10^4.
KEYSPACE = 10**9


def script_command(client: redis.Redis) -> list[str]:
    """The EVALSHA command line (after ``redis-benchmark`` options) of one new-record write."""
    sha = client.script_load(files("syncsvc.store").joinpath("lua", "update_records.lua").read_text())
    keyspace = IdentityKeyspace.of(POOL, IDENTITY, 16)
    patches = orjson.dumps([{"k": "k__rand_int__", "op": "replace", "sc": 0, "v": SEALED_VALUE, "n": 100}]).decode()
    keys = [*keyspace.write_keys("bench"), keyspace.profile]
    client.hset(keyspace.profile, mapping={"pool": POOL, "gen": "1", "rev": "0"})
    args = [
        "bench",
        str(int(time.time() * 1000)),
        IDENTITY,
        "f__rand_int__",  # the request's fingerprint: a new one per write (no re-send)
        "20",
        str(10**12),
        str(10**15),
        patches,
        IDENTITY,
        "bench-ceiling",
        POOL,
        "",
        keyspace.push_channel,
        POOL,  # the caller's standing: pool, generation, revision (syncsvc.model.Standing)
        "1",
        "0",
        "",  # no traceparent: the write is not traced
    ]
    return ["EVALSHA", sha, str(len(keys)), *keys, *args]


def run_point(port: int, *, connections: int, requests: int, server_pid: int) -> Point:
    """``requests`` writes over ``connections`` connections; the point as wrk would report it."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise RuntimeError("redis-benchmark is not installed (Debian package redis-tools)")
    client = redis.Redis(port=port)
    command = [
        binary,
        "-p",
        str(port),
        "-c",
        str(connections),
        "-n",
        str(requests),
        "-r",
        str(KEYSPACE),
        "--csv",
        *script_command(client),
    ]
    before = cpu_seconds([server_pid])
    started = time.perf_counter()
    output, generator_seconds = run_generator(command)
    wall = time.perf_counter() - started
    used = cpu_seconds([server_pid]) - before
    # The CSV's first column is the command (JSON with quotes and commas): read the seven numbers from the right.
    lines = [line for line in output.splitlines() if line.strip()]
    if len(lines) < 2:
        raise RuntimeError(f"redis-benchmark printed no result: {output!r}")
    header = [name.strip('"') for name in lines[0].split(",")][-7:]
    row = dict(zip(header, (float(cell.strip('"')) for cell in lines[-1].rsplit(",", 7)[-7:]), strict=True))
    return Point(
        connections=connections,
        seconds=wall,
        requests=requests,
        throughput=row["rps"],
        p50_ms=row["p50_latency_ms"],
        p99_ms=row["p99_latency_ms"],
        max_ms=row["max_latency_ms"],
        errors=0,
        generator_cpu=generator_seconds / (wall * CORES),
        server_cpu=used / (wall * CORES),
        cpu_ms=used / requests * 1000,
    )
