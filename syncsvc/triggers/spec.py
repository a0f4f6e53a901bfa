"""Writing a sync trigger: the whole developer contract of ``syncsvc.triggers``.

A sync trigger is syncsvc's stand-in for the AWS Lambda function behind Cognito Events' ``SyncTrigger``. It is a
Python callable, ``handler(event, context)``, that sees a dataset write and returns what should be stored. An
unmodified Python Lambda handler written for Cognito Sync is a valid trigger.

What works today, and what does not yet
---------------------------------------
* Triggers are **registered** and **checked at start-up** (see *Registering a trigger*), listed by
  ``syncsvc triggers list``, and attached to an identity pool with ``SetCognitoEvents`` (read back with
  ``GetCognitoEvents``).
* Triggers are **not yet called**: UpdateRecords does not run them. Calling them during UpdateRecords, and
  enforcing ``timeout_seconds``, ``max_concurrency`` and ``isolation``, arrives with the trigger runner. Until then
  those options are checked and stored, nothing more. The rest of this page describes the contract handlers are
  written against, so that they work unchanged when the runner lands.

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

To refuse the write, raise :class:`Rejected` with a message for the device; nothing is written.

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

``register`` takes the options of :class:`TriggerSpec`: ``timeout_seconds`` (default 5, as Cognito),
``max_concurrency`` (default 16) and ``isolation`` (``"inline"``: on the server's event loop; ``"thread"``, the
default: in a worker thread; ``"process"``: in a worker process, for which the handler must be a module-level
function). Entry points and ``SYNCSVC_TRIGGERS`` use the defaults. Enforcement comes with the trigger runner.

Attaching a trigger to a pool
-----------------------------
``SetCognitoEvents`` with ``{"Events": {"SyncTrigger": "<name>"}}``. A Lambda ARN
``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` is accepted and stands for ``<name>``, so
existing scripts work unchanged. The name must be registered; ``GetCognitoEvents`` returns the stored name.
An empty value detaches the trigger.

Public names
------------
``SyncTriggerEvent``, ``SyncTriggerRecord``, ``LambdaContext``, ``CognitoIdentity``, ``Rejected``,
``TriggerSpec``, ``Isolation``, ``TriggerSource``, ``TriggerRegistry``, ``TriggerError``.
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
