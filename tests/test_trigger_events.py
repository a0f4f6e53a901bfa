"""The events of a write as pure functions (``syncsvc.triggers.events``): no server, no Redis.

The SyncTrigger event a handler sees (reference §2.2), how its answer becomes record patches, the SyncConflict
event, the ``last-writer-wins`` policy and how resolutions become patches.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncsvc.errors import InvalidLambdaFunctionOutputError, LimitExceededError
from syncsvc.model import Limits, Op, Record, RecordPatch
from syncsvc.triggers import events
from syncsvc.triggers.events import EventSource

TRIGGER = "validate"
HANDLER = "merge"
SOURCE = EventSource("us-east-1", "us-east-1:pool-0001", "us-east-1:identity-0001", "settings")
LIMITS = Limits(max_datasets=20, max_records=1024, max_bytes=1_048_576, max_value_bytes=64, max_key_length=16)
HEADER: dict[str, Any] = {
    "version": 2,
    "eventType": "SyncTrigger",
    "region": "us-east-1",
    "identityPoolId": "us-east-1:pool-0001",
    "identityId": "us-east-1:identity-0001",
    "datasetName": "settings",
}
CONFLICT_HEADER: dict[str, Any] = {**HEADER, "version": 1, "eventType": "SyncConflict"}


def record(
    key: str,
    value: str | None,
    sync_count: int = 1,
    *,
    last_modified_ms: int = 1_000,
    device_ms: int | None = None,
    vector: dict[str, int] | None = None,
) -> Record:
    return Record(
        key=key,
        value=value,
        sync_count=sync_count,
        last_modified_ms=last_modified_ms,
        last_modified_by="device-a",
        device_last_modified_ms=device_ms,
        version_vector={} if vector is None else vector,
    )


def stored(*items: Record) -> dict[str, Record]:
    return {item.key: item for item in items}


def put(
    key: str, value: str, sync_count: int = 0, *, device_ms: int | None = None, vector: dict[str, int] | None = None
) -> RecordPatch:
    return RecordPatch(Op.REPLACE, key, value, sync_count, device_ms, vector)


def delete(
    key: str, sync_count: int = 0, *, device_ms: int | None = None, vector: dict[str, int] | None = None
) -> RecordPatch:
    return RecordPatch(Op.REMOVE, key, None, sync_count, device_ms, vector)


def answer_with(records: dict[str, Any]) -> dict[str, Any]:
    """A handler's answer: the event's header with ``records`` as datasetRecords."""
    return {**HEADER, "datasetRecords": records}


def plan(
    answer: Any,
    patches: list[RecordPatch] | None = None,
    records: dict[str, Record] | None = None,
    limits: Limits = LIMITS,
) -> list[RecordPatch]:
    return events.planned_writes(TRIGGER, answer, SOURCE, patches or [], records or {}, limits)


def unchanged(patches: list[RecordPatch], records: dict[str, Record]) -> dict[str, Any]:
    """The answer of a handler that returns (a copy of) the event it was given."""
    return copy.deepcopy(events.sync_trigger_event(SOURCE, patches, records))


def plan_error(answer: Any, patches: list[RecordPatch] | None = None, records: dict[str, Record] | None = None) -> str:
    with pytest.raises(InvalidLambdaFunctionOutputError) as raised:
        plan(answer, patches, records)
    return raised.value.message


def plan_limit_error(
    answer: Any, patches: list[RecordPatch] | None = None, records: dict[str, Record] | None = None
) -> str:
    with pytest.raises(LimitExceededError) as raised:
        plan(answer, patches, records)
    return raised.value.message


# --- is_stale -------------------------------------------------------------------------------------------------------


def test_is_stale_new_key_with_sync_count_zero_is_not_stale() -> None:
    assert events.is_stale(put("theme", "dark", 0), None) is False


def test_is_stale_new_key_with_nonzero_sync_count_is_stale() -> None:
    assert events.is_stale(put("theme", "dark", 1), None) is True


def test_is_stale_sync_count_equal_to_stored_is_not_stale() -> None:
    assert events.is_stale(put("theme", "dark", 5), record("theme", "light", 5)) is False


def test_is_stale_sync_count_below_stored_is_stale() -> None:
    assert events.is_stale(put("theme", "dark", 4), record("theme", "light", 5)) is True


def test_is_stale_sync_count_above_stored_is_stale() -> None:
    assert events.is_stale(put("theme", "dark", 6), record("theme", "light", 5)) is True


def test_is_stale_against_a_tombstone_uses_the_tombstone_sync_count() -> None:
    tombstone = record("theme", None, 7)
    assert (
        events.is_stale(put("theme", "dark", 7), tombstone),
        events.is_stale(put("theme", "dark", 0), tombstone),
    ) == (False, True)


def test_is_stale_vector_equal_to_stored_is_not_stale() -> None:
    patch = put("theme", "dark", 0, vector={"a": 2, "b": 1})
    assert events.is_stale(patch, record("theme", "light", 5, vector={"a": 2, "b": 1})) is False


def test_is_stale_vector_descending_from_stored_is_not_stale_whatever_its_sync_count() -> None:
    patch = put("theme", "dark", 99, vector={"a": 3, "b": 1})
    assert events.is_stale(patch, record("theme", "light", 5, vector={"a": 2})) is False


def test_is_stale_vector_concurrent_with_stored_is_stale_even_with_matching_sync_count() -> None:
    patch = put("theme", "dark", 5, vector={"a": 3})
    assert events.is_stale(patch, record("theme", "light", 5, vector={"a": 2, "b": 1})) is True


def test_is_stale_vector_behind_stored_is_stale() -> None:
    patch = put("theme", "dark", 5, vector={"a": 1})
    assert events.is_stale(patch, record("theme", "light", 5, vector={"a": 2})) is True


def test_is_stale_vector_on_a_new_key_is_not_stale() -> None:
    assert events.is_stale(put("theme", "dark", 3, vector={"a": 1}), None) is False


def test_is_stale_empty_vector_against_a_tombstone_with_history_is_stale() -> None:
    assert events.is_stale(put("theme", "dark", 0, vector={}), record("theme", None, 2, vector={"a": 2})) is True


# --- sync_trigger_event ---------------------------------------------------------------------------------------------


def test_sync_trigger_event_header_fields() -> None:
    event = events.sync_trigger_event(SOURCE, [], {})
    assert event == {**HEADER, "datasetRecords": {}}


def test_sync_trigger_event_shows_every_live_record_unchanged() -> None:
    records = stored(record("theme", "dark", 3), record("lang", "en", 1))
    assert events.sync_trigger_event(SOURCE, [put("font", "mono")], records) == {
        **HEADER,
        "datasetRecords": {
            "lang": {"oldValue": "en", "newValue": "en", "op": "replace"},
            "theme": {"oldValue": "dark", "newValue": "dark", "op": "replace"},
            "font": {"oldValue": None, "newValue": "mono", "op": "replace"},
        },
    }


def test_sync_trigger_event_leaves_out_tombstones_of_unwritten_keys() -> None:
    records = stored(record("theme", "dark", 3), record("gone", None, 2))
    assert events.sync_trigger_event(SOURCE, [], records) == {
        **HEADER,
        "datasetRecords": {"theme": {"oldValue": "dark", "newValue": "dark", "op": "replace"}},
    }


def test_sync_trigger_event_replace_of_a_live_key_carries_old_and_new_value() -> None:
    records = stored(record("theme", "dark", 3))
    assert events.sync_trigger_event(SOURCE, [put("theme", "light", 3)], records) == {
        **HEADER,
        "datasetRecords": {"theme": {"oldValue": "dark", "newValue": "light", "op": "replace"}},
    }


def test_sync_trigger_event_new_key_has_null_old_value() -> None:
    assert events.sync_trigger_event(SOURCE, [put("theme", "light")], {}) == {
        **HEADER,
        "datasetRecords": {"theme": {"oldValue": None, "newValue": "light", "op": "replace"}},
    }


def test_sync_trigger_event_write_onto_a_tombstone_has_null_old_value() -> None:
    records = stored(record("theme", None, 4))
    assert events.sync_trigger_event(SOURCE, [put("theme", "light", 4)], records) == {
        **HEADER,
        "datasetRecords": {"theme": {"oldValue": None, "newValue": "light", "op": "replace"}},
    }


def test_sync_trigger_event_remove_has_null_new_value_and_op_remove() -> None:
    records = stored(record("theme", "dark", 3))
    assert events.sync_trigger_event(SOURCE, [delete("theme", 3)], records) == {
        **HEADER,
        "datasetRecords": {"theme": {"oldValue": "dark", "newValue": None, "op": "remove"}},
    }


def test_sync_trigger_event_key_order_is_live_records_sorted_then_new_keys_in_patch_order() -> None:
    records = stored(record("m", "1"), record("c", "2"), record("x", "3"), record("a", None))
    patches = [put("z", "new"), put("m", "changed", 1), put("b", "new"), put("a", "revived", 1)]
    assert list(events.sync_trigger_event(SOURCE, patches, records)["datasetRecords"]) == ["c", "m", "x", "z", "b", "a"]


# --- planned_writes: answers that are fine --------------------------------------------------------------------------


def test_planned_writes_unchanged_answer_plans_exactly_the_written_patches() -> None:
    records = stored(record("theme", "dark", 3, vector={"a": 3}), record("lang", "en", 1), record("old", None, 2))
    patches = [
        put("theme", "light", 3, device_ms=1_700_000_000_000, vector={"a": 3, "b": 1}),
        delete("lang", 1, device_ms=1_700_000_000_001),
        put("font", "mono", 0, device_ms=1_700_000_000_002),
    ]
    assert plan(unchanged(patches, records), patches, records) == patches


def test_planned_writes_modified_value_of_a_written_key_keeps_its_patch_fields() -> None:
    patch = put("theme", "light", 3, device_ms=1_700_000_000_000, vector={"a": 3})
    answer = answer_with({"theme": {"oldValue": "dark", "newValue": "LIGHT", "op": "replace"}})
    assert plan(answer, [patch], stored(record("theme", "dark", 3))) == [
        RecordPatch(Op.REPLACE, "theme", "LIGHT", 3, 1_700_000_000_000, {"a": 3})
    ]


def test_planned_writes_op_remove_deletes_a_written_key() -> None:
    patch = put("theme", "light", 3, device_ms=1_700_000_000_000, vector={"a": 3})
    answer = answer_with({"theme": {"oldValue": "dark", "newValue": "light", "op": "remove"}})
    assert plan(answer, [patch], stored(record("theme", "dark", 3))) == [
        RecordPatch(Op.REMOVE, "theme", None, 3, 1_700_000_000_000, {"a": 3})
    ]


def test_planned_writes_null_new_value_deletes_a_written_key() -> None:
    patch = put("theme", "light", 3, device_ms=1_700_000_000_000)
    answer = answer_with({"theme": {"oldValue": "dark", "newValue": None, "op": "replace"}})
    assert plan(answer, [patch], stored(record("theme", "dark", 3))) == [
        RecordPatch(Op.REMOVE, "theme", None, 3, 1_700_000_000_000, None)
    ]


def test_planned_writes_written_remove_turned_into_a_replace() -> None:
    patch = delete("theme", 3, device_ms=1_700_000_000_000)
    answer = answer_with({"theme": {"oldValue": "dark", "newValue": "kept", "op": "replace"}})
    assert plan(answer, [patch], stored(record("theme", "dark", 3))) == [
        RecordPatch(Op.REPLACE, "theme", "kept", 3, 1_700_000_000_000, None)
    ]


def test_planned_writes_written_key_answered_with_its_stored_value_is_still_written() -> None:
    patch = put("theme", "light", 3)
    answer = answer_with({"theme": {"oldValue": "dark", "newValue": "dark", "op": "replace"}})
    assert plan(answer, [patch], stored(record("theme", "dark", 3))) == [RecordPatch(Op.REPLACE, "theme", "dark", 3)]


def test_planned_writes_added_key_is_based_on_sync_count_zero() -> None:
    answer = answer_with(
        {
            "theme": {"oldValue": "dark", "newValue": "light", "op": "replace"},
            "font": {"newValue": "mono", "op": "replace"},
        }
    )
    assert plan(answer, [put("theme", "light", 3)], stored(record("theme", "dark", 3))) == [
        RecordPatch(Op.REPLACE, "theme", "light", 3),
        RecordPatch(Op.REPLACE, "font", "mono", 0),
    ]


def test_planned_writes_added_key_over_a_tombstone_is_based_on_the_tombstone_sync_count() -> None:
    answer = answer_with({"font": {"newValue": "mono", "op": "replace"}})
    assert plan(answer, [], stored(record("font", None, 6))) == [RecordPatch(Op.REPLACE, "font", "mono", 6)]


def test_planned_writes_changed_unwritten_key_is_based_on_its_stored_sync_count() -> None:
    records = stored(record("theme", "dark", 3), record("lang", "en", 8))
    answer = unchanged([put("theme", "light", 3)], records)
    answer["datasetRecords"]["lang"]["newValue"] = "fr"
    assert plan(answer, [put("theme", "light", 3)], records) == [
        RecordPatch(Op.REPLACE, "theme", "light", 3),
        RecordPatch(Op.REPLACE, "lang", "fr", 8),
    ]


def test_planned_writes_unwritten_key_removed_with_op_remove_is_deleted_based_on_its_sync_count() -> None:
    answer = answer_with({"lang": {"oldValue": "en", "newValue": "en", "op": "remove"}})
    assert plan(answer, [], stored(record("lang", "en", 8))) == [RecordPatch(Op.REMOVE, "lang", None, 8)]


def test_planned_writes_unwritten_key_removed_with_null_new_value_is_deleted_based_on_its_sync_count() -> None:
    answer = answer_with({"lang": {"oldValue": "en", "newValue": None, "op": "replace"}})
    assert plan(answer, [], stored(record("lang", "en", 8))) == [RecordPatch(Op.REMOVE, "lang", None, 8)]


def test_planned_writes_unwritten_record_answered_unchanged_is_not_written() -> None:
    answer = answer_with({"lang": {"oldValue": "en", "newValue": "en", "op": "replace"}})
    assert plan(answer, [], stored(record("lang", "en", 8))) == []


def test_planned_writes_removing_an_absent_key_writes_nothing() -> None:
    assert plan(answer_with({"ghost": {"newValue": None, "op": "remove"}}), [], {}) == []


def test_planned_writes_removing_a_tombstoned_unwritten_key_writes_nothing() -> None:
    assert plan(answer_with({"gone": {"newValue": None, "op": "remove"}}), [], stored(record("gone", None, 4))) == []


def test_planned_writes_unwritten_records_left_out_of_the_answer_are_not_written() -> None:
    records = stored(record("theme", "dark", 3), record("lang", "en", 8))
    answer = answer_with({"theme": {"oldValue": "dark", "newValue": "light", "op": "replace"}})
    assert plan(answer, [put("theme", "light", 3)], records) == [RecordPatch(Op.REPLACE, "theme", "light", 3)]


def test_planned_writes_skips_a_written_key_the_answer_leaves_out() -> None:
    # events.py docstring: "a written key the answer leaves out is not written". Fails today: planned_writes reads
    # answered[patch.key] and raises KeyError (should be answered.get(patch.key)).
    records = stored(record("theme", "dark", 3))
    patches = [put("theme", "light", 3), put("font", "mono", 0)]
    answer = answer_with({"font": {"oldValue": None, "newValue": "mono", "op": "replace"}})
    assert plan(answer, patches, records) == [RecordPatch(Op.REPLACE, "font", "mono", 0)]


def test_planned_writes_answer_with_empty_dataset_records_writes_nothing() -> None:
    # Same defect as above: every written key is left out.
    records = stored(record("theme", "dark", 3))
    assert plan(answer_with({}), [put("theme", "light", 3)], records) == []


def test_planned_writes_order_is_written_keys_in_patch_order_then_others_in_answer_order() -> None:
    records = stored(record("a", "1", 1), record("b", "2", 2), record("c", "3", 3))
    patches = [put("c", "three", 3), put("new", "n"), put("a", "one", 1)]
    answer = answer_with(
        {
            "zz": {"newValue": "added", "op": "replace"},
            "a": {"oldValue": "1", "newValue": "one", "op": "replace"},
            "b": {"oldValue": "2", "newValue": "two", "op": "replace"},
            "new": {"oldValue": None, "newValue": "n", "op": "replace"},
            "c": {"oldValue": "3", "newValue": "three", "op": "replace"},
            "aa": {"newValue": "added too", "op": "replace"},
        }
    )
    assert plan(answer, patches, records) == [
        RecordPatch(Op.REPLACE, "c", "three", 3),
        RecordPatch(Op.REPLACE, "new", "n", 0),
        RecordPatch(Op.REPLACE, "a", "one", 1),
        RecordPatch(Op.REPLACE, "zz", "added", 0),
        RecordPatch(Op.REPLACE, "b", "two", 2),
        RecordPatch(Op.REPLACE, "aa", "added too", 0),
    ]


def test_planned_writes_handler_mutating_the_event_in_place_and_returning_it() -> None:
    records = stored(record("theme", "dark", 3), record("lang", "en", 8))
    patches = [put("theme", "light", 3, device_ms=1_700_000_000_000)]
    event = events.sync_trigger_event(SOURCE, patches, records)

    def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
        event["datasetRecords"]["theme"]["newValue"] = "light-adjusted"
        event["datasetRecords"]["lang"]["op"] = "remove"
        event["datasetRecords"]["font"] = {"newValue": "mono", "op": "replace"}
        return event

    assert plan(handler(event, None), patches, records) == [
        RecordPatch(Op.REPLACE, "theme", "light-adjusted", 3, 1_700_000_000_000),
        RecordPatch(Op.REMOVE, "lang", None, 8),
        RecordPatch(Op.REPLACE, "font", "mono", 0),
    ]


def test_planned_writes_answer_round_tripped_through_json_is_read_back() -> None:
    records = stored(record("theme", "dark", 3))
    patches = [put("theme", "light", 3), delete("old", 0)]
    answer = json.loads(json.dumps(events.sync_trigger_event(SOURCE, patches, records)))
    assert plan(answer, patches, records) == patches


def test_planned_writes_value_exactly_at_the_byte_limit_is_accepted() -> None:
    value = "é" * 32  # 64 bytes in UTF-8
    assert plan(answer_with({"theme": {"newValue": value, "op": "replace"}})) == [
        RecordPatch(Op.REPLACE, "theme", value, 0)
    ]


def test_planned_writes_key_exactly_at_the_length_limit_is_accepted() -> None:
    key = "k" * 16
    assert plan(answer_with({key: {"newValue": "v", "op": "replace"}})) == [RecordPatch(Op.REPLACE, key, "v", 0)]


# --- planned_writes: shape errors -----------------------------------------------------------------------------------


def test_planned_writes_answer_not_a_dict() -> None:
    assert plan_error([HEADER]) == "Sync trigger 'validate' returned list, not the event"


def test_planned_writes_answer_none() -> None:
    assert plan_error(None) == "Sync trigger 'validate' returned NoneType, not the event"


def test_planned_writes_answer_missing_a_fixed_field() -> None:
    answer = answer_with({})
    del answer["region"]
    assert plan_error(answer) == (
        "Sync trigger 'validate' left out the event's 'region'; return the event with only datasetRecords changed"
    )


def test_planned_writes_answer_changing_identity_id() -> None:
    answer = {**answer_with({}), "identityId": "us-east-1:someone-else"}
    assert (
        plan_error(answer) == "Sync trigger 'validate' changed the event's 'identityId'; only datasetRecords may change"
    )


def test_planned_writes_answer_changing_version() -> None:
    answer = {**answer_with({}), "version": "2"}
    assert plan_error(answer) == "Sync trigger 'validate' changed the event's 'version'; only datasetRecords may change"


def test_planned_writes_answer_changing_dataset_name() -> None:
    answer = {**answer_with({}), "datasetName": "other"}
    assert plan_error(answer) == (
        "Sync trigger 'validate' changed the event's 'datasetName'; only datasetRecords may change"
    )


def test_planned_writes_answer_adding_top_level_fields_names_the_first_in_sorted_order() -> None:
    answer = {**answer_with({}), "zeta": 1, "alpha": 2}
    assert plan_error(answer) == "Sync trigger 'validate' added 'alpha' to the event; only datasetRecords may change"


def test_planned_writes_answer_without_dataset_records() -> None:
    assert plan_error(dict(HEADER)) == "Sync trigger 'validate' returned datasetRecords as NoneType, not an object"


def test_planned_writes_dataset_records_not_an_object() -> None:
    assert plan_error(answer_with([])) == "Sync trigger 'validate' returned datasetRecords as list, not an object"  # type: ignore[arg-type]


def test_planned_writes_record_not_an_object() -> None:
    assert plan_error(answer_with({"theme": "light"})) == (
        "Sync trigger 'validate' returned record 'theme' as str, not an object"
    )


def test_planned_writes_record_message_truncates_the_key_to_100_characters() -> None:
    key = "k" * 150
    limits = replace(LIMITS, max_key_length=1024)
    with pytest.raises(InvalidLambdaFunctionOutputError) as raised:
        plan(answer_with({key: ["light"]}), limits=limits)
    assert raised.value.message == f"Sync trigger 'validate' returned record '{'k' * 100}' as list, not an object"


def test_planned_writes_record_with_a_bad_op() -> None:
    answer = answer_with({"theme": {"newValue": "light", "op": "update"}})
    assert plan_error(answer) == (
        "Sync trigger 'validate' returned record 'theme' with op 'update'; it must be 'replace' or 'remove'"
    )


def test_planned_writes_record_without_an_op() -> None:
    answer = answer_with({"theme": {"newValue": "light"}})
    assert plan_error(answer) == (
        "Sync trigger 'validate' returned record 'theme' with op None; it must be 'replace' or 'remove'"
    )


def test_planned_writes_record_with_a_bad_op_on_a_written_key() -> None:
    records = stored(record("theme", "dark", 3))
    answer = answer_with({"theme": {"oldValue": "dark", "newValue": "light", "op": "REPLACE"}})
    assert plan_error(answer, [put("theme", "light", 3)], records) == (
        "Sync trigger 'validate' returned record 'theme' with op 'REPLACE'; it must be 'replace' or 'remove'"
    )


def test_planned_writes_new_value_of_a_wrong_type() -> None:
    answer = answer_with({"count": {"newValue": 42, "op": "replace"}})
    assert plan_error(answer) == (
        "Sync trigger 'validate' returned record 'count' with a newValue of type int, not a string"
    )


def test_planned_writes_new_value_that_is_an_object() -> None:
    answer = answer_with({"prefs": {"newValue": {"a": 1}, "op": "replace"}})
    assert plan_error(answer) == (
        "Sync trigger 'validate' returned record 'prefs' with a newValue of type dict, not a string"
    )


def test_planned_writes_empty_key() -> None:
    answer = answer_with({"": {"newValue": "light", "op": "replace"}})
    assert plan_error(answer) == "Sync trigger 'validate' returned a record key ''; keys are non-empty strings"


def test_planned_writes_non_string_key() -> None:
    answer = {**HEADER, "datasetRecords": {7: {"newValue": "light", "op": "replace"}}}
    assert plan_error(answer) == "Sync trigger 'validate' returned a record key 7; keys are non-empty strings"


def test_planned_writes_key_longer_than_the_limit() -> None:
    answer = answer_with({"k" * 17: {"newValue": "light", "op": "replace"}})
    assert plan_limit_error(answer) == "Sync trigger 'validate' returned a key of 17 characters; the limit is 16"


def test_planned_writes_value_over_the_byte_limit() -> None:
    answer = answer_with({"theme": {"newValue": "x" * 65, "op": "replace"}})
    assert plan_limit_error(answer) == "Sync trigger 'validate' returned record 'theme' of 65 bytes; the limit is 64"


def test_planned_writes_value_limit_counts_utf8_bytes_not_characters() -> None:
    answer = answer_with({"theme": {"newValue": "é" * 33, "op": "replace"}})
    assert plan_limit_error(answer) == "Sync trigger 'validate' returned record 'theme' of 66 bytes; the limit is 64"


def test_planned_writes_value_over_the_limit_on_a_written_key() -> None:
    records = stored(record("theme", "dark", 3))
    answer = answer_with({"theme": {"oldValue": "dark", "newValue": "x" * 100, "op": "replace"}})
    assert plan_limit_error(answer, [put("theme", "light", 3)], records) == (
        "Sync trigger 'validate' returned record 'theme' of 100 bytes; the limit is 64"
    )


# --- conflict_event -------------------------------------------------------------------------------------------------


def test_conflict_event_carries_incoming_and_stored_versions() -> None:
    records = stored(
        record("theme", "dark", 5, last_modified_ms=1_700_000_000_500, device_ms=1_700_000_000_400, vector={"a": 5})
    )
    patch = put("theme", "light", 4, device_ms=1_700_000_000_300, vector={"b": 1})
    assert events.conflict_event(SOURCE, [patch], records) == {
        **CONFLICT_HEADER,
        "conflicts": {
            "theme": {
                "incoming": {
                    "op": "replace",
                    "value": "light",
                    "syncCount": 4,
                    "deviceLastModifiedDate": 1_700_000_000_300,
                    "versionVector": {"b": 1},
                },
                "stored": {
                    "value": "dark",
                    "syncCount": 5,
                    "lastModifiedDate": 1_700_000_000_500,
                    "lastModifiedBy": "device-a",
                    "deviceLastModifiedDate": 1_700_000_000_400,
                    "versionVector": {"a": 5},
                },
            }
        },
    }


def test_conflict_event_stored_is_null_when_there_is_no_record() -> None:
    assert events.conflict_event(SOURCE, [delete("ghost", 2)], {}) == {
        **CONFLICT_HEADER,
        "conflicts": {
            "ghost": {
                "incoming": {
                    "op": "remove",
                    "value": None,
                    "syncCount": 2,
                    "deviceLastModifiedDate": None,
                    "versionVector": None,
                },
                "stored": None,
            }
        },
    }


def test_conflict_event_stored_tombstone_has_null_value() -> None:
    records = stored(record("theme", None, 6, last_modified_ms=2_000))
    event = events.conflict_event(SOURCE, [put("theme", "light", 5)], records)
    assert event["conflicts"]["theme"]["stored"] == {
        "value": None,
        "syncCount": 6,
        "lastModifiedDate": 2_000,
        "lastModifiedBy": "device-a",
        "deviceLastModifiedDate": None,
        "versionVector": {},
    }


def test_conflict_event_lists_only_the_stale_patches_in_their_order() -> None:
    records = stored(record("a", "1", 3), record("b", "2", 3), record("c", "3", 3))
    event = events.conflict_event(SOURCE, [put("c", "x", 1), put("a", "y", 1)], records)
    assert list(event["conflicts"]) == ["c", "a"]


# --- resolutions ----------------------------------------------------------------------------------------------------


def resolution_error(answer: Any, stale: list[RecordPatch]) -> str:
    with pytest.raises(InvalidLambdaFunctionOutputError) as raised:
        events.resolutions(HANDLER, answer, stale, LIMITS)
    return raised.value.message


def test_resolutions_valid_answer_is_returned_as_a_new_dict() -> None:
    answer: dict[str, str | None] = {"theme": "merged", "lang": None}
    result = events.resolutions(
        HANDLER, answer, [put("theme", "light", 1), delete("lang", 1), put("x", "y", 1)], LIMITS
    )
    assert (result, result is answer) == ({"theme": "merged", "lang": None}, False)


def test_resolutions_empty_answer_resolves_nothing() -> None:
    assert events.resolutions(HANDLER, {}, [put("theme", "light", 1)], LIMITS) == {}


def test_resolutions_key_not_in_conflict() -> None:
    assert resolution_error({"other": "x"}, [put("theme", "light", 1)]) == (
        "Conflict handler 'merge' resolved 'other', which is not in conflict"
    )


def test_resolutions_non_string_key_is_not_in_conflict() -> None:
    assert resolution_error({3: "x"}, [put("theme", "light", 1)]) == (
        "Conflict handler 'merge' resolved '3', which is not in conflict"
    )


def test_resolutions_non_string_value() -> None:
    assert resolution_error({"theme": 3}, [put("theme", "light", 1)]) == (
        "Conflict handler 'merge' resolved 'theme' to a int, not a string or null"
    )


def test_resolutions_answer_not_a_dict() -> None:
    assert resolution_error(["theme"], [put("theme", "light", 1)]) == (
        "Conflict handler 'merge' returned list, not an object of key → value"
    )


def test_resolutions_answer_none() -> None:
    assert resolution_error(None, [put("theme", "light", 1)]) == (
        "Conflict handler 'merge' returned NoneType, not an object of key → value"
    )


def test_resolutions_value_over_the_limit() -> None:
    with pytest.raises(LimitExceededError) as raised:
        events.resolutions(HANDLER, {"theme": "é" * 33}, [put("theme", "light", 1)], LIMITS)
    assert raised.value.message == "Conflict handler 'merge' resolved 'theme' to 66 bytes; the limit is 64"


def test_resolutions_value_exactly_at_the_limit_is_accepted() -> None:
    assert events.resolutions(HANDLER, {"theme": "x" * 64}, [put("theme", "light", 1)], LIMITS) == {"theme": "x" * 64}


# --- last_writer_wins -----------------------------------------------------------------------------------------------

NOW = 1_700_000_100_000


def test_last_writer_wins_incoming_with_a_later_device_time_wins() -> None:
    records = stored(record("theme", "dark", 5, last_modified_ms=NOW - 10, device_ms=1_000))
    assert events.last_writer_wins([put("theme", "light", 4, device_ms=2_000)], records, NOW) == {"theme": "light"}


def test_last_writer_wins_stored_with_a_later_device_time_is_kept() -> None:
    records = stored(record("theme", "dark", 5, last_modified_ms=1_000, device_ms=3_000))
    assert events.last_writer_wins([put("theme", "light", 4, device_ms=2_000)], records, NOW) == {}


def test_last_writer_wins_stored_without_device_time_uses_its_server_time() -> None:
    records = stored(record("theme", "dark", 5, last_modified_ms=3_000, device_ms=None))
    assert (
        events.last_writer_wins([put("theme", "light", 4, device_ms=2_000)], records, NOW),
        events.last_writer_wins([put("theme", "light", 4, device_ms=4_000)], records, NOW),
    ) == ({}, {"theme": "light"})


def test_last_writer_wins_incoming_without_device_time_uses_now() -> None:
    records = stored(record("theme", "dark", 5, last_modified_ms=1_000, device_ms=NOW + 1))
    assert (
        events.last_writer_wins([put("theme", "light", 4)], records, NOW),
        events.last_writer_wins([put("theme", "light", 4)], records, NOW + 1),
    ) == ({}, {"theme": "light"})


def test_last_writer_wins_tie_goes_to_incoming() -> None:
    records = stored(record("theme", "dark", 5, last_modified_ms=1_000, device_ms=2_000))
    assert events.last_writer_wins([put("theme", "light", 4, device_ms=2_000)], records, NOW) == {"theme": "light"}


def test_last_writer_wins_without_a_stored_record_incoming_wins() -> None:
    assert events.last_writer_wins([put("theme", "light", 4, device_ms=1)], {}, NOW) == {"theme": "light"}


def test_last_writer_wins_remove_patch_wins_as_none() -> None:
    records = stored(record("theme", "dark", 5, last_modified_ms=1_000, device_ms=1_000))
    assert events.last_writer_wins([delete("theme", 4, device_ms=2_000)], records, NOW) == {"theme": None}


def test_last_writer_wins_against_a_later_tombstone_keeps_the_tombstone() -> None:
    records = stored(record("theme", None, 5, last_modified_ms=1_000, device_ms=3_000))
    assert events.last_writer_wins([put("theme", "light", 4, device_ms=2_000)], records, NOW) == {}


def test_last_writer_wins_decides_each_key_on_its_own() -> None:
    records = stored(
        record("a", "1", 5, device_ms=5_000), record("b", "2", 5, device_ms=1_000), record("c", "3", 5, device_ms=3_000)
    )
    stale = [put("a", "x", 4, device_ms=4_000), put("b", "y", 4, device_ms=4_000), delete("c", 4, device_ms=4_000)]
    assert events.last_writer_wins(stale, records, NOW) == {"b": "y", "c": None}


# --- resolved_patches -----------------------------------------------------------------------------------------------


def test_resolved_patches_leave_non_stale_patches_untouched() -> None:
    records = stored(record("theme", "dark", 5))
    patches = [put("theme", "light", 5, device_ms=1_000), put("font", "mono", 0, vector={"a": 1})]
    assert events.resolved_patches(patches, {}, records) == patches


def test_resolved_stale_patch_is_rebased_on_the_stored_sync_count() -> None:
    records = stored(record("theme", "dark", 5))
    patch = put("theme", "light", 3, device_ms=1_000)
    assert events.resolved_patches([patch], {"theme": "merged"}, records) == [
        RecordPatch(Op.REPLACE, "theme", "merged", 5, 1_000, None)
    ]


def test_resolved_stale_remove_with_a_value_becomes_a_replace() -> None:
    records = stored(record("theme", "dark", 5))
    assert events.resolved_patches([delete("theme", 3)], {"theme": "dark"}, records) == [
        RecordPatch(Op.REPLACE, "theme", "dark", 5)
    ]


def test_resolved_stale_replace_resolved_to_none_becomes_a_remove() -> None:
    records = stored(record("theme", "dark", 5))
    assert events.resolved_patches([put("theme", "light", 3, device_ms=7)], {"theme": None}, records) == [
        RecordPatch(Op.REMOVE, "theme", None, 5, 7)
    ]


def test_resolved_stale_patch_vector_is_merged_with_the_stored_vector() -> None:
    records = stored(record("theme", "dark", 5, vector={"a": 4, "b": 1}))
    patch = put("theme", "light", 5, vector={"a": 2, "c": 3})
    assert events.resolved_patches([patch], {"theme": "merged"}, records) == [
        RecordPatch(Op.REPLACE, "theme", "merged", 5, None, {"a": 4, "b": 1, "c": 3})
    ]


def test_resolved_stale_patch_without_a_stored_record_is_based_on_sync_count_zero() -> None:
    assert events.resolved_patches([put("theme", "light", 3)], {"theme": "light"}, {}) == [
        RecordPatch(Op.REPLACE, "theme", "light", 0)
    ]


def test_unresolved_stale_patch_is_dropped() -> None:
    records = stored(record("theme", "dark", 5), record("lang", "en", 2))
    patches = [put("theme", "light", 3), put("lang", "fr", 2), put("font", "mono", 0)]
    assert events.resolved_patches(patches, {}, records) == [put("lang", "fr", 2), put("font", "mono", 0)]


def test_resolved_patches_keep_patch_order() -> None:
    records = stored(record("a", "1", 5), record("b", "2", 5), record("c", "3", 5))
    patches = [put("c", "x", 1), put("b", "y", 5), put("a", "z", 1)]
    assert events.resolved_patches(patches, {"a": "A", "c": None}, records) == [
        RecordPatch(Op.REMOVE, "c", None, 5),
        RecordPatch(Op.REPLACE, "b", "y", 5),
        RecordPatch(Op.REPLACE, "a", "A", 5),
    ]


def test_resolved_patches_after_last_writer_wins_are_no_longer_stale() -> None:
    records = stored(record("theme", "dark", 5, device_ms=1_000, vector={"a": 5}))
    patches = [put("theme", "light", 3, device_ms=2_000, vector={"b": 1})]
    resolved = events.resolved_patches(patches, events.last_writer_wins(patches, records, NOW), records)
    assert [events.is_stale(patch, records.get(patch.key)) for patch in resolved] == [False]


# --- properties -----------------------------------------------------------------------------------------------------

#: Every key a record or a patch may have: 1 to 3 letters of "ab". Drawn without replacement (distinct by
#: construction, nothing to filter) from a set this small, patches often land on stored records and tombstones.
KEYS = st.sampled_from(["".join(letters) for size in (1, 2, 3) for letters in itertools.product("ab", repeat=size)])
#: A value (at most 48 UTF-8 bytes: under LIMITS.max_value_bytes), or None: a tombstone, a remove.
VALUES = st.none() | st.text(max_size=12)
DEVICE_TIMES = st.none() | st.integers(0, 10**13)
VECTORS = st.dictionaries(st.sampled_from("xyz"), st.integers(1, 9))
STORED_SYNC_COUNTS = st.integers(1, 50)
PATCHED_SYNC_COUNTS = st.integers(0, 50)
PATCHED_VECTORS = st.none() | VECTORS


@st.composite
def datasets(draw: st.DrawFn) -> dict[str, Record]:
    """Stored records, tombstones included."""
    keys = draw(st.lists(KEYS, unique=True, max_size=8))
    return {
        key: record(key, draw(VALUES), draw(STORED_SYNC_COUNTS), device_ms=draw(DEVICE_TIMES), vector=draw(VECTORS))
        for key in keys
    }


@st.composite
def patch_lists(draw: st.DrawFn) -> list[RecordPatch]:
    """Patches on distinct keys, replace or remove, with or without device time and vector."""
    keys = draw(st.lists(KEYS, unique=True, max_size=6))
    patches = []
    for key in keys:
        value = draw(VALUES)
        patches.append(
            RecordPatch(
                Op.REMOVE if value is None else Op.REPLACE,
                key,
                value,
                draw(PATCHED_SYNC_COUNTS),
                draw(DEVICE_TIMES),
                draw(PATCHED_VECTORS),
            )
        )
    return patches


@given(datasets(), patch_lists())
def test_property_answering_the_event_unchanged_plans_exactly_the_patches(
    records: dict[str, Record], patches: list[RecordPatch]
) -> None:
    assert plan(unchanged(patches, records), patches, records) == patches


@given(datasets(), patch_lists())
def test_property_event_holds_every_live_record_and_every_patched_key(
    records: dict[str, Record], patches: list[RecordPatch]
) -> None:
    event = events.sync_trigger_event(SOURCE, patches, records)
    live = {key for key, item in records.items() if item.value is not None}
    assert set(event["datasetRecords"]) == live | {patch.key for patch in patches}
