"""The trigger registry: every trigger a server knows, by name, each checked when it is registered.

Sources (see :mod:`syncsvc.triggers.spec`): code (:meth:`TriggerRegistry.register`), the entry point group
``syncsvc.triggers`` and ``SYNCSVC_TRIGGERS``. :func:`load_registry` builds what a server runs with; every problem
is a :class:`TriggerError` whose ``str()`` is one line for the operator.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, get_args

from syncsvc.triggers.spec import LAST_WRITER_WINS, REJECT, Isolation, TriggerSource, TriggerSpec

ENTRY_POINT_GROUP = "syncsvc.triggers"
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: ``module.path:attribute.path``
TARGET = re.compile(r"([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)")
LAMBDA_ARN = re.compile(
    r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:([A-Za-z0-9_-]{1,64})(?::[A-Za-z0-9_$-]+)?"
)
#: Longest timeout a trigger may ask for (Lambda's own maximum).
MAX_TIMEOUT_SECONDS = 900.0


class TriggerError(Exception):
    """A trigger cannot be registered or found; ``str()`` is one line naming the trigger and the problem."""


class TriggerRegistry:
    """Triggers by name. ``TriggerRegistry(specs)`` starts from already checked specs (e.g. another registry)."""

    def __init__(self, specs: Iterable[TriggerSpec] = ()) -> None:
        self._specs: dict[str, TriggerSpec] = {}
        for spec in specs:
            self._add(spec)

    def __iter__(self) -> Iterator[TriggerSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def register(
        self,
        name: str,
        handler: Callable[..., Any],
        *,
        timeout_seconds: float = 5.0,
        max_concurrency: int = 16,
        isolation: Isolation = "thread",
        source: TriggerSource = "code",
    ) -> TriggerSpec:
        """Checks and registers ``handler`` as trigger ``name``; returns its spec. TriggerError on any problem."""
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise TriggerError(f"trigger name {name!r} is invalid: use 1-64 of letters, digits, '_', '.' and '-'")
        if name in (REJECT, LAST_WRITER_WINS):
            raise TriggerError(f"trigger name {name!r} is reserved: it is a conflict policy that needs no code")
        spec = TriggerSpec(
            name=name,
            handler=handler,
            is_async=_check_handler(name, handler),
            timeout_seconds=_check_timeout(name, timeout_seconds),
            max_concurrency=_check_concurrency(name, max_concurrency),
            isolation=_check_isolation(name, isolation, handler),
            source=source,
        )
        self._add(spec)
        return spec

    def get(self, name: str) -> TriggerSpec:
        """The trigger registered as ``name``; TriggerError when there is none."""
        spec = self._specs.get(name)
        if spec is None:
            raise TriggerError(f"no trigger is registered as {name!r}")
        return spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Registers every entry point of ``group`` (its name is the trigger's name) with the default options."""
        for entry in importlib.metadata.entry_points(group=group):
            where = f"entry point {entry.name!r} ({entry.value})"
            try:
                handler = entry.load()
            except Exception as exc:
                raise TriggerError(f"trigger {where} cannot be loaded: {_one_line(exc)}") from exc
            self.register(entry.name, handler, source="entry point")

    def load_specs(self, text: str) -> None:
        """Registers the triggers of a ``SYNCSVC_TRIGGERS`` value: ``name=package.module:function,…``."""
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, target = (part.strip() for part in item.partition("="))
            if not sep or not name or not target:
                raise TriggerError(f"SYNCSVC_TRIGGERS entry {item!r} must look like name=package.module:function")
            self.register(name, import_target(target, f"trigger {name!r}"), source="SYNCSVC_TRIGGERS")

    def resolve(self, value: str) -> str:
        """The registered trigger name a SetCognitoEvents value stands for (a name, or a Lambda ARN of one)."""
        name = resolve_arn(value)
        self.get(name)
        return name

    def _add(self, spec: TriggerSpec) -> None:
        known = self._specs.get(spec.name)
        if known is not None:
            raise TriggerError(
                f"trigger {spec.name!r} is registered twice ({_origin(known)} and {_origin(spec)}); names are unique"
            )
        self._specs[spec.name] = spec


def resolve_arn(value: str) -> str:
    """``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` → ``<name>``; anything else is itself."""
    found = LAMBDA_ARN.fullmatch(value)
    return found.group(1) if found else value


def import_target(target: str, what: str) -> Callable[..., Any]:
    """Imports ``package.module:attribute`` (the attribute may be dotted); TriggerError naming ``what`` if it fails."""
    if not TARGET.fullmatch(target):
        raise TriggerError(f"{what}: {target!r} is not an import path like package.module:function")
    module_name, _, attribute = target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise TriggerError(f"{what}: cannot import {module_name!r}: {_one_line(exc)}") from exc
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise TriggerError(f"{what}: {module_name!r} has no attribute {attribute!r}") from None
    if not callable(found):
        raise TriggerError(f"{what}: {target} is not callable")
    return found  # type: ignore[no-any-return]


def load_registry(specs: str, *, base: TriggerRegistry | None = None) -> TriggerRegistry:
    """What a server runs with: the code registrations of ``base`` (not changed), entry points, then ``specs``."""
    registry = TriggerRegistry(base or ())
    registry.load_entry_points()
    registry.load_specs(specs)
    return registry


# --- checks ---------------------------------------------------------------------------------------------------------


def _check_handler(name: str, handler: Callable[..., Any]) -> bool:
    """Checks that ``handler`` can be called as ``handler(event, context)``; returns whether it is async."""
    if not callable(handler):
        raise TriggerError(f"trigger {name!r}: the handler is not callable ({type(handler).__name__})")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError) as exc:
        raise TriggerError(f"trigger {name!r}: cannot read the handler's signature: {_one_line(exc)}") from None
    try:
        signature.bind(object(), object())
    except TypeError:
        raise TriggerError(
            f"trigger {name!r}: the handler must accept (event, context); its signature is {signature}"
        ) from None
    call = getattr(handler, "__call__", None)  # noqa: B004 - a callable object's async __call__
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


def _check_timeout(name: str, seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise TriggerError(f"trigger {name!r}: timeout_seconds must be above 0 and at most {MAX_TIMEOUT_SECONDS:g}")
    return float(seconds)


def _check_concurrency(name: str, limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise TriggerError(f"trigger {name!r}: max_concurrency must be a whole number of at least 1")
    return limit


def _check_isolation(name: str, isolation: str, handler: Callable[..., Any]) -> Isolation:
    choices: tuple[Isolation, ...] = get_args(Isolation)
    if isolation not in choices:
        raise TriggerError(f"trigger {name!r}: isolation must be one of {', '.join(choices)}, not {isolation!r}")
    if isolation == "process" and not _importable_by_name(handler):
        raise TriggerError(f"trigger {name!r}: process isolation needs a module-level function (a worker imports it)")
    return isolation


def _importable_by_name(handler: Callable[..., Any]) -> bool:
    module = getattr(handler, "__module__", None)
    qualname = getattr(handler, "__qualname__", None)
    if not inspect.isfunction(handler) or not module or not qualname or module == "__main__":
        return False
    return "<" not in qualname


def _origin(spec: TriggerSpec) -> str:
    return f"{spec.source}: {spec.target}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
