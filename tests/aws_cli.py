"""The unmodified AWS CLI as the tests run it: the ``aws`` of this venv, with only the test's developer credentials
and a config home of its own (no file of this machine's user is read).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION

AWS = str(Path(sys.executable).with_name("aws"))


def cli_environment(folder: Path, **extra: str) -> dict[str, str]:
    """The AWS CLI's environment: this one without AWS_* variables, plus the test's developer credentials, and a
    config home in ``folder`` (so no file of this machine's user is read)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=DEVELOPER_KEY,
        AWS_SECRET_ACCESS_KEY=DEVELOPER_SECRET,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(folder / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(folder / "credentials"),
        HOME=str(folder),
        **extra,
    )
    return env


async def aws(endpoint: str, tmp_path: Path, *args: str) -> tuple[int, Any, str]:
    """Runs `aws --endpoint-url ENDPOINT ARGS…` with only the test's credentials; returns (code, JSON out, stderr)."""
    env = cli_environment(tmp_path)
    process = await asyncio.create_subprocess_exec(
        AWS,
        "--endpoint-url",
        endpoint,
        "--output",
        "json",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, json.loads(out) if out.strip() else None, err.decode()
