"""``syncsvc stream tail POOL``: a pool's changes as they arrive on its stream topic, for a person (or JSON lines).

The topic is the pool's ``CognitoStreams.StreamName``, read once at start. The tail reads it the way every consumer of
the stream should (docs/asyncapi.yaml): ``read_committed``, so it sees each committed change once and never a batch
an interrupted relay aborted; with no consumer group, so it commits no offsets and disturbs no one; on every partition
the topic has when the tail starts (partitions added later are not followed); from the end, or from the beginning
with ``--from-beginning``. Several pools may share a topic, so only records keyed ``<pool>/…`` are shown.

Kafka unreachable at start: one line on stderr, exit 1. A broker lost while following is ridden out: the Kafka client
reconnects and goes on from the same position, so nothing is skipped or shown twice, and stderr gets one line about
it every 30 s instead of the client's own flood of log lines. A topic that does not exist yet (syncsvc creates it
with the pool's first change) is waited for and then read from its beginning. Status lines go to stderr, changes to
stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import logging
import os
import sys
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.text import Text

from syncsvc.cli.signals import cancelled_on_signals
from syncsvc.config import Settings
from syncsvc.errors import SyncsvcError
from syncsvc.runtime import StartupError, open_services

#: Keys and values longer than this are cut (with an ellipsis) in the human output.
SHORT = 60
TOPIC_POLL_SECONDS = 1.0
#: While Kafka is unreachable, at most one line about it this often.
COMPLAINT_SECONDS = 30.0
OP_STYLES = {"replace": "green", "remove": "red"}


class KafkaUnreachableError(Exception):
    """Kafka did not answer at start; ``str()`` is one line for the operator."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stream = commands.add_parser("stream", help="read a pool's Cognito Streams topic")
    actions = stream.add_subparsers(dest="action", required=True)
    tail = actions.add_parser("tail", help="print a pool's changes as they arrive (Ctrl-C to stop)")
    tail.add_argument("pool", help="identity pool id")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest change kept on the topic")
    tail.add_argument("--json", action="store_true", help="print each record value as one JSON line")
    tail.add_argument("--max", type=_positive, metavar="N", help="stop after N changes")
    stream.set_defaults(run=run)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a count of 1 or more, not {text!r}")
    return int(text)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Runs ``stream tail``; returns the exit code. SIGINT and SIGTERM end it cleanly (exit 0)."""
    return asyncio.run(_tail(settings, args))


async def _tail(settings: Settings, args: argparse.Namespace) -> int:
    try:
        topic = await _stream_topic(settings, args.pool)
    except StartupError as exc:
        return _fail(str(exc))
    except SyncsvcError as exc:
        return _fail(f"{exc.code}: {exc.message}")
    if topic is None:
        return _fail(
            f"streaming is not enabled for identity pool '{args.pool}'; turn it on with "
            f"SetIdentityPoolConfiguration (CognitoStreams StreamName and StreamingStatus ENABLED)"
        )
    tail = StreamTail(settings.kafka_bootstrap, topic, args.pool)
    with tail.complaints.muffling("aiokafka"):
        task = cancelled_on_signals(asyncio.create_task(_show(tail, args)))
        try:
            await task
        except KafkaUnreachableError as exc:
            return _fail(str(exc))
        except KafkaError as exc:
            return _fail(f"Kafka: {exc}")
        except asyncio.CancelledError:
            pass
        except BrokenPipeError:  # stdout's reader is gone (`… | head`): done, without a traceback at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


async def _stream_topic(settings: Settings, pool: str) -> str | None:
    async with open_services(settings) as services:
        return (await services.pools.configuration(pool)).streaming_topic


def _fail(message: str) -> int:
    print(f"syncsvc: {message}", file=sys.stderr)
    return 1


def _say(message: str) -> None:
    print(f"syncsvc: {message}", file=sys.stderr, flush=True)


async def _show(tail: StreamTail, args: argparse.Namespace) -> None:
    show: Callable[[bytes], None] = _print_json if args.json else HumanPrinter().show
    shown = 0
    changes = tail.changes(from_beginning=args.from_beginning)
    async with contextlib.aclosing(changes):
        async for value in changes:
            show(value)
            shown += 1
            if shown == args.max:
                return


class StreamTail:
    """Follows the changes of one pool on its topic; tells on stderr where it starts and when Kafka is in trouble."""

    def __init__(self, bootstrap: str, topic: str, pool: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.pool = pool
        self.complaints = KafkaComplaints()

    async def changes(self, *, from_beginning: bool) -> AsyncGenerator[bytes, None]:
        """The value of every committed record of the pool, in partition order, until closed or cancelled."""
        partitions, created_since = await self._partitions()
        from_beginning = from_beginning or created_since  # all of a topic created since the start is new
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a position that retention deleted goes to the oldest change kept
        )
        try:
            await self._start(consumer)
            consumer.assign(partitions)
            if from_beginning:
                await consumer.seek_to_beginning(*partitions)
            else:
                await consumer.seek_to_end(*partitions)
            for partition in partitions:  # resolve the start now: whatever is committed after the line below is seen
                await consumer.position(partition)
            _say(f"following topic '{self.topic}' from the {'beginning' if from_beginning else 'end'}; Ctrl-C to stop")
            prefix = f"{self.pool}/".encode()
            while True:
                for messages in (await consumer.getmany(timeout_ms=1000)).values():
                    for message in messages:
                        if message.key is not None and message.key.startswith(prefix) and message.value is not None:
                            yield message.value
        finally:
            await consumer.stop()

    async def _partitions(self) -> tuple[list[TopicPartition], bool]:
        """Every partition of the topic, once it exists; and whether it had to be waited for.

        Reads the metadata of *all* topics: asking for one missing topic would let a broker that auto-creates topics
        create it with its defaults, not the partitions and sizes syncsvc gives the stream topics.
        """
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=15_000)
        try:
            await self._start(admin)
            waited = False
            while True:
                partitions = await self._described(admin)
                if partitions:
                    return partitions, waited
                if not waited:
                    _say(f"waiting for topic '{self.topic}' (syncsvc creates it with the pool's first change)")
                    waited = True
                await asyncio.sleep(TOPIC_POLL_SECONDS)
        finally:
            await admin.close()

    async def _described(self, admin: AIOKafkaAdminClient) -> list[TopicPartition]:
        try:
            topics = await admin.describe_topics()
        except KafkaError as exc:
            self.complaints.complain(str(exc))
            return []
        found = [p["partition"] for topic in topics if topic["topic"] == self.topic for p in topic["partitions"]]
        return [TopicPartition(self.topic, partition) for partition in sorted(found)]

    async def _start(self, client: AIOKafkaConsumer | AIOKafkaAdminClient) -> None:
        self.complaints.started = False  # a failed start is one line of its own
        try:
            await client.start()
        except (KafkaError, OSError) as exc:
            raise KafkaUnreachableError(f"cannot reach Kafka at {self.bootstrap} ({_reason(exc)})") from None
        self.complaints.started = True


def _reason(exc: BaseException) -> str:
    text = str(exc)  # aiokafka's errors start with their class name already
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


class KafkaComplaints(logging.Handler):
    """The Kafka client's warnings, which it logs about ten times a second while a broker is away, as at most one
    stderr line per ``COMPLAINT_SECONDS``. Silent while a client starts: a failed start is a line of its own."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.started = False
        self._quiet_until = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        if self.started:
            self.complain(record.getMessage())

    def complain(self, message: str) -> None:
        now = time.monotonic()
        if now >= self._quiet_until:
            self._quiet_until = now + COMPLAINT_SECONDS
            _say(f"Kafka: {message}; retrying (nothing is skipped)")

    @contextlib.contextmanager
    def muffling(self, logger_name: str) -> Iterator[None]:
        """Routes ``logger_name``'s records here instead of to the root logger's handlers, for the block."""
        logger = logging.getLogger(logger_name)
        logger.addHandler(self)
        propagate, logger.propagate = logger.propagate, False
        try:
            yield
        finally:
            logger.removeHandler(self)
            logger.propagate = propagate


def _print_json(value: bytes) -> None:
    print(value.decode(errors="replace"), flush=True)


class HumanPrinter:
    """Prints one block per change; colour only on a terminal (rich decides, and honours NO_COLOR)."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(highlight=False, soft_wrap=True)

    def show(self, value: bytes) -> None:
        try:
            text = change_text(orjson.loads(value))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            _say(f"skipping a record that is not a Cognito Streams change ({exc!r})")
            return
        self._console.print(text)


def change_text(change: Mapping[str, Any]) -> Text:
    """One change for a person: a header line (time, identity, dataset, syncCount, operation), then one indented
    line per record, ``replace key = value`` or ``remove key``."""
    text = Text()
    text.append(iso_time(change["lastModifiedDate"]), style="dim")
    text.append(f"  identity {change['identityId']}  dataset {change['dataSetName']}", style="bold")
    text.append(f"  syncCount {change['syncCount']}  ")
    text.append(change["operation"], style=OP_STYLES.get(change["operation"], ""))
    for record in change["kinesisSyncRecords"]:
        text.append("\n    ")
        text.append(record["op"], style=OP_STYLES.get(record["op"], ""))
        text.append(f" {shorten(record['key'])}")
        if record["op"] != "remove":
            text.append(f" = {shorten(record['value'])}")
    return text


def iso_time(epoch_ms: int) -> str:
    """``2025-02-24T17:37:04.343Z`` for epoch milliseconds (UTC)."""
    moment = datetime.datetime.fromtimestamp(epoch_ms // 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{epoch_ms % 1000:03d}Z"


def shorten(value: str | None) -> str:
    """``value`` on one line (control characters escaped), cut to about ``SHORT`` characters; null as ``(null)``."""
    if value is None:
        return "(null)"
    flat = value.translate(_ESCAPES)
    return flat if len(flat) <= SHORT else flat[: SHORT - 1] + "…"


_ESCAPES = {code: repr(chr(code))[1:-1] for code in (*range(0x20), 0x7F)}
