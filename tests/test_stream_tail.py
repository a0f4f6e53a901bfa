"""`syncsvc stream tail POOL` run as a user runs it, against a real broker and relay; and docs/asyncapi.yaml checked
against the records syncsvc really produces."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from syncsvc.cli.stream import change_text, iso_time, shorten
from syncsvc.model import Record
from syncsvc.outbox.record import stream_record
from tests.conftest import Boto, free_port, process_environment
from tests.servers import SYNCSVC
from tests.streams import SHARDS, create_topic, read_topic, streaming_pool

ASYNCAPI = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"
DATASET = "settings"


@pytest.fixture
def boto(relayed: str) -> Boto:
    """Clients of a server that runs its own relay (4 shards), like `syncsvc serve`."""
    return Boto(relayed)


def tail_env(redis_url: str, kafka_bootstrap: str) -> dict[str, str]:
    env = process_environment()
    env.update(SYNCSVC_REDIS_URL=redis_url, SYNCSVC_KAFKA_BOOTSTRAP=kafka_bootstrap, SYNCSVC_SHARDS=str(SHARDS))
    return env


async def start_tail(redis_url: str, kafka_bootstrap: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        SYNCSVC,
        "stream",
        "tail",
        *args,
        env=tail_env(redis_url, kafka_bootstrap),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process, timeout: float = 30) -> tuple[int, str, str]:
    """The exit code, stdout and stderr of ``process`` (killed if it has not ended within ``timeout``)."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def tail(redis_url: str, kafka_bootstrap: str, *args: str) -> tuple[int, str, str]:
    return await finish(await start_tail(redis_url, kafka_bootstrap, *args))


async def wait_for_line(process: asyncio.subprocess.Process, starting: str) -> None:
    """Reads the tail's stderr until a line starting with ``starting`` (its status lines go there); kills the tail
    if that line does not come."""
    assert process.stderr is not None
    try:
        async with asyncio.timeout(30):
            while not (line := (await process.stderr.readline()).decode()).startswith(starting):
                assert line, "the tail ended before saying " + starting
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise


async def write(boto: Boto, pool_id: str, identity_id: str, patches: list[dict[str, Any]]) -> int:
    """One UpdateRecords; returns its LastModifiedDate in epoch milliseconds."""
    names = {"IdentityPoolId": pool_id, "IdentityId": identity_id, "DatasetName": DATASET}
    token = (await boto.call(boto.sync, "list_records", **names))["SyncSessionToken"]
    written = await boto.call(
        boto.sync, "update_records", **names, SyncSessionToken=token, DeviceId="phone", RecordPatches=patches
    )
    modified: int = round(written["Records"][0]["LastModifiedDate"].timestamp() * 1000)
    return modified


def replace(key: str, value: str, sync_count: int) -> dict[str, Any]:
    return {"Op": "replace", "Key": key, "Value": value, "SyncCount": sync_count}


async def two_changes(boto: Boto, pool_id: str, identity_id: str) -> tuple[int, int]:
    """theme=dark, font=serif (syncCount 1); then theme=light and font removed (syncCount 2)."""
    first = await write(boto, pool_id, identity_id, [replace("theme", "dark", 0), replace("font", "serif", 0)])
    second = await write(
        boto, pool_id, identity_id, [replace("theme", "light", 1), {"Op": "remove", "Key": "font", "SyncCount": 1}]
    )
    return first, second


async def one_partition_topic(bootstrap: str) -> str:
    """A topic with a single partition: one order for every pool's records on it."""
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
        async with asyncio.timeout(20):
            while not (await admin.describe_topics([topic]))[0]["partitions"]:
                await asyncio.sleep(0.05)
    finally:
        await admin.close()
    return topic


def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text())
    return document


def schema_validator(name: str) -> Draft7Validator:
    """A validator for ``#/components/schemas/<name>`` of docs/asyncapi.yaml (its $refs resolved in the document)."""
    registry: Registry[Any] = Registry().with_resource(
        "asyncapi.yaml", Resource.from_contents(asyncapi(), default_specification=DRAFT7)
    )
    return Draft7Validator({"$ref": f"asyncapi.yaml#/components/schemas/{name}"}, registry=registry)


# --- the tail against Kafka -------------------------------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_tail_shows_each_change_for_a_person(redis_url: str, boto: Boto, kafka_bootstrap: str) -> None:
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    pool_id, identity_id = await streaming_pool(boto, topic), f"us-east-1:{uuid.uuid4()}"
    first, second = await two_changes(boto, pool_id, identity_id)

    code, out, err = await tail(redis_url, kafka_bootstrap, pool_id, "--from-beginning", "--max", "2")

    assert (code, err) == (0, f"syncsvc: following topic '{topic}' from the beginning; Ctrl-C to stop\n")
    assert out == (
        f"{iso_time(first)}  identity {identity_id}  dataset {DATASET}  syncCount 1  replace\n"
        "    replace theme = dark\n"
        "    replace font = serif\n"
        f"{iso_time(second)}  identity {identity_id}  dataset {DATASET}  syncCount 2  replace\n"
        "    replace theme = light\n"
        "    remove font\n"
    )


@pytest.mark.timeout(90)
async def test_tail_json_prints_exactly_the_record_values(redis_url: str, boto: Boto, kafka_bootstrap: str) -> None:
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    pool_id = await streaming_pool(boto, topic)
    await two_changes(boto, pool_id, f"us-east-1:{uuid.uuid4()}")

    code, out, _ = await tail(redis_url, kafka_bootstrap, pool_id, "--from-beginning", "--max", "2", "--json")

    assert code == 0
    on_topic = [message.value.decode() for message in await read_topic(kafka_bootstrap, topic, 2, timeout=10)]
    assert out.splitlines() == on_topic
    payload = schema_validator("CognitoStreamsRecord")
    for line in out.splitlines():
        payload.validate(orjson.loads(line))


@pytest.mark.timeout(90)
async def test_tail_leaves_out_other_pools_on_the_same_topic(redis_url: str, boto: Boto, kafka_bootstrap: str) -> None:
    topic = await one_partition_topic(kafka_bootstrap)
    other_pool, pool_id = await streaming_pool(boto, topic), await streaming_pool(boto, topic)
    await write(boto, other_pool, f"us-east-1:{uuid.uuid4()}", [replace("theme", "other", 0)])
    await read_topic(kafka_bootstrap, topic, 1, timeout=30)  # the other pool's change is first on the partition
    await write(boto, pool_id, f"us-east-1:{uuid.uuid4()}", [replace("theme", "mine", 0)])

    code, out, _ = await tail(redis_url, kafka_bootstrap, pool_id, "--from-beginning", "--max", "1", "--json")

    assert code == 0
    (line,) = out.splitlines()
    assert orjson.loads(line)["identityPoolId"] == pool_id


@pytest.mark.timeout(90)
async def test_tail_starts_at_the_end_by_default(redis_url: str, boto: Boto, kafka_bootstrap: str) -> None:
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    pool_id, identity_id = await streaming_pool(boto, topic), f"us-east-1:{uuid.uuid4()}"
    await write(boto, pool_id, identity_id, [replace("theme", "old", 0)])
    await read_topic(kafka_bootstrap, topic, 1, timeout=30)

    process = await start_tail(redis_url, kafka_bootstrap, pool_id, "--max", "1", "--json")
    await wait_for_line(process, "syncsvc: following topic")
    await write(boto, pool_id, identity_id, [replace("theme", "new", 1)])
    code, out, _ = await finish(process)

    assert code == 0
    assert [record["value"] for record in orjson.loads(out)["kinesisSyncRecords"]] == ["new"]


@pytest.mark.timeout(90)
async def test_tail_waits_for_a_topic_not_created_yet_and_reads_it_from_the_beginning(
    redis_url: str, boto: Boto, kafka_bootstrap: str
) -> None:
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    pool_id = await streaming_pool(boto, topic)

    process = await start_tail(redis_url, kafka_bootstrap, pool_id, "--max", "1", "--json")
    await wait_for_line(process, f"syncsvc: waiting for topic '{topic}'")
    await write(boto, pool_id, f"us-east-1:{uuid.uuid4()}", [replace("theme", "first", 0)])  # the relay creates it
    code, out, _ = await finish(process)

    assert code == 0
    assert orjson.loads(out)["syncCount"] == 1


@pytest.mark.timeout(60)
async def test_sigterm_stops_the_tail_cleanly(redis_url: str, boto: Boto, kafka_bootstrap: str) -> None:
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    pool_id = await streaming_pool(boto, topic)

    process = await start_tail(redis_url, kafka_bootstrap, pool_id)
    await wait_for_line(process, "syncsvc: following topic")
    process.send_signal(signal.SIGTERM)

    assert await finish(process, timeout=15) == (0, "", "")


async def test_a_pool_without_streaming_is_one_line_and_exit_1(
    redis_url: str, boto: Boto, kafka_bootstrap: str
) -> None:
    pool_id = await boto.new_pool()

    code, out, err = await tail(redis_url, kafka_bootstrap, pool_id)

    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"syncsvc: streaming is not enabled for identity pool '{pool_id}'; turn it on with "
        "SetIdentityPoolConfiguration (CognitoStreams StreamName and StreamingStatus ENABLED)"
    ]


async def test_an_unknown_pool_is_resource_not_found(redis_url: str, boto: Boto, kafka_bootstrap: str) -> None:
    pool_id = "us-east-1:00000000-0000-0000-0000-000000000000"

    assert await tail(redis_url, kafka_bootstrap, pool_id) == (
        1,
        "",
        f"syncsvc: ResourceNotFoundException: IdentityPool '{pool_id}' not found.\n",
    )


async def test_kafka_unreachable_is_one_line_and_exit_1(redis_url: str, boto: Boto) -> None:
    pool_id = await streaming_pool(boto, "changes")
    nowhere = f"127.0.0.1:{free_port()}"

    code, out, err = await tail(redis_url, nowhere, pool_id)

    assert (code, out) == (1, "")
    (line,) = err.splitlines()
    assert line.startswith(f"syncsvc: cannot reach Kafka at {nowhere} (KafkaConnectionError: ")


# --- the human form, without Kafka --------------------------------------------------------------------------------


def change(*records: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "identityPoolId": "us-east-1:0b4b6e8e-4f1a-4f83-9a45-3c1a9e1c2b7d",
        "identityId": "us-east-1:5f6d8c2e-9a7b-4c1d-8e2f-1a2b3c4d5e6f",
        "dataSetName": "game",
        "operation": "remove",
        "kinesisSyncRecords": list(records),
        "lastModifiedDate": 1_740_418_624_343,
        "kinesisSyncRecordsURL": None,
        "payloadType": "Inline",
        "syncCount": 7,
    }


def test_a_change_reads_as_a_header_and_one_line_per_record() -> None:
    removed = {"key": "draft", "value": None, "syncCount": 7, "op": "remove"}
    assert change_text(change(removed)).plain == (
        "2025-02-24T17:37:04.343Z  identity us-east-1:5f6d8c2e-9a7b-4c1d-8e2f-1a2b3c4d5e6f  dataset game  "
        "syncCount 7  remove\n"
        "    remove draft"
    )


def test_long_values_are_cut_and_control_characters_escaped() -> None:
    assert shorten("x" * 60) == "x" * 60
    assert shorten("x" * 61) == "x" * 59 + "…"
    assert shorten("two\nlines\tand a bell\x07") == "two\\nlines\\tand a bell\\x07"
    assert shorten(None) == "(null)"


def test_times_are_iso_utc_with_milliseconds() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert iso_time(1_424_801_824_343) == "2015-02-24T18:17:04.343Z"


# --- docs/asyncapi.yaml ---------------------------------------------------------------------------------------------


def test_the_asyncapi_document_is_asyncapi_3_and_every_ref_resolves() -> None:
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    assert document["servers"]["kafka"]["variables"]["bootstrap"]["default"] == "127.0.0.1:9092"

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    for ref in refs(document):
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref


def outbox_entry(**extra: str) -> dict[str, str]:
    """An outbox entry's fields as update_records.lua writes them: `score` set, `draft` removed."""
    changes = [
        {"k": "score", "op": "replace", "sc": 5, "lm": 1_740_418_624_343, "d": 1_740_418_620_000, "v": "42"},
        {"k": "draft", "op": "remove", "sc": 5, "lm": 1_740_418_624_343},
    ]
    return {
        "topic": "cognito-changes",
        "pool": "us-east-1:0b4b6e8e-4f1a-4f83-9a45-3c1a9e1c2b7d",
        "identity": "us-east-1:5f6d8c2e-9a7b-4c1d-8e2f-1a2b3c4d5e6f",
        "dataset": "game",
        "sc": "5",
        "lm": "1740418624343",
        "records": orjson.dumps(changes).decode(),
        **extra,
    }


def test_a_record_syncsvc_produces_matches_the_documented_message() -> None:
    record = stream_record(12, "1740418624343-0", outbox_entry(), as_stored)

    schema_validator("CognitoStreamsRecord").validate(orjson.loads(record.value))
    schema_validator("ChangeKey").validate(record.key.decode())
    schema_validator("ChangeHeaders").validate({name: value.decode() for name, value in record.headers})
    (example,) = asyncapi()["components"]["messages"]["datasetChange"]["examples"]
    assert orjson.loads(record.value) == example["payload"]
    assert {name: value.decode() for name, value in record.headers} == example["headers"]


def test_a_bulk_published_record_matches_the_documented_payload() -> None:
    record = stream_record(3, "1740418624343-0", outbox_entry(bulk="1"), as_stored)

    schema_validator("CognitoStreamsRecord").validate(orjson.loads(record.value))


def test_the_documented_schema_refuses_what_syncsvc_never_sends() -> None:
    payload = schema_validator("CognitoStreamsRecord")
    good = change(
        {"key": "k", "value": None, "syncCount": 7, "lastModifiedDate": 1, "deviceLastModifiedDate": 1, "op": "remove"}
    )
    assert payload.is_valid(good)
    for broken in (
        {**good, "datasetName": "game"},  # Cognito's spelling is dataSetName
        {**good, "lastModifiedDate": "2025-02-24T17:37:04Z"},  # dates are epoch milliseconds
        {**good, "payloadType": "S3Url"},
        {**good, "kinesisSyncRecords": [{**good["kinesisSyncRecords"][0], "value": "left over"}]},  # remove: null
    ):
        assert not payload.is_valid(broken), broken


class Plaintext:
    """Opens nothing: these entries are built by hand, with plain names and values."""

    def open(self, dataset: str, key: str, value: str | None) -> str | None:
        return value

    def open_name(self, dataset: str, stored_key: str, sealed: str | None) -> str:
        return stored_key

    def open_records(self, dataset: str, records: Sequence[Record]) -> list[Record]:
        return list(records)

    def token(self, dataset: str, key: str) -> str:
        return key


as_stored = Plaintext()
