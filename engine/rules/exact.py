"""What both evaluators share: exact comparisons, operand types, BIN literals.

A bare money or integer attribute compared with a literal is compared exactly, as integers: the
literal is scaled to the attribute's minor units as a fraction and the comparison rewritten to
an integer threshold (``:amount: > 500.005`` is ``cents > 50000``). Everything else numeric is
float64 arithmetic, identical in numpy and in DuckDB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from engine.rules import tree as t
from engine.rules.catalogue import CATALOGUE

LIMIT = 2**62
"""Thresholds are clamped to ±2^62: every value is far smaller, so clamping changes no result
and keeps every integer an int64 (and a DuckDB BIGINT)."""

FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}


@dataclass(frozen=True, slots=True)
class Threshold:
    """``value op k`` on an exact attribute's integer minor units. ``op`` is a comparison, or
    ``never`` (false on every row) or ``present`` (true wherever the value is not missing)."""

    op: str
    k: int = 0


def threshold(op: str, literal: Fraction) -> Threshold:
    """``x op literal`` for an integer ``x``, as an integer comparison."""
    floor, ceil = math.floor(literal), math.ceil(literal)
    if op == "=":
        return Threshold("=", _clamp(floor)) if floor == ceil else Threshold("never")
    if op == "!=":
        return Threshold("!=", _clamp(floor)) if floor == ceil else Threshold("present")
    k = {">": floor, ">=": ceil, "<": ceil, "<=": floor}[op]
    return Threshold(op, _clamp(k))


def _clamp(k: int) -> int:
    return max(-LIMIT, min(LIMIT, k))


def exact_scale(node: t.Expr) -> int | None:
    """The scale of a bare exact attribute (2 for money, 0 for integers), else None."""
    if isinstance(node, t.Attr):
        return CATALOGUE[node.name].scale
    return None


def compare_constants(op: str, left: object, right: object) -> bool:
    """A comparison of two literals (numbers exactly, text or bools)."""
    return {
        "=": left == right,
        "!=": left != right,
        "<": left < right,  # type: ignore[operator]
        "<=": left <= right,  # type: ignore[operator]
        ">": left > right,  # type: ignore[operator]
        ">=": left >= right,  # type: ignore[operator]
    }[op]


def is_arithmetic(node: t.Expr) -> bool:
    """Arithmetic results can overflow to ±inf or NaN; a comparison with one is false."""
    return isinstance(node, t.Arith | t.Neg)


def bin_number(text: str) -> int | None:
    """A six-digit BIN literal as the integer the store keeps, or None (it can never match)."""
    if len(text) == 6 and text.isascii() and text.isdigit():
        return int(text)
    return None


def operand_type(node: t.Expr) -> str:
    """The type of a checked operand (comparisons, memberships and bool literals are bools)."""
    match node:
        case t.Attr(name=name):
            return CATALOGUE[name].type
        case t.Number() | t.Arith() | t.Neg():
            return "number"
        case t.Text():
            return "text"
    return "bool"
