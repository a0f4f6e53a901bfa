"""An outbox entry as a Kafka record in the Cognito Streams format (reference §2.1). Pure: no I/O.

Key ``<identityPoolId>/<identityId>/<datasetName>`` (so one dataset's changes share a partition, in order); value the
Cognito Streams JSON, with epoch *milliseconds* and ``dataSetName`` spelled as Cognito spells it; headers
``syncsvc-change-id`` (``s<shard>-<outbox entry id>``, unique and stable across re-sends), ``content-type``, and
``traceparent`` when the write was traced (its request's W3C trace context: see ``syncsvc.tracing``).
Changes are always inline (``payloadType: Inline``): a dataset is at most a few MB and the topic is sized for it.
Values are encrypted at rest, in the outbox too; the stream carries them in plaintext, as Cognito Streams does
(consumers are trusted with the data: secure the topic with Kafka ACLs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from syncsvc.model import RecordOpener
from syncsvc.tracing import TRACEPARENT

CONTENT_TYPE = b"application/json"


@dataclass(frozen=True, slots=True)
class StreamRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def stream_record(shard: int, entry_id: str, fields: Mapping[str, str], cipher: RecordOpener) -> StreamRecord:
    """The Kafka record of one outbox entry (fields as update_records.lua or snapshot_dataset.lua write them).
    Names and values are stored sealed; the identity's ``cipher`` gives the plaintext the stream carries."""
    changes = orjson.loads(fields["records"])
    modified = int(fields["lm"])
    records = [_sync_record(fields["dataset"], change, cipher) for change in changes]
    # a bulk publish entry is a dataset's whole state: a "replace", even of a dataset whose records are all removed;
    # its records are given by key (the snapshot holds them in the order of the names as stored: tokens)
    bulk = fields.get("bulk") == "1"
    if bulk:
        records.sort(key=lambda record: str(record["key"]))
    operation = "replace" if bulk or any(change["op"] == "replace" for change in changes) else "remove"
    value: dict[str, Any] = {
        "identityPoolId": fields["pool"],
        "identityId": fields["identity"],
        "dataSetName": fields["dataset"],
        "operation": operation,
        "kinesisSyncRecords": records,
        "lastModifiedDate": modified,
        "kinesisSyncRecordsURL": None,
        "payloadType": "Inline",
        "syncCount": int(fields["sc"]),
    }
    headers = [("syncsvc-change-id", f"s{shard}-{entry_id}".encode()), ("content-type", CONTENT_TYPE)]
    if traced := fields.get("tp"):
        headers.append((TRACEPARENT, traced.encode()))
    return StreamRecord(
        topic=fields["topic"],
        key=f"{fields['pool']}/{fields['identity']}/{fields['dataset']}".encode(),
        value=orjson.dumps(value),
        headers=headers,
    )


def _sync_record(dataset: str, change: Mapping[str, Any], cipher: RecordOpener) -> dict[str, Any]:
    name = cipher.open_name(dataset, change["k"], change.get("nk"))
    return {
        "key": name,
        "value": cipher.open(dataset, name, change.get("v")),
        "syncCount": change["sc"],
        "lastModifiedDate": change["lm"],
        "deviceLastModifiedDate": change.get("d", change["lm"]),
        "op": change["op"],
    }
