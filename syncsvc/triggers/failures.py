"""How a trigger call can fail without an answer the handler meant (its own refusal is :class:`~spec.Rejected`).

The runner turns each into the error the device sees (reference §2.2): a timeout is LambdaThrottledException (429,
retriable); everything else is InvalidLambdaFunctionOutputException. ``str()`` of a failure is written to the log,
never sent to the device: it may hold a traceback or values.
"""

from __future__ import annotations


class TriggerFailure(Exception):  # noqa: N818 - read as outcomes: TriggerTimeout, TriggerCrashed
    """A trigger call produced no usable output."""


class TriggerTimeout(TriggerFailure):
    """The handler did not answer within its ``timeout_seconds``."""


class TriggerCrashed(TriggerFailure):
    """The worker process running the handler died before answering (``os._exit``, a signal, a fatal error)."""


class TriggerRaised(TriggerFailure):
    """The handler raised an exception other than ``Rejected``; ``str()`` is the formatted traceback."""


class TriggerOutputError(TriggerFailure):
    """The handler returned something that cannot be its answer; ``str()`` names the problem (safe to show)."""
