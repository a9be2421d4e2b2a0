"""The SQL compiler: a checked condition as a DuckDB boolean expression over stored rows.

It follows ``docs/rules.md`` exactly as the numpy evaluator does. Every value written in a rule
is a bound parameter (named ``$<prefix><n>``) or an integer this module computed itself; no text
of a rule reaches SQL, and list names only reach the caller's ``membership_sql``. A comparison
with a possibly missing operand is NULL there; ``coalesce(..., FALSE)`` makes it false wherever
NULL would not already read as false (see :meth:`SqlCompiler.condition`).

This module only writes SQL text; the store layer runs it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from engine.rules import exact
from engine.rules import tree as t
from engine.rules.catalogue import BIN_ATTRIBUTE, CATALOGUE
from engine.rules.lists import ListSpec, card_bytes, sorted_bins

MembershipSql = Callable[[str, str], tuple[str, dict[str, Any]]]
"""``membership_sql(list_name, value_sql) -> (sql, params)``: a boolean expression true when
``value_sql`` is in the named list. ``value_sql`` is a UUID for card lists, an INTEGER (the BIN
as a number) for bin lists and a VARCHAR otherwise. Its parameter names must not start with the
compiler's own form ``<prefix><digits>``."""

_FALSE, _TRUE = "FALSE", "TRUE"


def default_membership_sql(lists: Mapping[str, ListSpec], prefix: str) -> MembershipSql:
    """Membership that binds each list's items as one DuckDB list parameter (``$<prefix><i>``)
    and tests ``value IN (SELECT unnest(...))`` (a hash semi-join). Fine for tests and small
    lists; a stored list table joins the same way (see ``benchmarks/bench_rules.py``)."""
    names = {name: i for i, name in enumerate(sorted(lists))}

    def membership(list_name: str, value_sql: str) -> tuple[str, dict[str, Any]]:
        spec = lists[list_name]
        items: list[Any]
        if spec.kind == "card":
            items = [uuid.UUID(bytes=card_bytes(item)) for item in spec.items]
        elif spec.kind == "bin":
            items = sorted_bins(spec.items).tolist()
        else:
            items = [str(item) for item in spec.items]
        if not items:
            return _FALSE, {}
        param = f"{prefix}{names[list_name]}"
        return f"({value_sql} IN (SELECT unnest(${param})))", {param: items}

    return membership


def money_literal(cents: int) -> str:
    """Integer hundredths as a DuckDB DECIMAL literal (``-0.05``, ``500.00``)."""
    units, hundredths = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{units}.{hundredths:02d}"


class SqlCompiler:
    """Compiles checked conditions; collects the parameters they bind in :attr:`params`."""

    def __init__(
        self,
        prefix: str,
        membership_sql: MembershipSql,
        risk_score_sql: str | None,
        list_kinds: Mapping[str, str],
    ) -> None:
        if not prefix.isidentifier():
            raise ValueError("the parameter prefix must be an identifier, such as 'r_'")
        self.prefix = prefix
        self.membership_sql = membership_sql
        self.risk_score_sql = risk_score_sql
        self.list_kinds = list_kinds
        self.params: dict[str, Any] = {}
        self._count = 0
        self._null_is_false = False

    def param(self, value: object) -> str:
        name = f"{self.prefix}{self._count}"
        self._count += 1
        self.params[name] = value
        return f"${name}"

    def condition(self, node: t.Expr, null_is_false: bool = False) -> str:
        """A bool-typed node as a DuckDB boolean expression: never NULL, or, when
        ``null_is_false``, NULL only where it is false (for ``CASE WHEN``, ``WHERE`` and
        ``FILTER``, which read NULL as false: ``and``/``or`` keep that reading, so only the
        operands of ``not`` and of bool comparisons need ``coalesce``, which costs a pass)."""
        saved, self._null_is_false = self._null_is_false, null_is_false
        try:
            return self._condition(node)
        finally:
            self._null_is_false = saved

    def wrap(self, sql: str, nullable: bool) -> str:
        """A comparison that is NULL where an operand is missing, made false there."""
        return f"coalesce({sql}, FALSE)" if nullable and not self._null_is_false else sql

    def _condition(self, node: t.Expr) -> str:
        match node:
            case t.Boolean(value=value):
                return _TRUE if value else _FALSE
            case t.Attr(name=name):
                return CATALOGUE[name].sql  # type: ignore[return-value]
            case t.Not(operand=operand):
                return f"(NOT {self.condition(operand)})"
            case t.And(operands=operands):
                return "(" + " AND ".join(self._condition(o) for o in operands) + ")"
            case t.Or(operands=operands):
                return "(" + " OR ".join(self._condition(o) for o in operands) + ")"
            case t.Compare():
                return self.compare(node)
            case t.Member():
                return self.member(node)
        raise AssertionError(f"not a condition: {node!r}")

    # --- comparisons -------------------------------------------------------------------------

    def compare(self, node: t.Compare) -> str:
        left, right, op = node.left, node.right, node.op
        if isinstance(right, t.Attr) and not isinstance(left, t.Attr):
            left, right, op = right, left, exact.FLIP[op]
        kind = exact.operand_type(left)
        if kind == "bool":
            return f"({self.condition(left)} {_sql_op(op)} {self.condition(right)})"
        if kind == "text":
            return self.compare_text(op, left, right)
        return self.compare_numbers(op, left, right)

    def compare_numbers(self, op: str, left: t.Expr, right: t.Expr) -> str:
        if isinstance(left, t.Number) and isinstance(right, t.Number):
            return _TRUE if exact.compare_constants(op, left.value, right.value) else _FALSE
        left_scale, right_scale = exact.exact_scale(left), exact.exact_scale(right)
        if left_scale is not None and isinstance(right, t.Number):
            assert isinstance(left, t.Attr)
            limit = exact.threshold(op, Fraction(right.value) * 10**left_scale)
            return self.against_threshold(left.name, limit)
        if left_scale is not None and right_scale is not None:
            assert isinstance(left, t.Attr) and isinstance(right, t.Attr)
            scale = max(left_scale, right_scale)
            a = f"({_minor(left.name)} * {10 ** (scale - left_scale)})"
            b = f"({_minor(right.name)} * {10 ** (scale - right_scale)})"
            sql = f"({a} {_sql_op(op)} {b})"
            return self.wrap(sql, _nullable(left) or _nullable(right))
        a, b = self.floats(left), self.floats(right)
        checks = [f"isfinite({x})" for x, n in ((a, left), (b, right)) if exact.is_arithmetic(n)]
        sql = " AND ".join([f"({a} {_sql_op(op)} {b})", *checks])
        return self.wrap(f"({sql})", _nullable(left) or _nullable(right))

    def against_threshold(self, name: str, limit: exact.Threshold) -> str:
        attribute = CATALOGUE[name]
        if limit.op == "never":
            return _FALSE
        if limit.op == "present":
            return f"({attribute.sql} IS NOT NULL)" if attribute.nullable else _TRUE
        k = money_literal(limit.k) if attribute.form == "money" else str(limit.k)
        return self.wrap(f"({attribute.sql} {_sql_op(limit.op)} {k})", attribute.nullable)

    def floats(self, node: t.Expr) -> str:
        """A number-typed node as a DOUBLE expression (NULL where missing)."""
        match node:
            case t.Number(value=value):
                return f"CAST({self.param(float(value))} AS DOUBLE)"
            case t.Attr(name=name):
                return self.attribute_double(name)
            case t.Neg(operand=operand):
                return f"(-{self.floats(operand)})"
            case t.Arith(operands=operands, ops=ops):
                sql = self.floats(operands[0])
                for op, operand in zip(ops, operands[1:], strict=True):
                    other = self.floats(operand)
                    if op == "/":  # division by zero is missing, as in numpy
                        other = f"NULLIF({other}, CAST(0 AS DOUBLE))"
                    sql = f"({sql} {op} {other})"
                return sql
        raise AssertionError(f"not a number: {node!r}")

    def attribute_double(self, name: str) -> str:
        attribute = CATALOGUE[name]
        if name == "risk_score":
            if self.risk_score_sql is None:
                raise ValueError("the policy reads :risk_score:, so pass its SQL as risk_score_sql")
            return f"CAST(({self.risk_score_sql}) AS DOUBLE)"
        if attribute.form == "money":
            return f"(CAST({_minor(name)} AS DOUBLE) / CAST(100 AS DOUBLE))"
        if attribute.form == "integer":
            return f"CAST({attribute.sql} AS DOUBLE)"
        return str(attribute.sql)

    def compare_text(self, op: str, left: t.Expr, right: t.Expr) -> str:
        if isinstance(left, t.Text) and isinstance(right, t.Text):
            return _TRUE if exact.compare_constants(op, left.value, right.value) else _FALSE
        assert isinstance(left, t.Attr)
        if isinstance(right, t.Text):
            if left.name == BIN_ATTRIBUTE:  # stored as an INTEGER: compare numbers
                number = exact.bin_number(right.value)
                if number is None:
                    return _FALSE if op == "=" else _TRUE
                return f"({BIN_ATTRIBUTE} {_sql_op(op)} {number})"
            sql = f"({CATALOGUE[left.name].sql} {_sql_op(op)} {self.param(right.value)})"
            return self.wrap(sql, _nullable(left))
        assert isinstance(right, t.Attr)
        sql = f"({CATALOGUE[left.name].sql} {_sql_op(op)} {CATALOGUE[right.name].sql})"
        return self.wrap(sql, _nullable(left) or _nullable(right))

    # --- membership --------------------------------------------------------------------------

    def member(self, node: t.Member) -> str:
        if isinstance(node.target, t.ListRef):
            return self.list_member(node)
        if exact.operand_type(node.value) == "number":
            op = "!=" if node.negated else "="
            parts = [
                self.compare(t.Compare(op, node.value, item, node.pos)) for item in node.target
            ]
            return "(" + (" AND " if node.negated else " OR ").join(parts) + ")"
        return self.text_tuple(node)

    def text_tuple(self, node: t.Member) -> str:
        assert isinstance(node.target, tuple)
        items = [item.value for item in node.target if isinstance(item, t.Text)]
        if isinstance(node.value, t.Text):
            return _TRUE if (node.value.value in items) != node.negated else _FALSE
        assert isinstance(node.value, t.Attr)
        name = node.value.name
        if name == BIN_ATTRIBUTE:
            bins = sorted_bins(items).tolist()
            if not bins:
                return _TRUE if node.negated else _FALSE
            values = ", ".join(str(b) for b in bins)
            return f"({BIN_ATTRIBUTE} {'NOT IN' if node.negated else 'IN'} ({values}))"
        values = ", ".join(self.param(item) for item in items)
        sql = f"({CATALOGUE[name].sql} {'NOT IN' if node.negated else 'IN'} ({values}))"
        return self.wrap(sql, _nullable(node.value))

    def list_member(self, node: t.Member) -> str:
        assert isinstance(node.value, t.Attr) and isinstance(node.target, t.ListRef)
        name = node.value.name
        if name == "card":
            value_sql = "card_hash"
        elif name == BIN_ATTRIBUTE and self.list_kinds[node.target.name] == "bin":
            value_sql = BIN_ATTRIBUTE
        else:
            value_sql = str(CATALOGUE[name].sql)
        sql, params = self.membership_sql(node.target.name, value_sql)
        clash = [p for p in params if p[len(self.prefix) :].isdigit() and p.startswith(self.prefix)]
        if clash:
            raise ValueError(f"membership_sql reused the compiler's parameter names {clash}")
        self.params.update(params)
        if not node.negated:
            return self.wrap(sql, True)
        found = f"coalesce({sql}, FALSE)"
        if _nullable(node.value):  # a missing value is in no list and not out of it either
            return f"({value_sql} IS NOT NULL AND NOT {found})"
        return f"(NOT {found})"


def _nullable(node: t.Expr) -> bool:
    """Whether a number or text operand can be NULL in SQL (a missing value)."""
    match node:
        case t.Attr(name=name):
            return CATALOGUE[name].nullable
        case t.Neg(operand=operand):
            return _nullable(operand)
        case t.Arith(operands=operands, ops=ops):
            return "/" in ops or any(_nullable(o) for o in operands)
    return False


def _minor(name: str) -> str:
    """An exact attribute as a BIGINT in its minor units."""
    attribute = CATALOGUE[name]
    if attribute.form == "money":
        return f"CAST({attribute.sql} * 100 AS BIGINT)"
    return f"CAST({attribute.sql} AS BIGINT)"


def _sql_op(op: str) -> str:
    return "<>" if op == "!=" else op
