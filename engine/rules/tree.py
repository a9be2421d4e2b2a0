"""The typed tree of a condition: small frozen dataclasses, each knowing where it was written.

Runs of one operator are n-ary (``a and b and c`` is one :class:`And`; ``a + b - c`` one
:class:`Arith` evaluated left to right), so long conditions make wide trees, not deep ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Pos:
    """Where a node was written: 1-based line and column, and character offsets into the
    condition (``text[start:end]`` is the node's source)."""

    line: int
    column: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Attr:
    """``:name:`` — an attribute of the catalogue."""

    name: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class ListRef:
    """``@name`` — a named list."""

    name: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class Number:
    """A number literal, exact."""

    value: Decimal
    pos: Pos


@dataclass(frozen=True, slots=True)
class Text:
    """A ``'string'`` literal (``''`` inside it is one quote)."""

    value: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class Boolean:
    """``true`` or ``false``."""

    value: bool
    pos: Pos


Literal = Number | Text | Boolean


@dataclass(frozen=True, slots=True)
class Arith:
    """``operands[0] ops[0] operands[1] ops[1] ...`` evaluated left to right; the operators of
    one node share a precedence level (``+ -`` or ``* /``)."""

    operands: tuple[Expr, ...]
    ops: tuple[str, ...]
    pos: Pos


@dataclass(frozen=True, slots=True)
class Neg:
    """``-operand``."""

    operand: Expr
    pos: Pos


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right`` with op one of ``= != < <= > >=``."""

    op: str
    left: Expr
    right: Expr
    pos: Pos


@dataclass(frozen=True, slots=True)
class Member:
    """``value in target`` (``not in`` when ``negated``); the target is a list or a literal
    tuple."""

    value: Expr
    target: ListRef | tuple[Literal, ...]
    negated: bool
    pos: Pos


@dataclass(frozen=True, slots=True)
class Not:
    """``not operand``."""

    operand: Expr
    pos: Pos


@dataclass(frozen=True, slots=True)
class And:
    """``operands[0] and operands[1] and ...``."""

    operands: tuple[Expr, ...]
    pos: Pos


@dataclass(frozen=True, slots=True)
class Or:
    """``operands[0] or operands[1] or ...``."""

    operands: tuple[Expr, ...]
    pos: Pos


Expr = Attr | Number | Text | Boolean | Arith | Neg | Compare | Member | Not | And | Or
