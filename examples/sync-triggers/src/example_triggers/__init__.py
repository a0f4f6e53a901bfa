"""Two example syncsvc triggers, registered by this package's entry points (see ``pyproject.toml``).

* ``example-profile`` → :func:`profile`, a **sync trigger** (``SetCognitoEvents`` ``{"SyncTrigger": …}``): it
  cleans and checks the ``profile`` dataset before anything is stored.
* ``example-merge-scores`` → :func:`merge_scores`, a **conflict handler** (``{"SyncConflict": …}``): when a device
  pushes a stale ``score…`` record, the higher score wins instead of the write being refused.

Both are plain functions of ``(event, context)``: call them directly in unit tests. They run inside the syncsvc
server, so they may import ``syncsvc.triggers`` (types and :class:`~syncsvc.triggers.Rejected`) without this
package depending on syncsvc. The full contract is in ``syncsvc/triggers/spec.py``.
"""

from __future__ import annotations

from syncsvc.triggers import LambdaContext, Rejected, SyncConflictEvent, SyncTriggerEvent

#: The dataset :func:`profile` looks after; writes to any other dataset pass through unchanged.
PROFILE_DATASET = "profile"
#: Longest nickname :func:`profile` accepts, after trimming.
MAX_NICKNAME = 32
#: The record :func:`profile` adds to every profile write, and its value.
UPDATED_BY_KEY = "updatedBy"
UPDATED_BY_VALUE = "trigger"
#: Keys :func:`merge_scores` resolves; it leaves every other conflicting key to the stored version.
SCORE_PREFIX = "score"


def profile(event: SyncTriggerEvent, context: LambdaContext) -> SyncTriggerEvent:
    """Sync trigger of the ``profile`` dataset: trims the nickname, refuses one that is too long, stamps the write.

    ``event["datasetRecords"]`` holds every record of the dataset: the written ones with the write's op and
    ``newValue``, the others with ``oldValue == newValue``. What this returns is what is stored and what the device
    gets back in UpdateRecords' ``Records``.
    """
    # 1. Only the profile dataset is ours: return any other write exactly as it came (it is stored as written).
    if event["datasetName"] != PROFILE_DATASET:
        return event
    records = event["datasetRecords"]

    # 2. Trim the nickname when this write changes it. Records the write leaves alone come with
    #    oldValue == newValue: skipping them means a nickname stored before this trigger was attached never blocks
    #    other writes. A removed nickname (op "remove", newValue null) needs no check either.
    nickname = records.get("nickname")
    if nickname is not None and nickname["newValue"] is not None and nickname["newValue"] != nickname.get("oldValue"):
        trimmed = nickname["newValue"].strip()
        # 3. Refuse a nickname that is still too long: raising Rejected writes nothing, and the device gets
        #    InvalidLambdaFunctionOutputException with this message.
        if len(trimmed) > MAX_NICKNAME:
            raise Rejected(f"nickname must be at most {MAX_NICKNAME} characters after trimming, not {len(trimmed)}")
        nickname["newValue"] = trimmed

    # 4. Add (or update) the updatedBy record. A key the device did not write is stored only if its value changes,
    #    so once it says "trigger", later writes leave it as it is.
    stamp = records.get(UPDATED_BY_KEY)
    if stamp is None:
        records[UPDATED_BY_KEY] = {"newValue": UPDATED_BY_VALUE, "op": "replace"}
    else:
        stamp["newValue"] = UPDATED_BY_VALUE
        stamp["op"] = "replace"

    # 5. Hand the event back: only datasetRecords may differ from what was given.
    return event


def merge_scores(event: SyncConflictEvent, context: LambdaContext) -> dict[str, str | None]:
    """Conflict handler: for a ``score…`` key, keeps the higher of the stored and the incoming integer values.

    It runs when a device pushes a record that another device changed since this one last pulled it. ``conflicts``
    maps each such key to its ``incoming`` version (what the device sent) and its ``stored`` one (null if the key
    was never written). The answer maps a key to the value to store; a key left out keeps the stored version, and
    the device's patch of it is dropped (left out of UpdateRecords' ``Records``; the device gets the stored value
    on its next pull).
    """
    resolved: dict[str, str | None] = {}
    for key, conflict in event["conflicts"].items():
        # 1. Other keys are not ours: leave them out, so the stored version stays.
        if not key.startswith(SCORE_PREFIX):
            continue
        # 2. Read both sides as integers. A removal, a missing record or a value that is not a whole number does not
        #    count as a score.
        incoming = conflict["incoming"]["value"]
        incoming_score = _score(incoming)
        stored = conflict["stored"]
        stored_score = None if stored is None else _score(stored["value"])
        # 3. The incoming score is higher (or the stored one is no score): store it. Otherwise leave the key out:
        #    the stored score stays as it is, without a new version (answering the stored value would write it
        #    again, with a new SyncCount, for nothing).
        if incoming_score is not None and (stored_score is None or incoming_score > stored_score):
            resolved[key] = incoming
    return resolved


def _score(value: str | None) -> int | None:
    """``value`` as an integer, or None when it is not one."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
