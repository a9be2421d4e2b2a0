"""Type-checking a condition against the attribute catalogue and the lists it may use.

Types are ``number``, ``text``, ``bool`` and ``card``. A condition must be a ``bool``; ``and``,
``or`` and ``not`` take bools; arithmetic takes numbers; ``< <= > >=`` order numbers only;
``= !=`` compare two values of one type (not cards); ``in`` / ``not in`` test a number or text
against a literal tuple of its type, or an attribute against a list whose kind holds it
(:data:`LIST_KINDS`). Errors point at the offending token.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from engine.rules import tree as t
from engine.rules.catalogue import BIN_ATTRIBUTE, CATALOGUE
from engine.rules.errors import RuleError

TEXT_ATTRIBUTES = tuple(name for name, a in CATALOGUE.items() if a.type == "text")
LIST_KINDS: dict[str, tuple[str, ...]] = {
    "card": ("card",),
    "bin": (BIN_ATTRIBUTE,),
    "device": ("device_id",),
    "merchant": ("merchant",),
    "currency": ("currency",),
    "text": TEXT_ATTRIBUTES,
}
"""Which attributes each kind of list can hold."""

ORDERING = frozenset({"<", "<=", ">", ">="})


def check_condition(expr: t.Expr, text: str, lists: Mapping[str, str]) -> None:
    """Raise :class:`RuleError` unless ``expr`` (parsed from ``text``) is a well-typed condition
    over the catalogue and ``lists`` (list name → kind)."""
    kind = _Checker(text, lists).type_of(expr)
    if kind != "bool":
        raise _error(
            expr,
            f"a condition must be true or false, but {_show(expr, text)} is {_NOUNS[kind]}: "
            "compare it, e.g. :amount: > 500",
        )


_NOUNS = {"number": "a number", "text": "text", "bool": "true or false", "card": "a card"}


def _error(node: t.Expr | t.ListRef, message: str) -> RuleError:
    return RuleError(message, line=node.pos.line, column=node.pos.column)


def _show(node: t.Expr, text: str) -> str:
    """How a node reads in a message: its source, shortened."""
    source = " ".join(text[node.pos.start : node.pos.end].split())
    return source if len(source) <= 40 else source[:37] + "..."


def _suggest(name: str, known: list[str], sigil: str) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:
        lowered = [k for k in known if k.lower() == name.lower()]
        close = lowered[:1]
    return f" — did you mean {sigil}{close[0]}{sigil if sigil == ':' else ''}?" if close else ""


class _Checker:
    def __init__(self, text: str, lists: Mapping[str, str]) -> None:
        self.text = text
        self.lists = lists

    def show(self, node: t.Expr) -> str:
        return _show(node, self.text)

    def type_of(self, node: t.Expr) -> str:
        match node:
            case t.Attr(name=name):
                if name not in CATALOGUE:
                    hint = _suggest(name, list(CATALOGUE), ":")
                    raise _error(node, f"unknown attribute :{name}:{hint}")
                return CATALOGUE[name].type
            case t.Number():
                return "number"
            case t.Text():
                return "text"
            case t.Boolean():
                return "bool"
            case t.Arith(operands=operands):
                for operand in operands:
                    self.expect(operand, "number", "arithmetic (+ - * /) needs numbers")
                return "number"
            case t.Neg(operand=operand):
                self.expect(operand, "number", "a minus sign needs a number")
                return "number"
            case t.Not(operand=operand):
                self.expect(operand, "bool", "not needs a condition")
                return "bool"
            case t.And(operands=operands) | t.Or(operands=operands):
                word = "and" if isinstance(node, t.And) else "or"
                for operand in operands:
                    self.expect(operand, "bool", f"{word} joins conditions")
                return "bool"
            case t.Compare():
                self.compare(node)
                return "bool"
            case t.Member():
                self.member(node)
                return "bool"
        raise AssertionError(f"unhandled node {node!r}")

    def expect(self, node: t.Expr, wanted: str, why: str) -> None:
        kind = self.type_of(node)
        if kind != wanted:
            raise _error(node, f"{why}, but {self.show(node)} is {_NOUNS[kind]}")

    def compare(self, node: t.Compare) -> None:
        left, right = self.type_of(node.left), self.type_of(node.right)
        if "card" in (left, right):
            card = node.left if left == "card" else node.right
            raise _error(card, f"{self.show(card)} can only be used with in or not in a card list")
        if left != right:
            raise _error(
                node.right,
                f"cannot compare {self.show(node.left)} ({left}) with "
                f"{self.show(node.right)} ({right})",
            )
        if node.op in ORDERING and left != "number":
            raise _error(
                node.left,
                f"{node.op} orders numbers, but {self.show(node.left)} is {_NOUNS[left]}: "
                "use = or !=",
            )
        self.vocabulary(node.left, node.right)
        self.vocabulary(node.right, node.left)

    def vocabulary(self, attr: t.Expr, value: t.Expr) -> None:
        """A literal compared with a closed-vocabulary attribute (channel, currency) must be
        one of its values: 'ECOMMERCE' would silently never match."""
        if not (isinstance(attr, t.Attr) and isinstance(value, t.Text)):
            return
        known = CATALOGUE[attr.name].vocabulary
        if known is None or value.value in known:
            return
        close = difflib.get_close_matches(value.value, sorted(known), n=1, cutoff=0.5)
        upper = [k for k in known if k.lower() == value.value.lower()]
        hint = upper[:1] or close
        suggestion = f" — did you mean '{hint[0]}'?" if hint else ""
        raise _error(value, f"{self.show(value)} is not a known :{attr.name}:{suggestion}")

    def member(self, node: t.Member) -> None:
        kind = self.type_of(node.value)
        if isinstance(node.target, t.ListRef):
            self.list_member(node.value, kind, node.target)
            return
        if kind not in ("number", "text"):
            raise _error(
                node.value,
                f"in (...) tests numbers or text, but {self.show(node.value)} is {_NOUNS[kind]}"
                + (": use a card list" if kind == "card" else ""),
            )
        for item in node.target:
            item_kind = self.type_of(item)
            if item_kind != kind:
                raise _error(
                    item,
                    f"{self.show(node.value)} ({kind}) cannot be in a tuple holding "
                    f"{self.show(item)} ({item_kind})",
                )
            self.vocabulary(node.value, item)

    def list_member(self, value: t.Expr, kind: str, target: t.ListRef) -> None:
        if target.name not in self.lists:
            hint = _suggest(target.name, sorted(self.lists), "@")
            raise _error(target, f"unknown list @{target.name}{hint}")
        list_kind = self.lists[target.name]
        accepted = LIST_KINDS[list_kind]
        if not (isinstance(value, t.Attr) and value.name in accepted):
            holds = ", ".join(f":{name}:" for name in accepted)
            raise _error(
                value,
                f"a {list_kind} list cannot hold {self.show(value)} ({kind}): "
                f"@{target.name} holds {holds}",
            )
