"""The numpy evaluator: a checked condition compiled once into closures over input columns.

A compiled condition is a function of an :class:`Env` (the input columns of one group or chunk)
returning a bool array. Values follow ``docs/rules.md``: a comparison or ``in`` that involves a
missing value (or a non-finite arithmetic result) is false, ``not``/``and``/``or`` are two-valued
on top; bare money and integer attributes compare exactly with literals; arithmetic is float64.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from engine.rules import exact
from engine.rules import tree as t
from engine.rules.catalogue import BIN_ATTRIBUTE, CATALOGUE
from engine.rules.lists import ListSpec, sorted_bins, sorted_cards, text_items

BoolFn = Callable[["Env"], np.ndarray]
# A float operand: values, and a missing mask (None when nothing is missing).
FloatFn = Callable[["Env"], tuple[np.ndarray, np.ndarray | None]]

_OPS: dict[str, Callable[[object, object], np.ndarray]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}


class Env:
    """The inputs of one evaluation: ``values`` maps attribute names to arrays of ``n`` rows,
    ``missing`` maps nullable attributes to bool masks (absent = nothing missing). Conversions
    shared by several rules (an attribute as float64) are computed once per evaluation."""

    __slots__ = ("_floats", "missing", "n", "values")

    def __init__(
        self, values: Mapping[str, np.ndarray], missing: Mapping[str, np.ndarray], n: int
    ) -> None:
        self.values = values
        self.missing = missing
        self.n = n
        self._floats: dict[str, np.ndarray] = {}

    def mask(self, name: str) -> np.ndarray | None:
        """The missing mask of a nullable attribute, or None."""
        return self.missing.get(name) if CATALOGUE[name].nullable else None

    def floats(self, name: str) -> np.ndarray:
        """An attribute as float64 (money in units: hundredths / 100)."""
        cached = self._floats.get(name)
        if cached is None:
            values = self.values[name]
            if CATALOGUE[name].form == "money":
                cached = values.astype(np.float64) / 100.0
            else:
                cached = values.astype(np.float64, copy=False)
            self._floats[name] = cached
        return cached

    def const(self, value: bool) -> np.ndarray:
        return np.full(self.n, value, dtype=bool)


def _either(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    return a if b is None else a | b


def _present(result: np.ndarray, missing: np.ndarray | None) -> np.ndarray:
    return result if missing is None else result & ~missing


@dataclass(frozen=True, slots=True)
class Coded:
    """A dictionary-encoded input: row ``i`` holds ``labels[codes[i]]``. Bulk chunks carry
    merchants, channels, currencies, devices and cards as codes into their population's tables;
    text tests then run once per label instead of once per row. The result over a labels array
    is cached by identity: do not modify ``labels`` after passing it."""

    codes: np.ndarray  # integers in range(len(labels)) (anything where the value is missing)
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

    def decode(self) -> np.ndarray:
        """The values row by row."""
        return _take(self.labels, self.codes)


def _take(by_label: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``by_label[codes]``; out-of-range codes (rows whose value is missing) read label 0."""
    if len(by_label) == 0:
        return np.zeros(len(codes), dtype=by_label.dtype)
    return np.take(by_label, codes, mode="clip")


class _PerValue:
    """``test(values) -> bool array`` applied to an attribute, once per label set for
    :class:`Coded` inputs (a single-entry cache, replaced whole, so threads may share it)."""

    __slots__ = ("_cached", "name", "test")

    def __init__(self, name: str, test: Callable[[np.ndarray], np.ndarray]) -> None:
        self.name = name
        self.test = test
        self._cached: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, env: Env) -> np.ndarray:
        value = env.values[self.name]
        if not isinstance(value, Coded):
            return np.asarray(self.test(value), dtype=bool)
        cached = self._cached
        if cached is None or cached[0] is not value.labels:
            cached = (value.labels, np.asarray(self.test(value.labels), dtype=bool))
            self._cached = cached
        return _take(cached[1], value.codes)


class NumpyCompiler:
    """Compiles checked conditions against one set of lists; list lookups are built once."""

    def __init__(self, lists: Mapping[str, ListSpec]) -> None:
        self.lists = lists
        self._lookups: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {}

    def condition(self, node: t.Expr) -> BoolFn:
        """A bool-typed node as a function of an :class:`Env`."""
        match node:
            case t.Boolean(value=value):
                return lambda env: env.const(value)
            case t.Attr(name=name):  # a bool attribute
                return lambda env: env.values[name]
            case t.Not(operand=operand):
                inner = self.condition(operand)
                return lambda env: ~inner(env)
            case t.And(operands=operands):
                return _fold(operator.and_, [self.condition(o) for o in operands])
            case t.Or(operands=operands):
                return _fold(operator.or_, [self.condition(o) for o in operands])
            case t.Compare():
                return self.compare(node)
            case t.Member():
                return self.member(node)
        raise AssertionError(f"not a condition: {node!r}")

    # --- comparisons -------------------------------------------------------------------------

    def compare(self, node: t.Compare) -> BoolFn:
        left, right = node.left, node.right
        if isinstance(right, t.Attr) and not isinstance(left, t.Attr):
            left, right = right, left
            op = exact.FLIP[node.op]
        else:
            op = node.op
        kind = exact.operand_type(left)
        if kind == "bool":
            a, b = self.condition(left), self.condition(right)
            fn = _OPS[op]
            return lambda env: fn(a(env), b(env))
        if kind == "text":
            return self.compare_text(op, left, right)
        return self.compare_numbers(op, left, right)

    def compare_numbers(self, op: str, left: t.Expr, right: t.Expr) -> BoolFn:
        if isinstance(left, t.Number) and isinstance(right, t.Number):
            value = exact.compare_constants(op, left.value, right.value)
            return lambda env: env.const(value)
        left_scale, right_scale = exact.exact_scale(left), exact.exact_scale(right)
        if left_scale is not None and isinstance(right, t.Number):
            assert isinstance(left, t.Attr)
            return _against_threshold(
                left.name, exact.threshold(op, Fraction(right.value) * 10**left_scale)
            )
        if left_scale is not None and right_scale is not None:
            assert isinstance(left, t.Attr) and isinstance(right, t.Attr)
            return _exact_pair(op, left.name, left_scale, right.name, right_scale)
        a, b, fn = self.floats(left), self.floats(right), _OPS[op]
        check_a, check_b = exact.is_arithmetic(left), exact.is_arithmetic(right)

        def compare(env: Env) -> np.ndarray:
            (x, x_missing), (y, y_missing) = a(env), b(env)
            result = fn(x, y)
            if np.ndim(result) == 0:  # arithmetic on literals only
                result = np.full(env.n, result)
            if check_a:
                result &= np.isfinite(x)
            if check_b:
                result &= np.isfinite(y)
            return _present(result, _either(x_missing, y_missing))

        return compare

    def floats(self, node: t.Expr) -> FloatFn:
        """A number-typed node as float64 values and a missing mask."""
        match node:
            case t.Number(value=value):
                number = np.float64(float(value))  # a scalar: numpy broadcasts it
                return lambda env: (number, None)
            case t.Attr(name=name):
                return lambda env: (env.floats(name), env.mask(name))
            case t.Neg(operand=operand):
                inner = self.floats(operand)

                def negate(env: Env) -> tuple[np.ndarray, np.ndarray | None]:
                    values, missing = inner(env)
                    return -values, missing

                return negate
            case t.Arith(operands=operands, ops=ops):
                return self.arith([self.floats(o) for o in operands], ops)
        raise AssertionError(f"not a number: {node!r}")

    def arith(self, parts: list[FloatFn], ops: tuple[str, ...]) -> FloatFn:
        """Left to right, float64; a division by zero is missing (DuckDB's ``NULLIF``)."""
        steps = [(_ARITH[op], op == "/", part) for op, part in zip(ops, parts[1:], strict=True)]
        first = parts[0]

        def evaluate(env: Env) -> tuple[np.ndarray, np.ndarray | None]:
            values, missing = first(env)
            with np.errstate(all="ignore"):
                for fn, divides, part in steps:
                    other, other_missing = part(env)
                    missing = _either(missing, other_missing)
                    if divides:
                        missing = _either(missing, other == 0)
                    values = fn(values, other)
            return values, missing

        return evaluate

    def compare_text(self, op: str, left: t.Expr, right: t.Expr) -> BoolFn:
        if isinstance(left, t.Text) and isinstance(right, t.Text):
            value = exact.compare_constants(op, left.value, right.value)
            return lambda env: env.const(value)
        equal = op == "="
        assert isinstance(left, t.Attr)
        name = left.name
        if isinstance(right, t.Text):
            literal: object = right.value
            if name == BIN_ATTRIBUTE:
                literal = exact.bin_number(right.value)
                if literal is None:  # never a BIN: = is false, != true
                    return lambda env: env.const(not equal)
            fn = _OPS[op]
            test = _PerValue(name, lambda v: fn(v, literal))
            return lambda env: _present(test(env), env.mask(name))
        assert isinstance(right, t.Attr)
        other, fn = right.name, _OPS[op]

        def compare(env: Env) -> np.ndarray:
            result = fn(_text(env, name), _text(env, other))
            return _present(
                np.asarray(result, dtype=bool), _either(env.mask(name), env.mask(other))
            )

        return compare

    # --- membership --------------------------------------------------------------------------

    def member(self, node: t.Member) -> BoolFn:
        if isinstance(node.target, t.ListRef):
            assert isinstance(node.value, t.Attr)
            name = node.value.name
            found = _PerValue(name, self.list_lookup(node.target.name, name))
            return _membership(found, name, node.negated)
        if exact.operand_type(node.value) == "number":
            return self.number_tuple(node)
        return self.text_tuple(node)

    def number_tuple(self, node: t.Member) -> BoolFn:
        """``x in (a, b)`` is ``x = a or x = b``; ``not in`` is ``x != a and x != b``: each
        comparison keeps its exactness and its missing-value rule."""
        op = "!=" if node.negated else "="
        assert isinstance(node.target, tuple)
        parts = [self.compare(t.Compare(op, node.value, item, node.pos)) for item in node.target]
        combine = np.logical_and if node.negated else np.logical_or
        return lambda env: combine.reduce([p(env) for p in parts])

    def text_tuple(self, node: t.Member) -> BoolFn:
        assert isinstance(node.target, tuple)
        items = [item.value for item in node.target if isinstance(item, t.Text)]
        negated = node.negated
        if isinstance(node.value, t.Text):
            value = (node.value.value in items) != negated
            return lambda env: env.const(value)
        assert isinstance(node.value, t.Attr)
        name = node.value.name
        if name == BIN_ATTRIBUTE:
            bins = sorted_bins(items)
            lookup: Callable[[np.ndarray], np.ndarray] = lambda v: _in_sorted(v, bins)  # noqa: E731
        else:
            members = text_items(items)
            lookup = lambda v: _in_set(v, members)  # noqa: E731

        return _membership(_PerValue(name, lookup), name, negated)

    def list_lookup(self, list_name: str, attribute: str) -> Callable[[np.ndarray], np.ndarray]:
        """Membership in a list, built once per (list, attribute): sorted arrays searched with
        ``searchsorted`` for cards and BINs, a hash set for text."""
        key = (list_name, attribute)
        if key not in self._lookups:
            spec = self.lists[list_name]
            if spec.kind == "card":
                self._lookups[key] = CardLookup(sorted_cards(spec.items))
            elif attribute == BIN_ATTRIBUTE:
                bins = sorted_bins(spec.items)
                self._lookups[key] = lambda v: _in_sorted(v, bins)
            else:
                members = text_items(spec.items)
                self._lookups[key] = lambda v: _in_set(v, members)
        return self._lookups[key]


def _fold(combine: Callable[[np.ndarray, np.ndarray], np.ndarray], parts: list[BoolFn]) -> BoolFn:
    """``parts[0] combine parts[1] combine ...``: pairwise, cheaper than a ufunc reduce over a
    stacked list for the few operands a condition has."""
    first, rest = parts[0], parts[1:]

    def fold(env: Env) -> np.ndarray:
        result = first(env)
        for part in rest:
            result = combine(result, part(env))
        return result

    return fold


def _membership(found: _PerValue, name: str, negated: bool) -> BoolFn:
    if negated:
        return lambda env: _present(~found(env), env.mask(name))
    return lambda env: _present(found(env), env.mask(name))


def _against_threshold(name: str, limit: exact.Threshold) -> BoolFn:
    if limit.op == "never":
        return lambda env: env.const(False)
    if limit.op == "present":
        return lambda env: _present(env.const(True), env.mask(name))
    fn, k = _OPS[limit.op], limit.k
    return lambda env: _present(fn(env.values[name], k), env.mask(name))


def _exact_pair(op: str, a: str, a_scale: int, b: str, b_scale: int) -> BoolFn:
    """Two exact attributes compared as integers at the finer of their scales."""
    scale = max(a_scale, b_scale)
    a_factor, b_factor, fn = 10 ** (scale - a_scale), 10 ** (scale - b_scale), _OPS[op]

    def compare(env: Env) -> np.ndarray:
        x = env.values[a] * a_factor if a_factor != 1 else env.values[a]
        y = env.values[b] * b_factor if b_factor != 1 else env.values[b]
        return _present(fn(x, y), _either(env.mask(a), env.mask(b)))

    return compare


def _text(env: Env, name: str) -> np.ndarray:
    """A text attribute as an object array (BINs zero-padded to six digits)."""
    values = env.values[name]
    if isinstance(values, Coded):
        values = values.decode()
    if name == BIN_ATTRIBUTE:
        return np.array([f"{v:06d}" for v in values.tolist()], dtype=object)
    return np.asarray(values, dtype=object)


def _in_set(values: np.ndarray, members: frozenset[str]) -> np.ndarray:
    return np.fromiter(map(members.__contains__, values.tolist()), dtype=bool, count=len(values))


class CardLookup:
    """Membership of 16-byte fingerprints: ``searchsorted`` on the sorted list for small
    batches; for large ones a hash lookup of each fingerprint's first 8 bytes (pandas' uint64
    hash table) checked against the other 8, ten times faster than comparing 16-byte strings.
    A list whose first halves collide keeps to ``searchsorted`` (it stays exact)."""

    HASH_FROM_ROWS = 2_048

    def __init__(self, members: np.ndarray) -> None:
        self.members = members  # sorted, unique 'S16'
        halves = np.ascontiguousarray(members).view("<u8").reshape(-1, 2)
        self.index: pd.Index | None = None
        if len(members) and len(np.unique(halves[:, 0])) == len(members):
            self.index = pd.Index(halves[:, 0])
            self.second = halves[:, 1]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        values = np.ascontiguousarray(values, dtype="S16")
        if self.index is None or len(values) < self.HASH_FROM_ROWS:
            return _in_sorted(values, self.members)
        halves = values.view("<u8").reshape(-1, 2)
        position = self.index.get_indexer(halves[:, 0])
        return (position >= 0) & (self.second[np.maximum(position, 0)] == halves[:, 1])


def _in_sorted(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    if len(members) == 0:
        return np.zeros(len(values), dtype=bool)
    index = np.minimum(np.searchsorted(members, values), len(members) - 1)
    return members[index] == values
