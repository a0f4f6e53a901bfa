"""What a write came to, as the service answers it: update_records.lua's results as WriteResults and errors.

Shared by the plain write path (``service.py``) and the hooked one (``write_hooks.py``), so both answer a conflict, a
limit and a re-send in exactly the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from syncsvc.errors import LimitExceededError, RecordConflictError
from syncsvc.model import DatasetState, Record, RecordOpener, RecordPatch, WriteResult
from syncsvc.store.redis import UpdateOutcome, record_from_stored


def opened(dataset: str, record: Record, cipher: RecordOpener) -> Record:
    """``record`` as the store read it, with its name and value opened (built field by field: ``dataclasses.replace``
    costs several times more, and a full pull opens 1,024 records)."""
    name = cipher.open_name(dataset, record.key, record.sealed_name)
    return Record(
        name,
        cipher.open(dataset, name, record.value),
        record.sync_count,
        record.last_modified_ms,
        record.last_modified_by,
        record.device_last_modified_ms,
        record.version_vector,
    )


def result_of(
    dataset: str, outcome: UpdateOutcome, cipher: RecordOpener, patches: Sequence[RecordPatch]
) -> WriteResult:
    """The WriteResult of an "ok" or "duplicate" outcome; the error of a "conflict" or "limit" one. ``patches`` are
    the patches the script was given."""
    if outcome.status in ("ok", "duplicate"):
        return written(dataset, outcome.body, cipher, replayed=outcome.status == "duplicate")
    if outcome.status == "conflict":
        raise _conflict(dataset, outcome.body, cipher, patches)
    if outcome.status == "limit":
        raise limit_error(dataset, outcome.body)
    raise AssertionError(f"update_records.lua answered {outcome.status!r} to a write not planned on a snapshot")


def written(dataset: str, body: dict[str, Any], cipher: RecordOpener, *, replayed: bool) -> WriteResult:
    """The records an ok result wrote (their names and values opened), in the order they were written."""
    records = [
        opened(
            dataset,
            Record(
                key=stored["k"],
                value=stored.get("v"),
                sync_count=int(stored["sc"]),
                last_modified_ms=int(stored["lm"]),
                last_modified_by=stored["lb"],
                device_last_modified_ms=None if stored.get("d") is None else int(stored["d"]),
                version_vector={writer: int(counter) for writer, counter in stored["vv"].items()},
                sealed_name=stored.get("nk"),
            ),
            cipher,
        )
        for stored in body["records"]
    ]
    return WriteResult(records=records, sync_count=int(body["sc"]), replayed=replayed)


def record_conflict(
    stale: Sequence[tuple[str, int, Record | None]],
    *,
    sync_count: int,
    version_vector: dict[str, int],
    note: str = "",
) -> RecordConflictError:
    """ResourceConflictException for ``stale`` (each key with the SyncCount given for it and the record stored), in
    Cognito's words (``Current SyncCount for: <key> is: <n> not: <m>``), carrying the stored records and the
    dataset's state so the client can merge without another request."""
    key, given, stored = stale[0]
    message = f"Current SyncCount for: {key} is: {stored.sync_count if stored else 0} not: {given}"
    state = DatasetState(
        exists=True, sync_count=sync_count, purged_at=0, modified_by=None, version_vector=version_vector
    )
    return RecordConflictError(
        f"{message} ({note})" if note else message,
        records=[record for _, _, record in stale if record is not None],
        dataset=state,
    )


def _conflict(
    dataset: str, body: dict[str, Any], cipher: RecordOpener, patches: Sequence[RecordPatch]
) -> RecordConflictError:
    # Each stale record's name and the SyncCount given for it, from the patches by the name as stored: the script's
    # copy of a count went through a Lua number (a double, printed with 14 digits), which is not exact for the
    # largest counts a request may carry.
    by_stored_key = {cipher.token(dataset, patch.key): patch for patch in patches}
    stale = [
        (
            by_stored_key[item["k"]].key,
            by_stored_key[item["k"]].sync_count,
            opened(dataset, record_from_stored(item["k"], item["stored"]), cipher) if item["stored"] else None,
        )
        for item in body["conflicts"]
    ]
    version_vector = body["vv"] if isinstance(body["vv"], dict) else {}  # cjson encodes an empty table as []
    return record_conflict(stale, sync_count=int(body["sc"]), version_vector=version_vector)


def limit_error(dataset: str, body: dict[str, Any]) -> LimitExceededError:
    """LimitExceededException for a "limit" outcome's body."""
    which, limit, value = body["which"], int(body["limit"]), int(body["value"])
    if which == "datasets":
        return LimitExceededError(f"An identity may hold at most {limit} datasets; '{dataset}' would be one more")
    if which == "records":
        return LimitExceededError(f"Dataset '{dataset}' would hold {value} records; the limit is {limit}")
    return LimitExceededError(f"Dataset '{dataset}' would hold {value} bytes; the limit is {limit}")
