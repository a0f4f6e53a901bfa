"""Property-based tests of the version-vector algebra (``syncsvc.vv``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncsvc import vv
from syncsvc.vv import Order

WRITERS = st.sampled_from("abcde")
vectors = st.dictionaries(WRITERS, st.integers(1, 20))
vectors_with_zeros = st.dictionaries(WRITERS, st.integers(0, 20))


def _plus(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """Pointwise sum: a vector that descends from ``a`` without using ``merge``."""
    return {w: a.get(w, 0) + b.get(w, 0) for w in a.keys() | b.keys()}


@st.composite
def vector_below(draw: st.DrawFn, top: Mapping[str, int]) -> dict[str, int]:
    """A vector that ``top`` descends from, drawn entry by entry."""
    return vv.normalize({w: draw(st.integers(0, c)) for w, c in top.items()})


# descends is a partial order


@given(vectors)
def test_descends_is_reflexive(a: dict[str, int]) -> None:
    assert vv.descends(a, a)


@given(vectors, vectors)
def test_descends_is_antisymmetric(a: dict[str, int], b: dict[str, int]) -> None:
    if vv.descends(a, b) and vv.descends(b, a):
        assert a == b


@given(vectors, vectors, vectors)
def test_descends_is_transitive(c: dict[str, int], x: dict[str, int], y: dict[str, int]) -> None:
    b = _plus(c, x)
    a = _plus(b, y)
    assert vv.descends(a, b)
    assert vv.descends(b, c)
    assert vv.descends(a, c)


@given(vectors)
def test_everything_descends_from_the_empty_vector(a: dict[str, int]) -> None:
    assert vv.descends(a, {})


# compare, dominates and concurrent agree with descends


@given(vectors, vectors)
def test_exactly_one_relation_holds(a: dict[str, int], b: dict[str, int]) -> None:
    relations = [a == b, vv.dominates(a, b), vv.dominates(b, a), vv.concurrent(a, b)]
    assert relations.count(True) == 1


@given(vectors, vectors)
def test_compare_matches_descends(a: dict[str, int], b: dict[str, int]) -> None:
    expected = {
        (True, True): Order.EQUAL,
        (True, False): Order.AFTER,
        (False, True): Order.BEFORE,
        (False, False): Order.CONCURRENT,
    }[(vv.descends(a, b), vv.descends(b, a))]
    assert vv.compare(a, b) is expected


@given(vectors, vectors)
def test_compare_is_mirrored_when_arguments_swap(a: dict[str, int], b: dict[str, int]) -> None:
    mirror = {
        Order.EQUAL: Order.EQUAL,
        Order.BEFORE: Order.AFTER,
        Order.AFTER: Order.BEFORE,
        Order.CONCURRENT: Order.CONCURRENT,
    }
    assert vv.compare(b, a) is mirror[vv.compare(a, b)]


@given(vectors, vectors)
def test_dominates_means_after(a: dict[str, int], b: dict[str, int]) -> None:
    assert vv.dominates(a, b) == (vv.compare(a, b) is Order.AFTER)


@given(vectors, vectors)
def test_concurrent_means_neither_descends(a: dict[str, int], b: dict[str, int]) -> None:
    assert vv.concurrent(a, b) == (not vv.descends(a, b) and not vv.descends(b, a))


@given(vectors)
def test_missing_writer_equals_zero_counter(a: dict[str, int]) -> None:
    assert vv.compare({**a, "z": 0}, a) is Order.EQUAL


# merge is the join


@given(vectors, vectors)
def test_merge_is_commutative(a: dict[str, int], b: dict[str, int]) -> None:
    assert vv.merge(a, b) == vv.merge(b, a)


@given(vectors, vectors, vectors)
def test_merge_is_associative(a: dict[str, int], b: dict[str, int], c: dict[str, int]) -> None:
    assert vv.merge(vv.merge(a, b), c) == vv.merge(a, vv.merge(b, c))


@given(vectors)
def test_merge_is_idempotent(a: dict[str, int]) -> None:
    assert vv.merge(a, a) == a


@given(vectors, vectors)
def test_merge_is_an_upper_bound_of_both(a: dict[str, int], b: dict[str, int]) -> None:
    joined = vv.merge(a, b)
    assert vv.descends(joined, a)
    assert vv.descends(joined, b)


@given(vectors, st.data())
def test_merge_is_the_least_upper_bound(c: dict[str, int], data: st.DataObject) -> None:
    a = data.draw(vector_below(c))
    b = data.draw(vector_below(c))
    assert vv.descends(c, vv.merge(a, b))


@given(vectors, vectors)
def test_merge_equals_the_descendant_when_ordered(b: dict[str, int], x: dict[str, int]) -> None:
    a = _plus(b, x)
    assert vv.merge(a, b) == a


def test_merge_drops_zero_entries() -> None:
    assert vv.merge({"a": 0}, {"b": 0, "c": 2}) == {"c": 2}


# advance and dots


@given(vectors, WRITERS)
def test_advance_strictly_dominates_its_input(v: dict[str, int], writer: str) -> None:
    advanced, _ = vv.advance(v, writer)
    assert vv.dominates(advanced, v)


@given(vectors, WRITERS)
def test_advance_raises_only_the_writers_counter_by_one(v: dict[str, int], writer: str) -> None:
    advanced, counter = vv.advance(v, writer)
    assert counter == v.get(writer, 0) + 1
    assert advanced == {**v, writer: counter}


@given(vectors, WRITERS)
def test_advanced_dot_is_contained_only_after_advance(v: dict[str, int], writer: str) -> None:
    advanced, counter = vv.advance(v, writer)
    assert vv.contains_dot(advanced, writer, counter)
    assert not vv.contains_dot(v, writer, counter)


def test_first_write_of_a_writer_gets_counter_one() -> None:
    assert vv.advance({"a": 3}, "b") == ({"a": 3, "b": 1}, 1)


def test_advance_rejects_an_empty_writer_id() -> None:
    with pytest.raises(ValueError, match="writer id"):
        vv.advance({}, "")


@given(vectors, WRITERS, st.integers(1, 25))
def test_contains_dot_matches_descends_from_the_dot(v: dict[str, int], writer: str, counter: int) -> None:
    assert vv.contains_dot(v, writer, counter) == vv.descends(v, {writer: counter})


@given(vectors)
def test_vector_contains_every_dot_up_to_its_counters(v: dict[str, int]) -> None:
    for writer, counter in v.items():
        assert all(vv.contains_dot(v, writer, k) for k in range(1, counter + 1))
        assert not vv.contains_dot(v, writer, counter + 1)


# normalize


@given(vectors_with_zeros)
def test_normalize_drops_zero_entries(v: dict[str, int]) -> None:
    assert vv.normalize(v) == {w: c for w, c in v.items() if c != 0}


@given(vectors)
def test_normalize_returns_a_copy(v: dict[str, int]) -> None:
    normalized = vv.normalize(v)
    assert normalized == v
    assert normalized is not v


def test_normalize_rejects_a_negative_counter() -> None:
    with pytest.raises(ValueError, match="negative"):
        vv.normalize({"a": 1, "b": -1})


def test_normalize_rejects_a_bool_counter() -> None:
    with pytest.raises(ValueError, match="must be an int"):
        vv.normalize({"a": True})


@pytest.mark.parametrize("counter", ["1", 1.0, None])
def test_normalize_rejects_a_non_int_counter(counter: object) -> None:
    with pytest.raises(ValueError, match="must be an int"):
        vv.normalize(cast(Mapping[str, int], {"a": counter}))


def test_normalize_rejects_an_empty_writer_id() -> None:
    with pytest.raises(ValueError, match="writer id"):
        vv.normalize({"": 1})


# inputs are never mutated


@given(vectors_with_zeros, vectors_with_zeros, WRITERS)
def test_no_function_mutates_its_inputs(a: dict[str, int], b: dict[str, int], writer: str) -> None:
    a_before, b_before = copy.deepcopy(a), copy.deepcopy(b)
    vv.normalize(a)
    vv.compare(a, b)
    vv.descends(a, b)
    vv.dominates(a, b)
    vv.concurrent(a, b)
    vv.merge(a, b)
    vv.advance(a, writer)
    vv.contains_dot(a, writer, 1)
    assert (a, b) == (a_before, b_before)


# named examples


def test_different_single_writers_are_concurrent() -> None:
    assert vv.compare({"a": 1}, {"b": 1}) is Order.CONCURRENT


def test_empty_vector_is_before_any_non_empty_vector() -> None:
    assert vv.compare({}, {"a": 1}) is Order.BEFORE


def test_empty_vectors_are_equal() -> None:
    assert vv.compare({}, {}) is Order.EQUAL


def test_higher_counter_of_the_same_writer_is_after() -> None:
    assert vv.compare({"a": 2, "b": 1}, {"a": 1, "b": 1}) is Order.AFTER


def test_crossed_counters_are_concurrent() -> None:
    assert vv.compare({"a": 2, "b": 1}, {"a": 1, "b": 2}) is Order.CONCURRENT


def test_merge_of_crossed_counters_takes_each_maximum() -> None:
    assert vv.merge({"a": 2, "b": 1}, {"a": 1, "b": 2, "c": 1}) == {"a": 2, "b": 2, "c": 1}


def test_vectors_accept_read_only_mappings() -> None:
    frozen = MappingProxyType({"a": 1})
    assert vv.advance(frozen, "a") == ({"a": 2}, 2)
