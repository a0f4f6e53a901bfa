"""Version vectors: the causal history of a record or a dataset, as pure algebra (no I/O).

Every record and every dataset carries a version vector: writer id (the device that wrote) → counter.
A write by a device advances that device's entry; the (writer, new counter) pair is the write's *dot*,
which makes a retried write recognisable. A patch that carries a ``VersionVector`` context is accepted
iff the context descends from the stored vector (the client has seen everything stored); a context
concurrent with the stored vector is a conflict. An accepted write merges (pointwise max) the vectors.

A missing writer means counter 0, so ``{}`` is the empty history. Vectors this module returns never hold
zero entries; no function mutates its inputs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

VersionVector = Mapping[str, int]


class Order(enum.Enum):
    """How vector ``a`` relates to vector ``b`` in ``compare(a, b)``."""

    EQUAL = "equal"
    BEFORE = "before"  # b has seen everything a has, and more
    AFTER = "after"  # a has seen everything b has, and more
    CONCURRENT = "concurrent"  # each has seen a write the other has not


def normalize(v: VersionVector) -> dict[str, int]:
    """A copy of ``v`` without zero entries.

    Raises ``ValueError`` on an empty writer id, or a negative or non-int counter (``bool`` included).
    """
    out: dict[str, int] = {}
    for writer, counter in v.items():
        if not isinstance(writer, str) or not writer:
            raise ValueError(f"version vector writer id must be a non-empty string, got {writer!r}")
        if isinstance(counter, bool) or not isinstance(counter, int):
            raise ValueError(f"version vector counter of {writer!r} must be an int, got {counter!r}")
        if counter < 0:
            raise ValueError(f"version vector counter of {writer!r} must not be negative, got {counter}")
        if counter:
            out[writer] = counter
    return out


def descends(a: VersionVector, b: VersionVector) -> bool:
    """Whether ``a`` has seen everything ``b`` has (``a >= b`` pointwise); true for ``a == b``."""
    return all(a.get(writer, 0) >= counter for writer, counter in b.items())


def compare(a: VersionVector, b: VersionVector) -> Order:
    """The relation of ``a`` to ``b``: exactly one of equal, before, after or concurrent."""
    a_seen_b, b_seen_a = descends(a, b), descends(b, a)
    if a_seen_b and b_seen_a:
        return Order.EQUAL
    if a_seen_b:
        return Order.AFTER
    if b_seen_a:
        return Order.BEFORE
    return Order.CONCURRENT


def dominates(a: VersionVector, b: VersionVector) -> bool:
    """Whether ``a`` is strictly after ``b``: it descends from ``b`` and is not equal to it."""
    return compare(a, b) is Order.AFTER


def concurrent(a: VersionVector, b: VersionVector) -> bool:
    """Whether neither vector descends from the other (the writes conflict)."""
    return compare(a, b) is Order.CONCURRENT


def merge(a: VersionVector, b: VersionVector) -> dict[str, int]:
    """The pointwise maximum: the least vector that descends from both ``a`` and ``b``."""
    writers = a.keys() | b.keys()
    return normalize({writer: max(a.get(writer, 0), b.get(writer, 0)) for writer in writers})


def advance(v: VersionVector, writer: str) -> tuple[dict[str, int], int]:
    """``v`` with ``writer``'s counter raised by one, and that new counter (the write's dot)."""
    counter = v.get(writer, 0) + 1
    return normalize({**v, writer: counter}), counter


def contains_dot(v: VersionVector, writer: str, counter: int) -> bool:
    """Whether ``v`` has seen the write ``(writer, counter)``: ``v[writer] >= counter``."""
    return v.get(writer, 0) >= counter
