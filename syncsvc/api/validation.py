"""A request body that breaks its input model, answered in AWS's words.

AWS's front ends check every member against the service model before the operation runs and answer, for Cognito
Identity and KMS ``ValidationException``, for Cognito Sync ``InvalidParameterException``, with one message shape::

    1 validation error detected: Value 'x' at 'keyId' failed to satisfy constraint: Member must have length less
    than or equal to 2048

Several broken members are listed in one message, joined by ``; `` (``2 validation errors detected: …``). Members are
named as AWS names them: the first letter lower-cased, list members as ``recordPatches.1.member.syncCount`` (from 1),
a map as the map itself (``Map value must satisfy constraint: [...]``). SDK users and their test suites match on
these texts, so the constraint sentences are AWS's, not pydantic's.

Other failures keep their own answers: a body that is not JSON, or a member of the wrong JSON type, is a
``SerializationException`` (as AWS answers); a member the model does not have is refused by name (AWS would ignore
it; syncsvc refuses it so a misspelt member is not silently dropped).

Values are quoted as AWS quotes them, with two deliberate differences: binary values (KMS plaintexts, ciphertexts,
messages) are never quoted, and text longer than :data:`QUOTED_CHARACTERS` is cut, so an error can neither echo a
secret nor grow past the request that caused it.
"""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError
from pydantic_core import ErrorDetails

from syncsvc.errors import SerializationError, SyncsvcError
from syncsvc.model import IDENTITY_ID_PATTERN, MAX_DATE_MS

#: A date member of a request (epoch seconds, as the JSON protocols carry one): finite, from 1970 to the latest date
#: the store keeps to the millisecond (``MAX_DATE_MS``), so converting it to stored milliseconds never overflows.
EpochSeconds = Annotated[float, Field(ge=0, le=MAX_DATE_MS / 1000, allow_inf_nan=False)]

#: The longest text quoted from a value that broke a constraint.
QUOTED_CHARACTERS = 256

#: pydantic error types that mean "the JSON value has the wrong type", and what the member should have been.
_TYPE_ERRORS = {
    "model_type": "a structure (JSON object)",
    "model_attributes_type": "a structure (JSON object)",
    "dict_type": "a map (JSON object)",
    "list_type": "a list (JSON array)",
    "string_type": "a string",
    "string_unicode": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "bytes_type": "base64-encoded binary data",
    "bytes_invalid_encoding": "base64-encoded binary data",
    "literal_error_type": "a string",
    "json_type": "JSON",
}
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")
#: AWS writes its patterns as Java regexes, whose ``\w``, ``\s`` and ``\d`` are ASCII; syncsvc's models spell those
#: classes out (``syncsvc.model`` says why). A message quotes AWS's own text, as an SDK user finds it in the API
#: reference: syncsvc's spelling -> AWS's.
AWS_PATTERNS = {
    IDENTITY_ID_PATTERN: r"[\w-]+:[0-9a-f-]+",
    r"[A-Za-z0-9_ \t\n\x0b\f\r+=,.@-]+": r"[\w\s+=,.@-]+",
    r"[A-Za-z0-9_.-]+": r"[\w._-]+",
    r"arn:aws:iam::[0-9]+:role/.*": r"arn:aws:iam::\d+:role/.*",
    r"arn:aws:sns:[-0-9a-z]+:[0-9]+:app/[A-Z_]+/[a-zA-Z0-9_.-]+": (
        r"arn:aws:sns:[-0-9a-z]+:\d+:app/[A-Z_]+/[a-zA-Z0-9_.-]+"
    ),
}


def validation_error(exc: ValidationError, model: type[BaseModel], invalid: type[SyncsvcError]) -> SyncsvcError:
    """The error to answer for ``exc``, raised validating a body as ``model``; ``invalid`` is the surface's class
    for broken constraints (ValidationException or InvalidParameterException)."""
    errors = exc.errors(include_url=False)
    for error in errors:
        if error["type"] == "json_invalid":
            return SerializationError("The request body is not valid JSON")
        if error["type"] in _TYPE_ERRORS:
            path, _ = _member_path(model, error["loc"])
            return SerializationError(f"Value at '{path}' must be {_TYPE_ERRORS[error['type']]}")
    for error in errors:
        if error["type"] == "extra_forbidden":
            return invalid(f"{_dotted(error['loc'])} is not a known member of this request")
    sentences = [_sentence(model, error) for error in errors]
    count = len(sentences)
    return invalid(f"{count} validation error{'s' if count > 1 else ''} detected: {'; '.join(sentences)}")


def _sentence(model: type[BaseModel], error: ErrorDetails) -> str:
    path, in_map = _member_path(model, error["loc"])
    constraint = _constraint(error)
    if in_map is not None:
        constraint = f"Map {in_map} must satisfy constraint: [{constraint}]"
    if error["type"] == "missing":
        return f"Value null at '{path}' failed to satisfy constraint: {constraint}"
    # a blob's error carries its base64 text: never quoted (a plaintext is a secret)
    value = "" if error["type"].startswith("bytes_") else _quoted(error["input"])
    return f"Value{value} at '{path}' failed to satisfy constraint: {constraint}"


def _constraint(error: ErrorDetails) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "Member must not be null"
    if kind.endswith("too_long"):
        return f"Member must have length less than or equal to {context['max_length']}"
    if kind.endswith("too_short"):
        return f"Member must have length greater than or equal to {context['min_length']}"
    if kind in _BOUNDS:
        word, name = _BOUNDS[kind]
        bound = context[name]
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # AWS writes a whole bound as one ("0"), also for a member that takes fractions
        return f"Member must have value {word} {bound}"
    if kind == "literal_error":
        return f"Member must satisfy enum value set: [{', '.join(_QUOTED.findall(str(context['expected'])))}]"
    if kind == "string_pattern_mismatch":
        pattern = str(context["pattern"]).removeprefix("^").removesuffix("$")
        return f"Member must satisfy regular expression pattern: {AWS_PATTERNS.get(pattern, pattern)}"
    if kind == "finite_number":
        return "Member must be a finite number"
    if kind == "value_error":  # a rule of the model's own (a validator): its sentence
        return str(context.get("error", error["msg"]))
    return f"Member must be valid ({error['msg']})"


_BOUNDS = {
    "less_than_equal": ("less than or equal to", "le"),
    "greater_than_equal": ("greater than or equal to", "ge"),
    "less_than": ("less than", "lt"),
    "greater_than": ("greater than", "gt"),
}


def _quoted(value: Any) -> str:
    """`` 'value'`` as AWS quotes it (cut at :data:`QUOTED_CHARACTERS`), or nothing for binary values and
    structures."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, (int, float, str)):
        text = str(value)
    else:
        return ""
    return f" '{text[:QUOTED_CHARACTERS]}{'...' if len(text) > QUOTED_CHARACTERS else ''}'"


def _member_path(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[str, str | None]:
    """AWS's name for the member at ``loc`` (``recordPatches.1.member.syncCount``), and ``"value"`` or ``"keys"``
    when the error is about an entry of a map (then the path names the map)."""
    parts: list[str] = []
    shape: Any = model
    for index, part in enumerate(loc):
        shape = _unwrapped(shape)
        origin = get_origin(shape)
        if isinstance(part, int) and origin is list:
            parts.append(f"{part + 1}.member")
            shape = get_args(shape)[0]
        elif origin is dict:
            return ".".join(parts), "keys" if loc[index + 1 :] == ("[key]",) else "value"
        elif isinstance(shape, type) and issubclass(shape, BaseModel) and isinstance(part, str):
            parts.append(part[:1].lower() + part[1:])
            field = shape.model_fields.get(part)
            shape = field.annotation if field is not None else None
        else:
            parts.append(str(part))
            shape = None
    return ".".join(parts), None


def _unwrapped(shape: Any) -> Any:
    """``shape`` without Annotated[...] and without None in ``X | None``."""
    while True:
        origin = get_origin(shape)
        if origin is Annotated:
            shape = get_args(shape)[0]
        elif origin in (Union, types.UnionType):
            members = [member for member in get_args(shape) if member is not type(None)]
            shape = members[0] if len(members) == 1 else shape
            if len(members) != 1:
                return shape
        else:
            return shape


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
