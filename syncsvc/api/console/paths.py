"""Where the console lives (imported by the API's authentication, which leaves these paths to the console)."""

from __future__ import annotations

ROOT = "/console"
SIGN_IN = ROOT + "/signin"


def is_console(path: str) -> bool:
    return path == ROOT or path.startswith(ROOT + "/")
