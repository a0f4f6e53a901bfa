"""KMS's Marker paging (ListKeys, ListAliases, ListGrants), one rule for the three.

A NextMarker is what its page ended after, sealed with the deployment's token signer for its operation: a Marker
that syncsvc did not issue, or issued for another operation, is InvalidMarkerException. Touches the token signer only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from syncsvc.api.kms.outputs import Page
from syncsvc.errors import InvalidMarkerError, InvalidParameterError
from syncsvc.tokens import TokenSigner

EntryT = TypeVar("EntryT")


@dataclass(frozen=True, slots=True)
class Markers:
    """The Markers of one list operation."""

    signer: TokenSigner
    operation: str

    @property
    def _purpose(self) -> str:
        return f"kms:{self.operation}"

    def after(self, marker: str | None) -> str | None:
        """What a Marker from an earlier page continues after (None: from the start)."""
        if marker is None:
            return None
        try:
            return str(self.signer.open(self._purpose, marker, name="Marker")["a"])
        except InvalidParameterError:
            raise InvalidMarkerError("The marker is not valid for this operation") from None

    def page(self, items: Sequence[tuple[EntryT, str]], limit: int) -> tuple[list[EntryT], Page]:
        """``items`` are (entry, what a marker continues after): the first ``limit`` entries, and Truncated with a
        NextMarker when there are more."""
        shown = items[:limit]
        page: Page = {"Truncated": len(items) > limit}
        if len(items) > limit:
            page["NextMarker"] = self.signer.seal(self._purpose, {"a": shown[-1][1]})
        return [entry for entry, _ in shown], page
