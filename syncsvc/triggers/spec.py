"""Writing a sync trigger: the whole developer contract of ``syncsvc.triggers``.

A sync trigger is syncsvc's stand-in for the AWS Lambda function behind Cognito Events' ``SyncTrigger``. It is a
Python callable, ``handler(event, context)``, that sees a dataset write and returns what should be stored. An
unmodified Python Lambda handler written for Cognito Sync is a valid trigger.

When a trigger runs
-------------------
Once a pool has a ``SyncTrigger`` (see *Attaching a trigger to a pool*), every UpdateRecords of that pool made with
**identity credentials** passes through it before anything is stored, as in Cognito; writes made with developer
credentials do too when ``SYNCSVC_TRIGGERS_ON_DEVELOPER_WRITES=1``. What the handler returns is what is stored,
streamed to Kafka and answered to the device (the response's ``Records`` are the records as stored, keys the
trigger added included). A dataset merge (identities linked) copies data without triggers.

The handler sees the dataset as it is when the call starts; the write is committed only if the dataset has not
changed since. If another write got in first, the trigger runs again on the new state, up to 3 calls in all, after
which the device gets ResourceConflictException and syncs again. So a handler may run more than once for one
write: keep side effects idempotent. A device that re-sends a request already committed gets the first result
back without a new call.

The handler
-----------
``handler(event, context)``, a plain function or an ``async def`` (``is_async`` is detected at registration). It
must accept two positional arguments; this is checked when it is registered, not when it is first called.

* ``event`` is a :class:`SyncTriggerEvent`, the Cognito SyncTrigger event::

      {"version": 2, "eventType": "SyncTrigger", "region": "us-east-1",
       "identityPoolId": "us-east-1:…", "identityId": "us-east-1:…", "datasetName": "settings",
       "datasetRecords": {"theme": {"oldValue": "dark", "newValue": "light", "op": "replace"}}}

  As in Cognito, ``datasetRecords`` holds **every record of the dataset**, not only the written ones: a key the
  write changes has ``op`` ``"replace"`` (new value in ``newValue``, previous one in ``oldValue``, null for a new
  key) or ``"remove"``; every other record appears with ``op: "replace"`` and ``oldValue == newValue``. Each record
  is a :class:`SyncTriggerRecord`.
* ``context`` is a :class:`LambdaContext`: the attributes a Lambda handler commonly reads (``function_name``,
  ``aws_request_id``, ``invoked_function_arn``, ``memory_limit_in_mb``, ``log_group_name``, ``identity`` …) and
  ``get_remaining_time_in_millis()``.

What the handler returns
------------------------
The event, with ``datasetRecords`` changed as it likes (return the same dict or a new one of the same shape; every
other field must come back unchanged):

* to change a value, set the record's ``newValue`` (and ``op: "replace"``);
* to delete a record, set ``op: "remove"`` **or** ``newValue: null``;
* to add a record, add a key: ``{"newValue": "…", "op": "replace"}``;
* records left out of the returned ``datasetRecords`` are **ignored** (kept as stored, not deleted).

A record answered with ``op: "replace"`` needs a ``newValue``. Only written records are checked against the
limits (key length, value size, records and bytes per dataset); over a limit, the device gets
LimitExceededException naming the trigger. Answering with no change at all (every written key left out) writes
nothing and answers the dataset's current sync count.

To refuse the write, raise :class:`Rejected` with a message for the device; nothing is written.

What the device sees
--------------------
Every failure writes nothing.

* ``Rejected("…")`` → 400 ``InvalidLambdaFunctionOutputException`` with your message (boto3 shows it as is).
* An answer of the wrong shape (not the event, a field other than ``datasetRecords`` changed, added or left out, a
  record that is not ``{"newValue", "op"}``) → the same error, its message naming the problem.
* Any other exception → the same error with a generic message holding the call's request id; the traceback is
  logged with the trigger's name and that id.
* No answer within ``timeout_seconds`` → 429 ``LambdaThrottledException`` (retriable: the SDKs sync again). So is a
  call beyond ``max_concurrency`` calls of the trigger in flight: it is refused at once, not queued.

Where a handler runs
--------------------
``isolation`` of :meth:`~syncsvc.triggers.registry.TriggerRegistry.register`:

* ``"thread"`` (default): a sync handler runs in the trigger's own pool of ``max_concurrency`` threads, so a slow
  or blocking one never stalls the server. An ``async def`` handler is awaited on the server's event loop under
  its timeout (it must not block: it is async). A thread that times out cannot be stopped; it keeps its concurrency
  slot until it returns.
* ``"inline"``: on the event loop. For tiny pure functions only: a sync handler blocks every request while it runs,
  and its timeout is checked when it returns.
* ``"process"``: in worker processes (at most ``max_concurrency``, one warmed at start-up) that are killed and
  replaced when a call exceeds its timeout, loops forever or crashes the interpreter (``os._exit``, a segfault).
  The handler must be a module-level function; the event and the answer cross a pipe as JSON (about 0.1 ms).

Conflict handlers
-----------------
A conflict is a patch whose SyncCount (or version vector) is stale: another device changed the record since this
one last pulled it. What happens is the pool's conflict policy, set with ``SetCognitoEvents`` under the event type
``SyncConflict`` (a syncsvc extension; the AWS SDKs and CLI send it like any event type):

* ``reject`` (the default, Cognito's behaviour): ResourceConflictException (409) with the stored records; the SDK
  pulls, resolves on the device and pushes again.
* ``last-writer-wins``: the version modified later wins, by DeviceLastModifiedDate where the device sent one, else
  by server time (the incoming write counting as now); a tie goes to the incoming write. If the stored version
  wins, the incoming patch is dropped (it is left out of the response's ``Records``).
* the name of a registered trigger: a handler called as ``handler(event, context)`` with a
  :class:`SyncConflictEvent`, ``{"version": 1, "eventType": "SyncConflict", …, "conflicts": {key: {"incoming":
  {op, value, syncCount, deviceLastModifiedDate, versionVector}, "stored": {value, syncCount, lastModifiedDate,
  lastModifiedBy, deviceLastModifiedDate, versionVector} | null}}}`` (dates in epoch ms). It returns
  ``{key: value}`` for the keys it resolves (a string to store, None to delete); a key it leaves out keeps the
  stored version. Raising :class:`Rejected` answers the usual ResourceConflictException, with your message added.
  It runs under the same timeout, concurrency and isolation rules as a sync trigger.

Conflicts are resolved first; the sync trigger then sees the resolved write. A resolved patch is based on the
stored record (its SyncCount, and its version vector merged with the incoming one), so it descends from both.

Registering a trigger
---------------------
Every trigger has a name (``[A-Za-z0-9_.-]{1,64}``, like a Lambda function name). Three sources, all checked when
the server starts (a bad name, an import that fails or a handler with the wrong signature stops the start with one
line naming the problem):

* an **entry point** in the group ``syncsvc.triggers`` of an installed package; the entry point's name is the
  trigger's name::

      [project.entry-points."syncsvc.triggers"]
      validate = "mypackage.triggers:validate"

* the setting ``SYNCSVC_TRIGGERS="name=package.module:function,other=package.module:function"``;
* **code**, when embedding syncsvc (and in tests): build a :class:`~syncsvc.triggers.registry.TriggerRegistry`,
  ``register(name, handler, …)`` on it, and pass it to ``syncsvc.api.app.create_app(settings, triggers=…)``.

A name may be registered once across all three sources. A registration that fails a check raises
``TriggerError``, whose message is one line naming the trigger and the problem.

``register`` takes the options of :class:`TriggerSpec`: ``timeout_seconds`` (default 5, as Cognito, at most 900),
``max_concurrency`` (default 16) and ``isolation`` (see *Where a handler runs*). Entry points and
``SYNCSVC_TRIGGERS`` use the defaults. The names ``reject`` and ``last-writer-wins`` are reserved (conflict
policies).

Attaching a trigger to a pool
-----------------------------
``SetCognitoEvents`` with ``{"Events": {"SyncTrigger": "<name>"}}``. A Lambda ARN
``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` is accepted and stands for ``<name>``, so
existing scripts work unchanged. The name must be registered; ``GetCognitoEvents`` returns the stored name.
An empty value detaches the trigger. ``GetCognitoEvents`` and ``SetCognitoEvents`` need developer credentials.

Seeing what triggers do
-----------------------
``SYNCSVC_TRACE_TRIGGERS=1`` logs every call on the ``syncsvc.triggers`` logger: trigger, request id, outcome,
duration, input and output, with record values shown as their length (``"<5 chars>"``);
``SYNCSVC_TRACE_TRIGGER_VALUES=1`` logs the values themselves (they are user data: use it in development only).

Public names
------------
``SyncTriggerEvent``, ``SyncTriggerRecord``, ``SyncConflictEvent``, ``Conflict``, ``IncomingVersion``,
``StoredVersion``, ``LambdaContext``, ``CognitoIdentity``, ``Rejected``, ``TriggerSpec``, ``Isolation``,
``TriggerSource``, ``TriggerRegistry``, ``TriggerError``, ``REJECT``, ``LAST_WRITER_WINS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

#: Where a trigger runs (see *Where a handler runs*).
Isolation = Literal["inline", "thread", "process"]
#: The conflict policies that need no code (``SetCognitoEvents`` ``{"SyncConflict": …}``); no trigger may take
#: these names.
REJECT = "reject"
LAST_WRITER_WINS = "last-writer-wins"
#: Where a registration came from, as ``syncsvc triggers list`` shows it.
TriggerSource = Literal["entry point", "SYNCSVC_TRIGGERS", "code"]


class SyncTriggerRecord(TypedDict):
    """One record of ``SyncTriggerEvent.datasetRecords``. ``oldValue`` may be left out of a record a handler adds."""

    oldValue: NotRequired[str | None]
    newValue: str | None
    op: Literal["replace", "remove"]


class SyncTriggerEvent(TypedDict):
    """The Cognito SyncTrigger event (version 2); ``datasetRecords`` maps each key to its record."""

    version: int
    eventType: Literal["SyncTrigger"]
    region: str
    identityPoolId: str
    identityId: str
    datasetName: str
    datasetRecords: dict[str, SyncTriggerRecord]


class IncomingVersion(TypedDict):
    """The version of a record a conflicting write brings (``SyncConflictEvent.conflicts[key]["incoming"]``)."""

    op: Literal["replace", "remove"]
    value: str | None
    syncCount: int
    deviceLastModifiedDate: int | None
    versionVector: dict[str, int] | None


class StoredVersion(TypedDict):
    """The version of a record as stored (``SyncConflictEvent.conflicts[key]["stored"]``); dates in epoch ms."""

    value: str | None
    syncCount: int
    lastModifiedDate: int
    lastModifiedBy: str
    deviceLastModifiedDate: int | None
    versionVector: dict[str, int]


class Conflict(TypedDict):
    incoming: IncomingVersion
    stored: StoredVersion | None


class SyncConflictEvent(TypedDict):
    """What a conflict handler is given (version 1): the conflicting keys with both versions."""

    version: int
    eventType: Literal["SyncConflict"]
    region: str
    identityPoolId: str
    identityId: str
    datasetName: str
    conflicts: dict[str, Conflict]


@dataclass(frozen=True, slots=True)
class CognitoIdentity:
    """``context.identity`` of a Lambda invoked by Cognito: the writing identity and its pool."""

    cognito_identity_id: str
    cognito_identity_pool_id: str


@dataclass(frozen=True, slots=True)
class LambdaContext:
    """The ``context`` argument: the Lambda context attributes Cognito handlers commonly read.

    ``deadline`` is a :func:`time.monotonic` instant; ``get_remaining_time_in_millis()`` counts down to it.
    ``client_context`` is always None (Cognito passes none to sync triggers).
    """

    function_name: str
    aws_request_id: str
    invoked_function_arn: str
    deadline: float
    identity: CognitoIdentity | None = None
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    log_group_name: str = ""
    log_stream_name: str = ""
    client_context: None = None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the trigger's timeout (0 once it has passed)."""
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class Rejected(Exception):  # noqa: N818 - the name reads as the outcome: ``raise Rejected("…")``
    """Raised by a handler to refuse the write; ``message`` is what the device is told."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """A registered trigger: its name, the callable, and the options it was registered with.

    Build one with :meth:`~syncsvc.triggers.registry.TriggerRegistry.register`, which checks every field.
    """

    name: str
    handler: Callable[..., Any] = field(repr=False)
    is_async: bool
    timeout_seconds: float = 5.0
    max_concurrency: int = 16
    isolation: Isolation = "thread"
    source: TriggerSource = "code"

    @property
    def target(self) -> str:
        """``module:qualname`` of the handler, for listings and logs."""
        module = getattr(self.handler, "__module__", None) or "?"
        qualname = getattr(self.handler, "__qualname__", None) or type(self.handler).__qualname__
        return f"{module}:{qualname}"
