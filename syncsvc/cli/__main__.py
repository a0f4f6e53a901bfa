"""``python -m syncsvc.cli``: the ``syncsvc`` command without its installed script."""

from __future__ import annotations

from syncsvc.cli import main

main()
