"""The events of a write, as pure functions: what a handler is given and what its answer means as patches.

* The **SyncTrigger** event (reference §2.2) holds every live record of the dataset; the written keys carry the
  write's op and values. :func:`planned_writes` reads the handler's answer back into the patches to commit.
* The **SyncConflict** event (a syncsvc extension, see ``spec.py``) holds the patches that are stale and the stored
  records they collide with; :func:`resolutions` reads the handler's answer, :func:`last_writer_wins` is the policy
  that needs no code, and :func:`resolved_patches` turns resolutions into patches based on the stored records.

No I/O here: ``syncsvc.write_hooks`` runs these around a snapshot of the dataset. Problems with an answer raise
:class:`~syncsvc.errors.InvalidLambdaFunctionOutputError` naming the problem, or
:class:`~syncsvc.errors.LimitExceededError` when a value or key is over its limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from syncsvc import vv
from syncsvc.errors import InvalidLambdaFunctionOutputError, LimitExceededError
from syncsvc.model import Limits, Op, Record, RecordPatch

SYNC_TRIGGER = "SyncTrigger"
SYNC_CONFLICT = "SyncConflict"
#: The SyncTrigger event's fields a handler must hand back unchanged.
FIXED_FIELDS = ("version", "eventType", "region", "identityPoolId", "identityId", "datasetName")


@dataclass(frozen=True, slots=True)
class EventSource:
    """Whose dataset an event is about."""

    region: str
    identity_pool_id: str
    identity_id: str
    dataset: str

    def header(self, version: int, event_type: str) -> dict[str, Any]:
        return {
            "version": version,
            "eventType": event_type,
            "region": self.region,
            "identityPoolId": self.identity_pool_id,
            "identityId": self.identity_id,
            "datasetName": self.dataset,
        }


def is_stale(patch: RecordPatch, stored: Record | None) -> bool:
    """update_records.lua's conflict rule: a version-vector context must descend from the stored vector; without one,
    the SyncCount must equal the stored record's (0 for a key never written)."""
    if patch.version_vector is not None:
        return not vv.descends(patch.version_vector, stored.version_vector if stored else {})
    return patch.sync_count != (stored.sync_count if stored else 0)


# --- SyncTrigger ----------------------------------------------------------------------------------------------------


def sync_trigger_event(
    source: EventSource, patches: Sequence[RecordPatch], records: Mapping[str, Record]
) -> dict[str, Any]:
    """The event for a write of ``patches`` onto ``records`` (the stored ones, tombstones included)."""
    dataset_records: dict[str, dict[str, Any]] = {
        key: {"oldValue": record.value, "newValue": record.value, "op": "replace"}
        for key, record in sorted(records.items())
        if record.value is not None
    }
    for patch in patches:
        stored = records.get(patch.key)
        dataset_records[patch.key] = {
            "oldValue": stored.value if stored else None,
            "newValue": patch.value if patch.op is Op.REPLACE else None,
            "op": patch.op.value,
        }
    return {**source.header(2, SYNC_TRIGGER), "datasetRecords": dataset_records}


def planned_writes(
    trigger: str,
    answer: Any,
    source: EventSource,
    patches: Sequence[RecordPatch],
    records: Mapping[str, Record],
    limits: Limits,
) -> list[RecordPatch]:
    """The patches a handler's ``answer`` to the SyncTrigger event of ``source`` asks for.

    A written key keeps its patch's SyncCount, vector and device time, with the op and value the answer gives; a
    written key the answer leaves out is not written. Any other key is written only when the answer changes it, based
    on the stored record. Written keys come first, in patch order, then the others in the answer's order."""
    answered = _answered_records(trigger, answer, source.header(2, SYNC_TRIGGER))
    by_key = {patch.key: patch for patch in patches}
    planned = [
        _answered_patch(trigger, patch.key, answered[patch.key], patch) for patch in patches if patch.key in answered
    ]
    for key, item in answered.items():
        if key in by_key:
            continue
        stored = records.get(key)
        patch = _answered_patch(
            trigger, key, item, RecordPatch(Op.REPLACE, key, None, stored.sync_count if stored else 0)
        )
        if patch.value != (stored.value if stored else None):
            planned.append(patch)
    for patch in planned:  # only what is written: a lowered limit never blocks writes over records kept as they are
        _check_limits(trigger, patch, limits)
    return planned


def _answered_records(trigger: str, answer: Any, header: Mapping[str, Any]) -> dict[str, Any]:
    """The answer's datasetRecords, once its other fields are checked against ``header`` (built afresh, as a handler
    may have changed the event it was given in place)."""
    if not isinstance(answer, dict):
        raise _output(trigger, f"returned {type(answer).__name__}, not the event")
    for field in FIXED_FIELDS:
        if field not in answer:
            raise _output(trigger, f"left out the event's '{field}'; return the event with only datasetRecords changed")
        if answer[field] != header[field] or type(answer[field]) is not type(header[field]):
            raise _output(trigger, f"changed the event's '{field}'; only datasetRecords may change")
    extra = sorted(str(field) for field in answer if field not in header and field != "datasetRecords")
    if extra:
        raise _output(trigger, f"added '{extra[0][:64]}' to the event; only datasetRecords may change")
    answered = answer.get("datasetRecords")
    if not isinstance(answered, dict):
        raise _output(trigger, f"returned datasetRecords as {type(answered).__name__}, not an object")
    return answered


def _answered_patch(trigger: str, key: Any, item: Any, base: RecordPatch) -> RecordPatch:
    """``base`` with the op and value of one answered record."""
    if not isinstance(key, str) or not key:
        raise _output(trigger, f"returned a record key {key!r}; keys are non-empty strings")
    where = f"record '{key[:100]}'"
    if not isinstance(item, dict):
        raise _output(trigger, f"returned {where} as {type(item).__name__}, not an object")
    op = item.get("op")
    if op not in ("replace", "remove"):
        raise _output(trigger, f"returned {where} with op {op!r}; it must be 'replace' or 'remove'")
    if op == "remove":
        return replace(base, op=Op.REMOVE, value=None)
    if "newValue" not in item:
        raise _output(trigger, f"returned {where} with op 'replace' but no newValue (null deletes the record)")
    value = item["newValue"]
    if value is None:
        return replace(base, op=Op.REMOVE, value=None)
    if not isinstance(value, str):
        raise _output(trigger, f"returned {where} with a newValue of type {type(value).__name__}, not a string")
    return replace(base, op=Op.REPLACE, value=value)


def _check_limits(trigger: str, patch: RecordPatch, limits: Limits) -> None:
    key = patch.key
    if len(key) > limits.max_key_length:
        raise LimitExceededError(
            f"Sync trigger '{trigger}' returned a key of {len(key)} characters; the limit is {limits.max_key_length}"
        )
    size = len(patch.value.encode()) if patch.value is not None else 0
    if size > limits.max_value_bytes:
        raise LimitExceededError(
            f"Sync trigger '{trigger}' returned record '{key[:100]}' of {size} bytes; "
            f"the limit is {limits.max_value_bytes}"
        )


# --- SyncConflict ---------------------------------------------------------------------------------------------------


def conflict_event(source: EventSource, stale: Sequence[RecordPatch], records: Mapping[str, Record]) -> dict[str, Any]:
    """The event for the stale ``patches``: each key's incoming patch and the stored record (null if none)."""
    conflicts = {}
    for patch in stale:
        stored = records.get(patch.key)
        conflicts[patch.key] = {
            "incoming": {
                "op": patch.op.value,
                "value": patch.value,
                "syncCount": patch.sync_count,
                "deviceLastModifiedDate": patch.device_last_modified_ms,
                "versionVector": None if patch.version_vector is None else dict(patch.version_vector),
            },
            "stored": None if stored is None else _stored_version(stored),
        }
    return {**source.header(1, SYNC_CONFLICT), "conflicts": conflicts}


def _stored_version(record: Record) -> dict[str, Any]:
    return {
        "value": record.value,
        "syncCount": record.sync_count,
        "lastModifiedDate": record.last_modified_ms,
        "lastModifiedBy": record.last_modified_by,
        "deviceLastModifiedDate": record.device_last_modified_ms,
        "versionVector": dict(record.version_vector),  # a copy: an inline handler may change what it is given
    }


def resolutions(handler: str, answer: Any, stale: Sequence[RecordPatch], limits: Limits) -> dict[str, str | None]:
    """A conflict handler's answer: conflicting key → the value to store (None deletes). Keys it leaves out keep
    the stored record."""
    if not isinstance(answer, dict):
        raise _output(handler, f"returned {type(answer).__name__}, not an object of key → value", conflict=True)
    keys = {patch.key for patch in stale}
    for key, value in answer.items():
        if key not in keys:
            raise _output(handler, f"resolved '{str(key)[:100]}', which is not in conflict", conflict=True)
        if value is not None and not isinstance(value, str):
            raise _output(
                handler, f"resolved '{key[:100]}' to a {type(value).__name__}, not a string or null", conflict=True
            )
        if value is not None and len(value.encode()) > limits.max_value_bytes:
            raise LimitExceededError(
                f"Conflict handler '{handler}' resolved '{key[:100]}' to {len(value.encode())} bytes; "
                f"the limit is {limits.max_value_bytes}"
            )
    return dict(answer)


def last_writer_wins(stale: Sequence[RecordPatch], records: Mapping[str, Record], now_ms: int) -> dict[str, str | None]:
    """The ``last-writer-wins`` policy: the incoming patch wins unless the stored record was modified later. Times
    are device times (DeviceLastModifiedDate) where given, else the server's (now for the incoming patch); a tie goes
    to the incoming patch, the later arrival."""
    won: dict[str, str | None] = {}
    for patch in stale:
        stored = records.get(patch.key)
        stored_ms = -1 if stored is None else _first(stored.device_last_modified_ms, stored.last_modified_ms)
        if _first(patch.device_last_modified_ms, now_ms) >= stored_ms:
            won[patch.key] = patch.value if patch.op is Op.REPLACE else None
    return won


def resolved_patches(
    patches: Sequence[RecordPatch], resolved: Mapping[str, str | None], records: Mapping[str, Record]
) -> list[RecordPatch]:
    """``patches`` with each stale one replaced by its resolution, based on the stored record (its SyncCount, and a
    vector merged with the stored one, so the write descends from both versions); a stale patch without a resolution
    is dropped."""
    planned = []
    for patch in patches:
        stored = records.get(patch.key)
        if not is_stale(patch, stored):
            planned.append(patch)
        elif patch.key in resolved:
            value = resolved[patch.key]
            planned.append(
                replace(
                    patch,
                    op=Op.REPLACE if value is not None else Op.REMOVE,
                    value=value,
                    sync_count=stored.sync_count if stored else 0,
                    version_vector=None
                    if patch.version_vector is None
                    else vv.merge(patch.version_vector, stored.version_vector if stored else {}),
                )
            )
    return planned


def _first(given: int | None, otherwise: int) -> int:
    return otherwise if given is None else given


def _output(name: str, problem: str, *, conflict: bool = False) -> InvalidLambdaFunctionOutputError:
    label = "Conflict handler" if conflict else "Sync trigger"
    return InvalidLambdaFunctionOutputError(f"{label} '{name}' {problem}")
