"""The README's two-device example (examples/two_devices.py) runs as printed against a real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.conftest import Boto
from tests.phones import PUSH_SYNC

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "two_devices.py"


async def test_two_devices_sync_through_a_push_and_a_conflict(boto: Boto, endpoint: str) -> None:
    pool = await boto.new_pool()
    await boto.call(boto.sync, "set_identity_pool_configuration", IdentityPoolId=pool, PushSync=PUSH_SYNC)
    example = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), endpoint, pool, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await example.communicate()
    assert (example.returncode, err) == (0, b"")
    assert out.decode().splitlines() == [
        "tablet: wrote theme=dark",
        "phone: woken, pulled settings at sync count 1: {'theme': 'dark'}",
        "conflict resolved in 1 attempt(s): phone {'theme': 'solarized+light'}, tablet {'theme': 'solarized+light'}",
    ]
