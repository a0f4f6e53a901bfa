"""The trigger registry: every registration is checked when it is made (no server, no Redis)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from syncsvc.triggers import LambdaContext, Rejected, TriggerError, TriggerRegistry
from syncsvc.triggers.registry import load_registry, resolve_arn
from tests import trigger_examples


def test_a_sync_handler_is_registered_with_the_default_options() -> None:
    registry = TriggerRegistry()
    spec = registry.register("validate", trigger_examples.validate)
    assert (spec.name, spec.is_async, spec.timeout_seconds, spec.max_concurrency, spec.isolation, spec.source) == (
        "validate",
        False,
        5.0,
        16,
        "thread",
        "code",
    )
    assert spec.target == "tests.trigger_examples:validate"
    assert registry.get("validate") is spec
    assert registry.names() == ["validate"]


def test_an_async_handler_is_registered_as_async() -> None:
    spec = TriggerRegistry().register("upper", trigger_examples.uppercase, timeout_seconds=1, isolation="inline")
    assert (spec.is_async, spec.timeout_seconds, spec.isolation) == (True, 1.0, "inline")


def test_a_callable_object_with_an_async_call_is_async() -> None:
    class Handler:
        async def __call__(self, event: Any, context: Any) -> Any:
            return event

    assert TriggerRegistry().register("object", Handler()).is_async


def test_an_unmodified_lambda_handler_is_accepted() -> None:
    spec = TriggerRegistry().register("lambda", trigger_examples.lambda_handler, isolation="process")
    assert spec.isolation == "process"


@pytest.mark.parametrize("name", ["", "has space", "a" * 65, "x/y", "é"])
def test_a_bad_name_is_refused(name: str) -> None:
    with pytest.raises(TriggerError) as caught:
        TriggerRegistry().register(name, trigger_examples.validate)
    assert str(caught.value) == (f"trigger name {name!r} is invalid: use 1-64 of letters, digits, '_', '.' and '-'")


def test_a_handler_without_a_context_parameter_is_refused() -> None:
    with pytest.raises(TriggerError) as caught:
        TriggerRegistry().register("short", trigger_examples.no_context)
    assert str(caught.value) == (
        "trigger 'short': the handler must accept (event, context); its signature is "
        "(event: 'SyncTriggerEvent') -> 'SyncTriggerEvent'"
    )


def test_something_not_callable_is_refused() -> None:
    with pytest.raises(TriggerError) as caught:
        TriggerRegistry().register("text", trigger_examples.NOT_CALLABLE)  # type: ignore[arg-type]
    assert str(caught.value) == "trigger 'text': the handler is not callable (str)"


def test_a_name_is_registered_once() -> None:
    registry = TriggerRegistry()
    registry.register("validate", trigger_examples.validate)
    with pytest.raises(TriggerError) as caught:
        registry.register("validate", trigger_examples.uppercase)
    assert str(caught.value) == (
        "trigger 'validate' is registered twice (code: tests.trigger_examples:validate and "
        "code: tests.trigger_examples:uppercase); names are unique"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout_seconds": 0}, "trigger 'v': timeout_seconds must be above 0 and at most 900"),
        ({"timeout_seconds": 901}, "trigger 'v': timeout_seconds must be above 0 and at most 900"),
        ({"max_concurrency": 0}, "trigger 'v': max_concurrency must be a whole number of at least 1"),
        ({"max_concurrency": 1.5}, "trigger 'v': max_concurrency must be a whole number of at least 1"),
        ({"isolation": "fork"}, "trigger 'v': isolation must be one of inline, thread, process, not 'fork'"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(TriggerError) as caught:
        TriggerRegistry().register("v", trigger_examples.validate, **options)
    assert str(caught.value) == message


def test_process_isolation_needs_a_module_level_function() -> None:
    def local(event: Any, context: Any) -> Any:
        return event

    with pytest.raises(TriggerError) as caught:
        TriggerRegistry().register("local", local, isolation="process")
    assert str(caught.value) == (
        "trigger 'local': process isolation needs a module-level function (a worker imports it)"
    )


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("validate", "validate"),
        ("arn:aws:lambda:us-east-1:123456789012:function:validate", "validate"),
        ("arn:aws:lambda:eu-west-1:123456789012:function:my-fn:prod", "my-fn"),
        ("arn:aws:lambda:us-east-1:123456789012:function:my_fn:$LATEST", "my_fn"),
        ("arn:aws:sns:us-east-1:123456789012:topic", "arn:aws:sns:us-east-1:123456789012:topic"),
    ],
)
def test_a_lambda_arn_resolves_to_its_function_name(value: str, name: str) -> None:
    assert resolve_arn(value) == name


def test_resolve_needs_a_registered_trigger() -> None:
    registry = TriggerRegistry()
    registry.register("validate", trigger_examples.validate)
    assert registry.resolve("arn:aws:lambda:us-east-1:123456789012:function:validate") == "validate"
    with pytest.raises(TriggerError) as caught:
        registry.resolve("arn:aws:lambda:us-east-1:123456789012:function:other")
    assert str(caught.value) == "no trigger is registered as 'other'"


def test_syncsvc_triggers_registers_each_entry() -> None:
    registry = TriggerRegistry()
    registry.load_specs(" validate = tests.trigger_examples:validate , upper=tests.trigger_examples:uppercase,")
    assert [(spec.name, spec.source, spec.target) for spec in registry] == [
        ("validate", "SYNCSVC_TRIGGERS", "tests.trigger_examples:validate"),
        ("upper", "SYNCSVC_TRIGGERS", "tests.trigger_examples:uppercase"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("validate", "SYNCSVC_TRIGGERS entry 'validate' must look like name=package.module:function"),
        (
            "=tests.trigger_examples:validate",
            "SYNCSVC_TRIGGERS entry '=tests.trigger_examples:validate' must look like name=package.module:function",
        ),
        (
            "v=tests.trigger_examples",
            "trigger 'v': 'tests.trigger_examples' is not an import path like package.module:function",
        ),
        (
            "v=tests.no_such_module:f",
            "trigger 'v': cannot import 'tests.no_such_module': ModuleNotFoundError: "
            "No module named 'tests.no_such_module'",
        ),
        ("v=tests.trigger_examples:missing", "trigger 'v': 'tests.trigger_examples' has no attribute 'missing'"),
        ("v=tests.trigger_examples:NOT_CALLABLE", "trigger 'v': tests.trigger_examples:NOT_CALLABLE is not callable"),
        (
            "v=tests.trigger_examples:no_context",
            "trigger 'v': the handler must accept (event, context); its "
            "signature is (event: 'SyncTriggerEvent') -> 'SyncTriggerEvent'",
        ),
        (
            "bad name=tests.trigger_examples:validate",
            "trigger name 'bad name' is invalid: use 1-64 of letters, digits, '_', '.' and '-'",
        ),
    ],
)
def test_a_bad_syncsvc_triggers_entry_fails_with_one_line(text: str, message: str) -> None:
    with pytest.raises(TriggerError) as caught:
        TriggerRegistry().load_specs(text)
    assert str(caught.value) == message
    assert "\n" not in message


def test_load_registry_adds_to_code_registrations_without_changing_them() -> None:
    code = TriggerRegistry()
    code.register("validate", trigger_examples.validate)
    loaded = load_registry("upper=tests.trigger_examples:uppercase", base=code)
    assert loaded.names() == ["upper", "validate"]
    assert code.names() == ["validate"]


def test_the_context_counts_down_to_its_deadline() -> None:
    context = LambdaContext(
        function_name="validate",
        aws_request_id="r-1",
        invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:validate",
        deadline=time.monotonic() + 5,
    )
    assert 4000 < context.get_remaining_time_in_millis() <= 5000
    assert LambdaContext("v", "r", "arn", deadline=time.monotonic() - 1).get_remaining_time_in_millis() == 0


def test_rejected_carries_its_message() -> None:
    assert Rejected("too long").message == "too long"
