"""The one mapping from a pydantic validation error to a field and a message written for people.

The API (bodies, query parameters, headers), the configuration, the CLI and the dashboard forms
all report validation errors through :func:`describe`, so a mistake reads the same everywhere:
the field, then what it must be ("Field 'amount' must be greater than 0."). Messages never repeat
the input (it may hold a card number) and never carry library wording ("Value error, ...",
"dictionary", "instance of").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

# Location parts FastAPI adds in front of a field's name: where in the request it came from.
_REQUEST_PARTS = ("body", "query", "path")
# An unknown key is named only when it looks like a field name (no run of 4+ digits): the key
# is client input and may be a card number.
_NAMEABLE = re.compile(r"^(?!.*[0-9]{4})[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_DATETIME = "must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z"
_NUMBER = "must be a number"
_WHOLE = "must be a whole number"
_OBJECT = "must be a JSON object"
_LIST = "must be a list"

# What a field must be, by pydantic error type; ``{name}`` reads the error's context.
_RULES: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "is unknown",
    "string_too_long": "must have at most {max_length} characters",
    "string_pattern_mismatch": "is not in the accepted format",
    "string_type": "must be a string",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "multiple_of": "must be a multiple of {multiple_of}",
    "decimal_max_places": "must have at most {decimal_places} decimal places",
    "decimal_max_digits": "must have at most {max_digits} digits",
    "decimal_whole_digits": "must have at most {whole_digits} digits before the point",
    "finite_number": "must be a finite number",
    "int_parsing": _WHOLE,
    "int_type": _WHOLE,
    "int_from_float": _WHOLE,
    "float_parsing": _NUMBER,
    "float_type": _NUMBER,
    "decimal_parsing": _NUMBER,
    "decimal_type": _NUMBER,
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "dict_type": _OBJECT,
    "model_type": _OBJECT,
    "model_attributes_type": _OBJECT,
    "list_type": _LIST,
    "tuple_type": _LIST,
    "set_type": _LIST,
    "datetime_parsing": _DATETIME,
    "datetime_type": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    "timedelta_parsing": "must be an ISO 8601 duration such as PT24H",
    "timedelta_type": "must be an ISO 8601 duration such as PT24H",
    "uuid_parsing": "must be a UUID",
    "uuid_type": "must be a UUID",
    "json_invalid": "is not valid JSON",
    "content_type": "must be JSON, sent with 'Content-Type: application/json'",
    "recursion_loop": "is nested too deeply",
}
_LIBRARY_PREFIXES = ("Value error, ", "Assertion failed, ")

# The patterns fields are checked against, each with what it means for a person: models use
# these constants, so a pattern and its explanation cannot drift apart.
DIGITS = r"^[0-9]+$"
PRINTABLE_ASCII = r"^[\x21-\x7e]+$"
NOT_ONLY_WHITESPACE = r"[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
MEMORY_SIZE = r"^\s*\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$"
# Decimal text as the API accepts it: ASCII digits, an optional sign, point and exponent.
# Python's Decimal() also reads "1_000" and non-ASCII digits ("١٢"), which no client means.
DECIMAL_TEXT = re.compile(
    r"[ \t]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t]*", re.ASCII
)
DECIMAL_TEXT_RULE = "must be a decimal number written with the digits 0-9"
_PATTERN_RULES = {
    DIGITS: "must hold digits only",
    PRINTABLE_ASCII: "must be printable ASCII without spaces",
    NOT_ONLY_WHITESPACE: "must not be only whitespace",
    MEMORY_SIZE: "must be a size such as 512MB or 2GB",
}


def plain_decimal_text(value: object) -> object:
    """``value`` unchanged, or ``ValueError`` when it is a string that is not plain ASCII decimal
    text (a ``mode="before"`` validator for money fields)."""
    if isinstance(value, str) and not DECIMAL_TEXT.fullmatch(value):
        raise ValueError(DECIMAL_TEXT_RULE)
    return value


def quoted_field(field: str) -> str:
    """How the API and the dashboard name a field in a message: ``Field 'amount'``."""
    return "The request body" if field == "body" else f"Field '{field}'"


def describe(
    error: Mapping[str, Any],
    *,
    root: str = "body",
    prefix: tuple[str, ...] = (),
    name: Callable[[str], str] = quoted_field,
) -> tuple[str, str]:
    """``(field, message)`` for one pydantic error (an item of ``ValidationError.errors()``).

    ``field`` is the dotted location with request parts (``body``, ``query``, ``path``) and list
    indices left out, under ``prefix`` (``root`` when the error is about the whole input);
    headers are named as sent (``Idempotency-Key``). ``message`` is one sentence starting with
    ``name(field)``: the API says "Field 'amount' ...", the CLI "--rows ...", the configuration
    "PTSIM_API_PORT ...".
    """
    kind = str(error.get("type", ""))
    field = _field(tuple(error.get("loc", ())), prefix, root)
    if kind == "extra_forbidden" and not _NAMEABLE.match(field):
        return root, f"{name(root)} has an unknown field."
    context = error.get("ctx") or {}
    if kind == "value_error" and field == root and "error" in context:
        # A check of the whole input (a model validator) says in its own sentence what is wrong.
        return field, _own_words(str(context["error"])) + "."
    return field, f"{name(field)} {_problem(kind, error)}."


class _Errors(Protocol):
    """pydantic's ValidationError, or FastAPI's RequestValidationError."""

    def errors(self) -> Sequence[Any]: ...


def describe_first(exc: _Errors, **options: Any) -> tuple[str, str]:
    """:func:`describe` of the first error of ``exc`` (the one a person fixes first)."""
    errors = exc.errors()
    return describe(errors[0] if errors else {}, **options)


def _field(loc: tuple[Any, ...], prefix: tuple[str, ...], root: str) -> str:
    parts = [str(part) for part in loc if not isinstance(part, int)]
    if len(parts) == 2 and parts[0] == "header":  # ('header', 'idempotency-key')
        return "-".join(word.capitalize() for word in parts[1].split("-"))
    if parts and parts[0] in _REQUEST_PARTS:
        parts = parts[1:]
    return ".".join((*prefix, *parts)) or root


def _problem(kind: str, error: Mapping[str, Any]) -> str:
    """What the field must be, as a phrase that follows its name."""
    context = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in context:
        return _own_words(str(context["error"]))  # our validators' messages, written as phrases
    if kind == "string_pattern_mismatch" and context.get("pattern") in _PATTERN_RULES:
        return _PATTERN_RULES[context["pattern"]]
    if kind == "string_too_short":
        minimum = context.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must have at least {minimum} characters"
    if kind in _RULES:
        try:
            return _RULES[kind].format(**context)
        except (KeyError, IndexError):
            pass
    return "is invalid: " + _own_words(str(error.get("msg", "invalid value")))


def _own_words(message: str) -> str:
    """A validator's message without pydantic's prefixes (and no trailing full stop)."""
    for library_prefix in _LIBRARY_PREFIXES:
        message = message.removeprefix(library_prefix)
    return message.rstrip(".")
