"""SoftHSM2 for the suite: fresh PKCS#11 tokens in a temporary directory, made once per test session.

``softhsm`` (session-scoped, registered for the whole suite in tests/conftest.py's ``pytest_plugins``) writes a
SoftHSM2 configuration with a token directory of its own, points ``SOFTHSM2_CONF`` at it and initialises
:data:`TOKENS` with ``softhsm2-util --init-token``. All of them are made before anything loads the module: SoftHSM2
reads its token directory once, when the process first initialises it, and sees no token made later. The module comes
from the Debian package ``softhsm2`` (``make test`` installs it: the Makefile's ``softhsm-bin``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Where Debian's softhsm2 puts its module (the first is the path `dpkg -L softhsm2` lists; the second the real file).
MODULE_PATHS = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
#: Every token's user PIN (7 characters: the shortest KeyStorePassword KMS accepts) and security officer PIN.
PIN = "hsm-pin"
SO_PIN = "hsm-so-pin"
#: The tokens, labelled as KMS's CloudHsmClusterIds are written (a custom key store names its token so).
TOKEN = "cluster-syncsvchsmtest"
OTHER_TOKEN = "cluster-syncsvcothertk"
#: Never given to a key store: a token only the PKCS#11 tests open.
BARE_TOKEN = "cluster-syncsvcbaretkn"
#: The token that holds the root keys of the tests of a root key in an HSM (tests/test_root_key_hsm.py).
ROOT_TOKEN = "syncsvc-root-keys"
TOKENS = (TOKEN, OTHER_TOKEN, BARE_TOKEN, ROOT_TOKEN)


@dataclass(frozen=True, slots=True)
class SoftHsm:
    """The session's SoftHSM2: its module's path and its configuration file."""

    module: str
    conf: Path


def _module() -> str:
    for path in MODULE_PATHS:
        if Path(path).exists():
            return path
    raise RuntimeError(f"SoftHSM2 is not installed (none of {MODULE_PATHS}): run `make softhsm-bin`")


@pytest.fixture(scope="session")
def softhsm() -> Iterator[SoftHsm]:
    util = shutil.which("softhsm2-util")
    if util is None:
        raise RuntimeError("softhsm2-util is not on the PATH: run `make softhsm-bin`")
    module = _module()
    with tempfile.TemporaryDirectory(prefix="syncsvc-softhsm-") as folder:
        tokens = Path(folder, "tokens")
        tokens.mkdir()
        conf = Path(folder, "softhsm2.conf")
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        previous = os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        try:
            for label in TOKENS:
                subprocess.run(
                    [util, "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", PIN],
                    check=True,
                    capture_output=True,
                    timeout=30,
                )
            yield SoftHsm(module, conf)
        finally:
            if previous is None:
                os.environ.pop("SOFTHSM2_CONF", None)
            else:
                os.environ["SOFTHSM2_CONF"] = previous
