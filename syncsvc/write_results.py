"""What a write came to, as the service answers it: update_records.lua's results as WriteResults and errors.

Shared by the plain write path (``service.py``) and the hooked one (``write_hooks.py``), so both answer a conflict, a
limit and a re-send in exactly the same words.
"""

from __future__ import annotations

from collections.abc import Sequence

from syncsvc.errors import LimitExceededError, RecordConflictError
from syncsvc.model import DatasetState, Record, RecordOpener, RecordPatch, WriteResult
from syncsvc.store.results import Committed, Conflict, OverLimit, UpdateOutcome


def result_of(
    dataset: str, outcome: UpdateOutcome, cipher: RecordOpener, patches: Sequence[RecordPatch]
) -> WriteResult:
    """The WriteResult of a committed outcome; the error of a conflict or a limit. ``patches`` are the patches the
    script was given."""
    if isinstance(outcome, Committed):
        return written(dataset, outcome, cipher)
    if isinstance(outcome, Conflict):
        raise _conflict(dataset, outcome, cipher, patches)
    if isinstance(outcome, OverLimit):
        raise limit_error(dataset, outcome)
    raise AssertionError(f"update_records.lua answered {outcome!r} to a write not planned on a snapshot")


def written(dataset: str, committed: Committed, cipher: RecordOpener) -> WriteResult:
    """The records a committed write wrote (their names and values opened), in the order they were written."""
    records = cipher.open_records(dataset, committed.records)
    return WriteResult(records=records, sync_count=committed.sync_count, replayed=committed.replayed)


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
    dataset: str, conflict: Conflict, cipher: RecordOpener, patches: Sequence[RecordPatch]
) -> RecordConflictError:
    # Each stale record's name and the SyncCount given for it, from the patches by the name as stored: the script's
    # copy of a count went through a Lua number (a double, printed with 14 digits), which is not exact for the
    # largest counts a request may carry.
    by_stored_key = {cipher.token(dataset, patch.key): patch for patch in patches}
    stale = [
        (
            by_stored_key[item.key].key,
            by_stored_key[item.key].sync_count,
            None if item.stored is None else cipher.open_records(dataset, [item.stored])[0],
        )
        for item in conflict.records
    ]
    return record_conflict(stale, sync_count=conflict.sync_count, version_vector=conflict.version_vector)


def limit_error(dataset: str, over: OverLimit) -> LimitExceededError:
    """LimitExceededException for a write that would go past ``over``."""
    if over.which == "datasets":
        return LimitExceededError(f"An identity may hold at most {over.limit} datasets; '{dataset}' would be one more")
    if over.which == "records":
        return LimitExceededError(f"Dataset '{dataset}' would hold {over.value} records; the limit is {over.limit}")
    return LimitExceededError(f"Dataset '{dataset}' would hold {over.value} bytes; the limit is {over.limit}")
