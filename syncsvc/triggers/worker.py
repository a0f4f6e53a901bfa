"""The child side of process isolation: ``python -m syncsvc.triggers.worker`` runs one trigger's handler.

The parent (:mod:`syncsvc.triggers.process`) talks to it over stdin/stdout in frames: a 4-byte big-endian length,
then that many bytes of JSON (orjson).

1. Parent → worker: ``{"path": [the parent's sys.path], "target": "module:qualname"}``. The worker takes the path,
   imports the handler and answers ``{"ready": true}``, or ``{"error": "<one line>"}`` and exits with code 1.
2. Then, for each call, parent → worker: ``{"event": {...}, "context": {"function_name", "aws_request_id",
   "invoked_function_arn", "remaining_ms", "identity_id", "identity_pool_id", "memory_limit_in_mb",
   "log_group_name"}}``; worker → parent, one of ``{"ok": <return value>}``, ``{"rejected": "<message>"}`` (the
   handler raised ``Rejected``), ``{"raised": "<traceback>"}`` (any other exception, ``SystemExit`` included, as
   for a handler run in a thread) or ``{"unencodable": "<what>"}`` (the return value is not JSON, or its frame
   would exceed :data:`MAX_FRAME_BYTES`).
3. End of stdin: the worker exits with code 0.

The protocol keeps private copies of fds 0 and 1: fd 0 is then ``/dev/null`` and fd 1 (``print``, ``sys.stdout``,
``os.write(1, …)``) goes to stderr, so nothing the handler does with stdin/stdout can corrupt a frame; stderr is
the server's own. On Linux the worker asks for SIGKILL when its parent dies, so a killed server leaves no worker
running a handler; an idle worker sees end of file on stdin anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import inspect
import os
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

import orjson

from syncsvc.triggers.spec import CognitoIdentity, LambdaContext, Rejected

#: Length prefix of every frame.
HEADER_BYTES = 4
#: Largest frame the parent reads; a bigger answer is reported as ``unencodable``.
MAX_FRAME_BYTES = 16 * 1024 * 1024
_PR_SET_PDEATHSIG = 1


def encode_frame(message: Any) -> bytes:
    """``message`` as one frame (orjson.JSONEncodeError when it is not JSON)."""
    body = orjson.dumps(message)
    return len(body).to_bytes(HEADER_BYTES, "big") + body


def main() -> int:
    """Runs the worker until end of stdin; the exit code."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the server's terminal: the server stops its workers
    reader, writer = _protocol_streams()
    hello = _read(reader)
    if hello is None:
        return 0
    sys.path[:] = hello["path"]
    try:
        handler = _load(hello["target"])
    except Exception as exc:
        _write(writer, {"error": _utf8(f"cannot import {hello['target']}: {_one_line(exc)}")})
        return 1
    _write(writer, {"ready": True})
    with asyncio.Runner() as runner:
        while (request := _read(reader)) is not None:
            _send(writer, _answer(runner, handler, request))
    return 0


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the parent dies (best effort: elsewhere, or on failure, nothing)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _protocol_streams() -> tuple[BinaryIO, BinaryIO]:
    """Private copies of stdin/stdout for the frames; fd 0 becomes /dev/null and fd 1 a copy of stderr."""
    reader = os.fdopen(os.dup(0), "rb")
    writer = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    sys.stdout = sys.stderr
    return reader, writer


def _read(reader: BinaryIO) -> Any:
    """The next frame's message; None at end of input."""
    header = reader.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES:
        return None
    size = int.from_bytes(header, "big")
    body = reader.read(size)
    return orjson.loads(body) if len(body) == size else None


def _write(writer: BinaryIO, message: dict[str, Any]) -> None:
    _send(writer, encode_frame(message))


def _send(writer: BinaryIO, frame: bytes) -> None:
    writer.write(frame)
    writer.flush()


def _load(target: str) -> Callable[..., Any]:
    """Imports ``module:qualname`` (a dotted qualname is walked attribute by attribute)."""
    module_name, _, qualname = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise TypeError(f"{target} is not callable")
    return found  # type: ignore[no-any-return]


def _answer(runner: asyncio.Runner, handler: Callable[..., Any], request: dict[str, Any]) -> bytes:
    """Calls the handler with the request's event and context; the answer frame."""
    try:
        value = handler(request["event"], _context(request["context"]))
        if inspect.isawaitable(value):
            value = runner.run(_awaited(value))
    except Rejected as rejected:
        return encode_frame({"rejected": _utf8(str(rejected.message))})
    except (Exception, SystemExit):
        return encode_frame({"raised": _utf8(traceback.format_exc())})
    return _ok_frame(value)


def _ok_frame(value: Any) -> bytes:
    """The ``ok`` frame of ``value``, or an ``unencodable`` one saying why it cannot be sent."""
    try:
        frame = encode_frame({"ok": value})
    except orjson.JSONEncodeError as exc:
        return encode_frame({"unencodable": _utf8(str(exc))})
    size = len(frame) - HEADER_BYTES
    if size > MAX_FRAME_BYTES:
        return encode_frame({"unencodable": f"{size} bytes of JSON, more than the limit of {MAX_FRAME_BYTES}"})
    return frame


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


def _context(fields: dict[str, Any]) -> LambdaContext:
    identity_id, pool_id = fields.get("identity_id"), fields.get("identity_pool_id")
    return LambdaContext(
        function_name=fields["function_name"],
        aws_request_id=fields["aws_request_id"],
        invoked_function_arn=fields["invoked_function_arn"],
        deadline=time.monotonic() + fields["remaining_ms"] / 1000,
        identity=CognitoIdentity(identity_id, pool_id) if identity_id and pool_id else None,
        memory_limit_in_mb=fields.get("memory_limit_in_mb", 128),
        log_group_name=fields.get("log_group_name", ""),
    )


def _utf8(text: str) -> str:
    """``text`` without lone surrogates (which orjson refuses), e.g. from an undecodable file name."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
