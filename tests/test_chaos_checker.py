"""The chaos checker (chaos/checker.py) can fail: hand-made histories with one known fault each — an acknowledged
write lost, a change twice on the stream, a conflict acknowledged, a sync count reused, an indeterminate write
applied twice, a refused write committed, the stream out of order or missing a commit, a push listener left behind,
a read going back in time — are each reported by the check that owns the property; the clean history and an
indeterminate write applied once are not."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from chaos.checker import check
from chaos.history import Final, History, Kind, Op, Outcome, Pushed, Streamed

IDENTITY, DATASET, POOL = "us-east-1:i", "d", "us-east-1:p"
KEY = f"{POOL}/{IDENTITY}/{DATASET}"


def op(index: int, kind: Kind, outcome: Outcome, **fields: Any) -> Op:
    """An operation of device "x" invoked at ``index`` seconds, completed half a second later."""
    made = Op(index, "x", "boto3", IDENTITY, DATASET, kind, float(index), float(index) + 0.5, outcome)
    return dataclasses.replace(made, **fields)


def clean() -> History:
    """Two acknowledged writes of ``a``, an indeterminate write of ``b`` that never appeared, a refused conflict."""
    return History(
        seed=1,
        pool=POOL,
        ops=[
            op(0, "list", "ok", given=0, sync_count=0),
            op(1, "update", "ok", key="a", value="v1", given=0, sync_count=1),
            op(2, "update", "ok", key="a", value="v2", given=1, sync_count=2),
            op(3, "update", "info", key="b", value="v3", given=0, error="503 InternalErrorException"),
            op(4, "update", "fail", key="a", value="v4", given=0, error="409 ResourceConflictException"),
            op(5, "list", "ok", given=0, sync_count=2, records={"a": ("v2", 2)}),
        ],
        final=[Final(IDENTITY, DATASET, 2, True, {"a": ("v2", 2)})],
        stream=[Streamed(KEY, 0, 0, 1, [("a", "v1")]), Streamed(KEY, 0, 1, 2, [("a", "v2")])],
        pushed=[Pushed("x", IDENTITY, DATASET, 2, 1)],
    )


def checks(history: History) -> set[str]:
    return {anomaly.check for anomaly in check(history).anomalies}


def test_a_clean_history_has_no_anomaly() -> None:
    report = check(clean())
    assert report.anomalies == []
    assert (report.figures["operations"], report.figures["writes_acknowledged"]) == (6, 2)


def test_an_indeterminate_write_applied_once_is_no_anomaly() -> None:
    history = clean()
    history.final = [Final(IDENTITY, DATASET, 3, True, {"a": ("v2", 2), "b": ("v3", 3)})]
    history.stream.append(Streamed(KEY, 0, 2, 3, [("b", "v3")]))
    history.pushed = [Pushed("x", IDENTITY, DATASET, 3, 1)]
    assert checks(history) == set()


def test_a_write_removed_by_a_later_deletion_is_no_anomaly() -> None:
    history = clean()
    history.ops.append(op(6, "delete", "ok", sync_count=3))
    history.final = [Final(IDENTITY, DATASET, 3, False, {})]
    history.pushed = [Pushed("x", IDENTITY, DATASET, 3, 1)]
    assert checks(history) == set()


def test_a_lost_acknowledged_write_is_reported() -> None:
    history = clean()
    history.final = [Final(IDENTITY, DATASET, 1, True, {"a": ("v1", 1)})]
    history.pushed = [Pushed("x", IDENTITY, DATASET, 1, 1)]
    assert checks(history) == {"visible"}


def test_a_change_twice_on_the_stream_is_reported() -> None:
    history = clean()
    history.stream.append(Streamed(KEY, 0, 2, 2, [("a", "v2")]))
    assert checks(history) == {"stream"}


def test_an_acknowledged_commit_missing_from_the_stream_is_reported() -> None:
    history = clean()
    del history.stream[0]
    assert checks(history) == {"stream"}


def test_a_stream_out_of_order_is_reported() -> None:
    history = clean()
    history.stream = [Streamed(KEY, 0, 0, 2, [("a", "v2")]), Streamed(KEY, 0, 1, 1, [("a", "v1")])]
    assert checks(history) == {"stream"}


def test_a_conflict_acknowledged_as_a_success_is_reported() -> None:
    history = clean()
    history.ops[2] = dataclasses.replace(history.ops[2], given=0)  # the record was at 1
    assert checks(history) == {"conflict"}


def test_a_write_and_a_deletion_under_one_count_are_reported() -> None:
    history = clean()
    history.ops.append(op(6, "delete", "ok", sync_count=2))
    assert "claims" in checks(history)


def test_a_sync_count_reused_is_reported() -> None:
    history = clean()
    history.ops[3] = dataclasses.replace(history.ops[3], outcome="ok", sync_count=2, error=None)
    history.final = [Final(IDENTITY, DATASET, 2, True, {"a": ("v2", 2), "b": ("v3", 2)})]
    history.stream.append(Streamed(KEY, 1, 0, 2, [("b", "v3")]))
    assert "claims" in checks(history)


def test_an_indeterminate_write_under_two_counts_is_reported() -> None:
    history = clean()
    history.final = [Final(IDENTITY, DATASET, 4, True, {"a": ("v2", 2), "b": ("v3", 4)})]
    history.stream += [Streamed(KEY, 0, 2, 3, [("b", "v3")]), Streamed(KEY, 0, 3, 4, [("b", "v3")])]
    history.pushed = [Pushed("x", IDENTITY, DATASET, 4, 1)]
    assert checks(history) == {"claims"}


def test_a_value_in_another_identitys_dataset_is_reported() -> None:
    history = clean()
    history.final.append(Final("us-east-1:other", DATASET, 1, True, {"a": ("v1", 1)}))
    assert checks(history) == {"claims"}


def test_a_refused_write_that_committed_is_reported() -> None:
    history = clean()
    history.final = [Final(IDENTITY, DATASET, 3, True, {"a": ("v4", 3)})]
    history.stream.append(Streamed(KEY, 0, 2, 3, [("a", "v4")]))
    history.pushed = [Pushed("x", IDENTITY, DATASET, 3, 1)]
    assert checks(history) == {"claims"}


def test_a_read_that_goes_back_in_time_is_reported() -> None:
    history = clean()
    history.ops[5] = dataclasses.replace(history.ops[5], sync_count=1, records={"a": ("v1", 1)})
    assert checks(history) == {"order"}


def test_a_push_listener_left_behind_is_reported() -> None:
    history = clean()
    history.pushed = [Pushed("x", IDENTITY, DATASET, 1, 3)]
    assert checks(history) == {"push"}


def test_a_push_listener_that_stopped_is_reported() -> None:
    history = clean()
    history.pushed = [Pushed("x", IDENTITY, DATASET, 2, 4, stopped="SyncClientError: NotAuthorizedException")]
    assert checks(history) == {"push"}


def test_a_device_that_named_itself_in_the_last_write_is_due_only_the_commit_before() -> None:
    history = clean()
    history.ops[2] = dataclasses.replace(history.ops[2], named=True)  # the write at 2 named device "x"
    history.pushed = [Pushed("x", IDENTITY, DATASET, 1, 1)]
    assert checks(history) == set()
    history.pushed = [Pushed("x", IDENTITY, DATASET, 0, 1)]
    assert checks(history) == {"push"}


def test_a_history_reads_back_as_it_was_written(tmp_path: Path) -> None:
    history = clean()
    history.write(tmp_path / "history.jsonl")
    assert History.read(tmp_path / "history.jsonl") == history


def test_a_stream_not_read_to_the_end_is_reported() -> None:
    history = clean()
    history.stream_complete = False
    assert checks(history) == {"stream"}


def resent_across_a_deletion(*, deleted: bool) -> History:
    """A write of ``a`` sent twice (its first answer lost): the first attempt committed at 1, another device deleted
    the dataset (count 2) while it was in doubt, and the re-send committed again at 3."""
    write = dataclasses.replace(
        op(1, "update", "ok", key="a", value="v1", given=0, sync_count=3, attempts=2), completed=3.0
    )
    ops = [op(0, "list", "ok", given=0, sync_count=0), write]
    if deleted:
        ops.append(op(2, "delete", "ok", sync_count=2))
    return History(
        seed=1,
        pool=POOL,
        ops=ops,
        final=[Final(IDENTITY, DATASET, 3, True, {"a": ("v1", 3)})],
        stream=[Streamed(KEY, 0, 0, 1, [("a", "v1")]), Streamed(KEY, 0, 1, 3, [("a", "v1")])],
        pushed=[Pushed("x", IDENTITY, DATASET, 3, 1)],
    )


def test_a_write_re_sent_across_a_concurrent_deletion_is_the_documented_reapplication() -> None:
    report = check(resent_across_a_deletion(deleted=True))
    assert report.anomalies == []
    assert report.figures["reapplied_after_deletion"] == 1


def test_a_write_re_sent_and_applied_twice_without_a_deletion_is_reported() -> None:
    assert "claims" in checks(resent_across_a_deletion(deleted=False))
