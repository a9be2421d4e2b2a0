"""The grammar of a condition and its parser: text in, a typed tree (:mod:`engine.rules.tree`) out.

The grammar is lark's LALR(1), built once. Lark parses without recursion and the lark tree is
converted to the typed tree by an explicit stack, so pathological input (thousands of ``(``)
gets a clear error instead of a ``RecursionError``; the nesting limit keeps every later
(recursive) pass shallow. Syntax errors name what was expected in words, with the line and
column of the offending token.
"""

from __future__ import annotations

import functools
from decimal import Decimal

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from engine.rules import tree as t
from engine.rules.errors import RuleError

MAX_CONDITION_CHARS = 4_000
MAX_NESTING = 32  # parentheses, `not`s and unary minuses around any point of a condition

GRAMMAR = r"""
start: or_expr

?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> not_
         | comparison
?comparison: sum CMP sum -> compare
           | sum _IN target -> member_in
           | sum _NOT _IN target -> member_not_in
           | sum
?sum: product ((PLUS | MINUS) product)*
?product: unary ((STAR | SLASH) unary)*
?unary: MINUS unary -> neg
      | atom
?atom: ATTRIBUTE | NUMBER | STRING | TRUE | FALSE
     | _LPAR or_expr _RPAR -> paren
target: LIST | _LPAR literal (_COMMA literal)* _RPAR
literal: NUMBER | MINUS NUMBER | STRING | TRUE | FALSE

_OR: "or"i
_AND: "and"i
_NOT: "not"i
_IN: "in"i
TRUE: "true"i
FALSE: "false"i
CMP: "<=" | ">=" | "!=" | "=" | "<" | ">"
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
_LPAR: "("
_RPAR: ")"
_COMMA: ","
ATTRIBUTE: /:[A-Za-z_][A-Za-z0-9_]*:/
LIST: /@[A-Za-z0-9_][A-Za-z0-9_.\-]*/
NUMBER: /[0-9]+(\.[0-9]+)?|\.[0-9]+/
STRING: /'(?:[^']|'')*'/

%ignore /\s+/
"""

# What each terminal means to a person, for "expected ..." in syntax errors.
_VALUES = ("ATTRIBUTE", "NUMBER", "STRING", "TRUE", "FALSE")
_WORDS = {
    "_LPAR": "'('",
    "_RPAR": "')'",
    "_COMMA": "','",
    "LIST": "a list such as @vip",
    "CMP": "a comparison (= != < <= > >=)",
    "_IN": "in",
    "_NOT": "not",
    "_AND": "and",
    "_OR": "or",
    "PLUS": "an arithmetic operator (+ - * /)",
    "MINUS": "an arithmetic operator (+ - * /)",
    "STAR": "an arithmetic operator (+ - * /)",
    "SLASH": "an arithmetic operator (+ - * /)",
    "$END": "the end of the condition",
}
_CHARACTER_HINTS = {
    "'": "a 'string' is missing its closing quote",
    '"': "strings are written in single quotes: 'text'",
    ":": "an attribute is written between two colons, such as :amount:",
    "@": "a list is written @name (letters, digits, _ . -)",
    "&": "write and, not &&",
    "|": "write or, not ||",
    "!": "write not, or != to compare",
}


@functools.cache
def _parser() -> Lark:
    return Lark(
        GRAMMAR, parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=False
    )


def parse_condition(text: str) -> t.Expr:
    """Parse a condition into its typed tree; raises :class:`RuleError` with the position of
    the offending token (syntax, more than :data:`MAX_CONDITION_CHARS` characters, nesting
    deeper than :data:`MAX_NESTING`).

    Trees are immutable, so the trees of the last conditions parsed are kept and shared: a
    policy compiled again (saved, backtested, activated) parses only its new conditions."""
    if not isinstance(text, str):
        raise RuleError("the condition must be text", line=1, column=1)
    return _parse(text)


@functools.lru_cache(maxsize=2_048)
def _parse(text: str) -> t.Expr:
    if not text.strip():
        raise RuleError(
            "the condition is empty: write one such as :amount: > 500", line=1, column=1
        )
    if len(text) > MAX_CONDITION_CHARS:
        line, column = _line_column(text, MAX_CONDITION_CHARS)
        raise RuleError(
            f"the condition has {len(text):,} characters; at most {MAX_CONDITION_CHARS:,} are "
            "allowed (put long sets of values in a list)",
            line=line,
            column=column,
        )
    try:
        lark_tree = _parser().parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(text, error) from None
    _check_nesting(lark_tree)
    return _convert(lark_tree, text)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset``."""
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _syntax_error(text: str, error: UnexpectedInput) -> RuleError:
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream]
        hint = _CHARACTER_HINTS.get(char, "")
        message = f"unexpected character {char!r}" + (f": {hint}" if hint else "")
        return RuleError(message, line=error.line, column=error.column)
    assert isinstance(error, UnexpectedToken)
    token = error.token
    # The LALR state's lookahead set can offer tokens that cannot follow here (a ')' without an
    # open parenthesis); asking the parser which tokens it would accept is exact.
    accepted = set(error.interactive_parser.accepts()) if error.interactive_parser else set()
    expected = _expected_words(accepted or set(error.expected))
    if token.value == "=" and text[token.start_pos - 1 : token.start_pos] == "=":
        return RuleError("write = to compare, not ==", line=token.line, column=token.column)
    if token.type == "CMP" and "_AND" in accepted:  # after a whole comparison
        message = "comparisons do not chain: join two with and, e.g. :amount: > 1 and :amount: < 5"
        return RuleError(message, line=token.line, column=token.column)
    if token.type == "$END":
        end = len(text.rstrip())
        line, column = _line_column(text, end)
        return RuleError(
            f"the condition ends too early: expected {expected}", line=line, column=column
        )
    message = f"unexpected {_token_text(token)}: expected {expected}"
    return RuleError(message, line=token.line, column=token.column)


def _token_text(token: Token) -> str:
    value = str(token.value)
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"'{shown}'" if not shown.startswith("'") else shown


def _expected_words(expected: set[str]) -> str:
    words: list[str] = []
    if expected & set(_VALUES):
        words.append("a value (an :attribute:, a number, a 'string', true or false)")
        expected = expected - {*_VALUES, "_LPAR", "MINUS", "_NOT"}
    for name in sorted(expected, key=lambda n: list(_WORDS).index(n) if n in _WORDS else 99):
        word = _WORDS.get(name, name)
        if word not in words:
            words.append(word)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _check_nesting(root: Tree) -> None:
    """Reject more than MAX_NESTING parentheses/not/minus around a point, without recursion."""
    stack: list[tuple[Tree | Token, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if node.data in ("paren", "not_", "neg"):
            depth += 1
            if depth > MAX_NESTING:
                raise RuleError(
                    f"the condition nests deeper than {MAX_NESTING} levels (parentheses, not "
                    "and minus signs): simplify it",
                    line=node.meta.line,
                    column=node.meta.column,
                )
        stack.extend((child, depth) for child in node.children)


def _pos_of(node: Tree | Token) -> t.Pos:
    if isinstance(node, Token):
        return t.Pos(node.line, node.column, node.start_pos, node.end_pos)
    meta = node.meta
    return t.Pos(meta.line, meta.column, meta.start_pos, meta.end_pos)


def _convert(root: Tree, text: str) -> t.Expr:
    """The lark tree as a typed tree, post-order with an explicit stack."""
    done: dict[int, object] = {}
    stack: list[tuple[Tree | Token, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if isinstance(node, Tree) and not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in node.children)
            continue
        done[id(node)] = _build(node, [done.pop(id(c)) for c in _children(node)])
    return done[id(root)]  # type: ignore[return-value]


def _children(node: Tree | Token) -> list[Tree | Token]:
    return node.children if isinstance(node, Tree) else []


def _build(node: Tree | Token, kids: list) -> object:
    pos = _pos_of(node)
    if isinstance(node, Token):
        return _token(node, pos)
    kind = node.data
    if kind in ("start", "paren"):
        return kids[0]
    if kind == "or_expr":
        return t.Or(tuple(kids), pos)
    if kind == "and_expr":
        return t.And(tuple(kids), pos)
    if kind == "not_":
        return t.Not(kids[0], pos)
    if kind == "compare":
        return t.Compare(kids[1], kids[0], kids[2], pos)
    if kind in ("member_in", "member_not_in"):
        return t.Member(kids[0], kids[1], kind == "member_not_in", pos)
    if kind == "target":
        return kids[0] if isinstance(kids[0], t.ListRef) else tuple(kids)
    if kind == "literal":
        return _negated(kids[1], pos) if len(kids) == 2 else kids[0]
    if kind in ("sum", "product"):
        return t.Arith(tuple(kids[0::2]), tuple(kids[1::2]), pos)
    if kind == "neg":
        operand = kids[1]
        return _negated(operand, pos) if isinstance(operand, t.Number) else t.Neg(operand, pos)
    raise AssertionError(f"unhandled grammar rule {kind}")


def _negated(number: t.Number, pos: t.Pos) -> t.Number:
    """``-5`` is a literal, so comparisons with it stay exact."""
    return t.Number(-number.value, pos)


def _token(token: Token, pos: t.Pos) -> object:
    kind, value = token.type, str(token.value)
    if kind == "ATTRIBUTE":
        return t.Attr(value[1:-1], pos)
    if kind == "LIST":
        return t.ListRef(value[1:], pos)
    if kind == "NUMBER":
        return t.Number(Decimal(value), pos)
    if kind == "STRING":
        return t.Text(value[1:-1].replace("''", "'"), pos)
    if kind in ("TRUE", "FALSE"):
        return t.Boolean(kind == "TRUE", pos)
    return value  # an operator: CMP, PLUS, MINUS, STAR, SLASH
