"""Unit tests of the example handlers: plain functions, called with an event and a context built by hand.

No server is needed, only ``syncsvc`` importable (for the types and ``Rejected``) and the package itself:
``pytest`` from this directory once the package is installed (``pip install -e .``).
"""

from __future__ import annotations

import copy
import time

import pytest
from example_triggers import merge_scores, profile

from syncsvc.triggers import Conflict, LambdaContext, Rejected, SyncConflictEvent, SyncTriggerEvent, SyncTriggerRecord

POOL = "us-east-1:00000000-0000-4000-8000-000000000000"
IDENTITY = "us-east-1:11111111-1111-4111-8111-111111111111"


def context(name: str) -> LambdaContext:
    """The context the server passes: the trigger's name, a request id and 5 s (the default timeout) to answer."""
    return LambdaContext(
        function_name=name,
        aws_request_id="test-request",
        invoked_function_arn=f"arn:aws:lambda:us-east-1:000000000000:function:{name}",
        deadline=time.monotonic() + 5,
    )


def sync_event(dataset: str, records: dict[str, SyncTriggerRecord]) -> SyncTriggerEvent:
    """The SyncTrigger event of a write to ``dataset``: ``records`` is every record of the dataset."""
    return {
        "version": 2,
        "eventType": "SyncTrigger",
        "region": "us-east-1",
        "identityPoolId": POOL,
        "identityId": IDENTITY,
        "datasetName": dataset,
        "datasetRecords": records,
    }


def conflict_event(conflicts: dict[str, Conflict]) -> SyncConflictEvent:
    """The SyncConflict event of a stale write to the dataset "game"."""
    return {
        "version": 1,
        "eventType": "SyncConflict",
        "region": "us-east-1",
        "identityPoolId": POOL,
        "identityId": IDENTITY,
        "datasetName": "game",
        "conflicts": conflicts,
    }


def conflict(stored: str | None, incoming: str | None) -> Conflict:
    """A stale write of ``incoming`` (None: a removal) over ``stored`` (None: a key never written)."""
    return {
        "incoming": {
            "op": "replace" if incoming is not None else "remove",
            "value": incoming,
            "syncCount": 0,
            "deviceLastModifiedDate": None,
            "versionVector": None,
        },
        "stored": None
        if stored is None
        else {
            "value": stored,
            "syncCount": 1,
            "lastModifiedDate": 1_700_000_000_000,
            "lastModifiedBy": "tablet",
            "deviceLastModifiedDate": None,
            "versionVector": {"tablet": 1},
        },
    }


# --- example-profile ------------------------------------------------------------------------------------------------


def test_profile_trims_the_written_nickname_and_adds_updated_by() -> None:
    event = sync_event("profile", {"nickname": {"oldValue": None, "newValue": "  Ada  ", "op": "replace"}})
    assert profile(event, context("example-profile")) == sync_event(
        "profile",
        {
            "nickname": {"oldValue": None, "newValue": "Ada", "op": "replace"},
            "updatedBy": {"newValue": "trigger", "op": "replace"},
        },
    )


def test_profile_refuses_a_nickname_over_32_characters() -> None:
    event = sync_event("profile", {"nickname": {"oldValue": "Ada", "newValue": " " + "x" * 40, "op": "replace"}})
    with pytest.raises(Rejected) as refused:
        profile(event, context("example-profile"))
    assert refused.value.message == "nickname must be at most 32 characters after trimming, not 40"


def test_profile_leaves_a_nickname_the_write_does_not_change() -> None:
    long_nickname = "x" * 40  # stored before the trigger was attached
    event = sync_event(
        "profile",
        {
            "nickname": {"oldValue": long_nickname, "newValue": long_nickname, "op": "replace"},
            "updatedBy": {"oldValue": "trigger", "newValue": "trigger", "op": "replace"},
            "city": {"oldValue": None, "newValue": "Paris", "op": "replace"},
        },
    )
    assert profile(copy.deepcopy(event), context("example-profile")) == event


def test_profile_returns_other_datasets_unchanged() -> None:
    event = sync_event("settings", {"nickname": {"oldValue": None, "newValue": "  Ada  ", "op": "replace"}})
    assert profile(copy.deepcopy(event), context("example-profile")) == event


# --- example-merge-scores -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "incoming", "resolved"),
    [
        ("120", "150", {"score": "150"}),  # the incoming score is higher: store it
        ("120", "95", {}),  # the stored one is higher: left out, the stored version stays
        ("120", "120", {}),  # a tie keeps the stored version
        (None, "150", {"score": "150"}),  # never written before
        ("not a number", "150", {"score": "150"}),
        ("120", None, {}),  # a removal is no score
        ("120", "lots", {}),
    ],
)
def test_merge_scores_keeps_the_higher_score(
    stored: str | None, incoming: str | None, resolved: dict[str, str]
) -> None:
    event = conflict_event({"score": conflict(stored, incoming)})
    assert merge_scores(event, context("example-merge-scores")) == resolved


def test_merge_scores_resolves_every_score_key_and_leaves_the_others() -> None:
    event = conflict_event(
        {"score": conflict("1", "2"), "scoreLevel2": conflict("30", "40"), "title": conflict("Knight", "Squire")}
    )
    assert merge_scores(event, context("example-merge-scores")) == {"score": "2", "scoreLevel2": "40"}
