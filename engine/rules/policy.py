"""Policies of rules: validated and compiled once, then evaluated by numpy or by DuckDB SQL.

A rule is ``{"name", "action", "when"}``. :func:`compile_policy` checks the whole policy and
returns a :class:`CompiledPolicy`, which evaluates every rule's condition over numpy columns
(:meth:`CompiledPolicy.matches`), writes them as DuckDB SQL packed into match-bit words
(:meth:`CompiledPolicy.sql`), and decides from match bits with one function whatever produced
them (:func:`decide_from_matches`). Semantics: ``docs/rules.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from engine.rules import tree as t
from engine.rules.catalogue import CATALOGUE
from engine.rules.checker import check_condition
from engine.rules.errors import RuleError
from engine.rules.lists import ListSpec
from engine.rules.numpy_eval import BoolFn, Coded, Env, NumpyCompiler
from engine.rules.parser import parse_condition
from engine.rules.sql import MembershipSql, SqlCompiler, default_membership_sql

MAX_RULES = 200
MAX_NAME_CHARS = 200
BITS_PER_WORD = 63  # match bits per BIGINT word: the sign bit stays clear


class Action(IntEnum):
    """What decided a payment; ``NONE`` when no rule matched (approved)."""

    NONE = 0
    ALLOW = 1
    BLOCK = 2
    REVIEW = 3
    CHALLENGE = 4  # a step-up: approved only when the challenge is passed


ACTION_NAMES = ("none", "allow", "block", "review", "challenge")
# in evaluation order: allow, challenge, block, review
_RULE_ACTIONS = {
    "allow": Action.ALLOW,
    "challenge": Action.CHALLENGE,
    "block": Action.BLOCK,
    "review": Action.REVIEW,
}
DECISION_ORDER: tuple[Action, ...] = tuple(_RULE_ACTIONS.values())
"""The rule actions in the order a decision tests them: the first kind with a match decides."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One checked rule and its parsed condition."""

    name: str
    action: Action
    when: str
    condition: t.Expr = field(repr=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Column-wise decisions. ``rule_index`` is the deciding rule's index in the policy (-1
    when none matched); ``action`` holds :class:`Action` codes; ``approved`` is false for block
    decisions and for challenge decisions whose challenge was not passed; ``review`` is true
    exactly for review decisions."""

    rule_index: np.ndarray  # int16
    action: np.ndarray  # int8
    approved: np.ndarray  # bool
    review: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.rule_index)


@dataclass(frozen=True, slots=True)
class SqlPlan:
    """A policy as DuckDB SQL: ``rules[i]`` is rule i's boolean expression (never NULL) over a
    ``transactions`` row; ``words[w]`` a BIGINT holding rules ``63w ... 63w + 62`` as bits
    (bit ``i % 63`` of word ``i // 63``); ``params`` the values to bind, by name;
    ``conditions[i]`` rule i's expression as the words test it (NULL where ``rules[i]`` is
    false: for ``CASE WHEN``)."""

    rules: list[str]
    words: list[str]
    params: dict[str, Any]
    conditions: list[str] = field(default_factory=list)


def decide_from_matches(
    matches: np.ndarray, actions: np.ndarray, challenge_passed: np.ndarray | None = None
) -> Outcome:
    """Decisions from a match matrix (n_rules x n_rows bool) and each rule's action code.

    Allow rules in order first (the first match approves), then challenge rules (the first
    match approves when the row's challenge is passed, per ``challenge_passed``, else
    declines), then block rules (the first match declines), then review rules (the first match
    approves and marks for review); no match approves with action ``none``. Every path (live,
    bulk, SQL match words) decides here. ``challenge_passed`` (bool per row) is needed only
    when some rule challenges.
    """
    actions = np.asarray(actions, dtype=np.int8)
    order = _evaluation_order(actions.tobytes())
    rule_index = np.full(matches.shape[1], -1, dtype=np.int16)
    for i in order[::-1]:  # the last write wins: the first rule in evaluation order decides
        np.putmask(rule_index, matches[i], i)
    action = np.where(rule_index >= 0, actions[rule_index], Action.NONE).astype(np.int8)
    approved = action != Action.BLOCK
    if (actions == Action.CHALLENGE).any():
        if challenge_passed is None:
            raise ValueError("a challenge rule needs challenge_passed for every row")
        approved &= (action != Action.CHALLENGE) | challenge_passed
    return Outcome(
        rule_index=rule_index,
        action=action,
        approved=approved,
        review=action == Action.REVIEW,
    )


def action_from_words_sql(
    words: Sequence[str], actions: np.ndarray, challenge_sql: str | None = None
) -> str:
    """The deciding action (an :class:`Action` code) as DuckDB SQL over match words: the
    action :func:`decide_from_matches` gives, for the BIGINT word columns or expressions
    ``words`` (as :attr:`SqlPlan.words` packs them). Any allow match approves, else any
    challenge match challenges, else any block match declines, else any review match reviews,
    else none: which rule of a kind matched first does not change the action, so a mask test
    per kind is the whole decision. ``challenge_sql`` (an INTEGER expression) replaces the
    challenge code where given: a caller folds the challenge's outcome in there."""
    actions = np.asarray(actions, dtype=np.int8)
    cases = []
    for action in _RULE_ACTIONS.values():
        tests = []
        for w, word in enumerate(words):
            bits = np.flatnonzero(actions[w * BITS_PER_WORD : (w + 1) * BITS_PER_WORD] == action)
            mask = sum(1 << int(b) for b in bits)
            if mask:
                tests.append(f"({word} & {mask}) <> 0")
        if tests:
            value = challenge_sql if action == Action.CHALLENGE and challenge_sql else int(action)
            cases.append(f"WHEN {' OR '.join(tests)} THEN {value}")
    if not cases:
        return str(int(Action.NONE))
    return f"(CASE {' '.join(cases)} ELSE {int(Action.NONE)} END)"


@functools.lru_cache(maxsize=256)
def _evaluation_order(actions: bytes) -> np.ndarray:
    """Rule indices in evaluation order (allow, challenge, block, review; each in written
    order)."""
    codes = np.frombuffer(actions, dtype=np.int8)
    return np.concatenate([np.flatnonzero(codes == int(a)) for a in _RULE_ACTIONS.values()])


def hour_and_weekday(t_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``hour_of_day`` (0-23) and ``day_of_week`` (ISO: 1 = Monday ... 7 = Sunday), int64, of
    UTC event times in epoch milliseconds (what DuckDB's ``hour``/``isodow`` give for the stored
    ``created_at``)."""
    t_ms = np.asarray(t_ms, dtype=np.int64)
    hour = (t_ms // 3_600_000) % 24
    days = t_ms // 86_400_000
    return hour, (days + 3) % 7 + 1  # 1970-01-01 was a Thursday (ISO 4)


def unpack_words(words: np.ndarray, n_rules: int) -> np.ndarray:
    """Match words (n x n_words int64, as :attr:`SqlPlan.words` produce them) as the
    n_rules x n bool match matrix."""
    words = np.asarray(words, dtype=np.int64).reshape(-1, (n_rules + 62) // BITS_PER_WORD)
    index = np.arange(n_rules)
    bits = words[:, index // BITS_PER_WORD] >> (index % BITS_PER_WORD)
    return (bits & 1).astype(bool).T


def pack_words(matches: np.ndarray) -> np.ndarray:
    """The inverse of :func:`unpack_words`: a match matrix as n x n_words int64 words."""
    n_rules, n_rows = matches.shape
    words = np.zeros((n_rows, (n_rules + 62) // BITS_PER_WORD), dtype=np.int64)
    for i in range(n_rules):
        words[:, i // BITS_PER_WORD] |= matches[i].astype(np.int64) << (i % BITS_PER_WORD)
    return words


class CompiledPolicy:
    """A checked policy, compiled once. Cheap to keep and share; evaluation holds no state."""

    def __init__(self, rules: tuple[Rule, ...], lists: Mapping[str, ListSpec]) -> None:
        self.rules = rules
        self.names = tuple(rule.name for rule in rules)
        self.actions = np.array([rule.action for rule in rules], dtype=np.int8)
        self.lists = dict(lists)
        attributes, used_lists = references(rule.condition for rule in rules)
        self.attributes = frozenset(attributes)
        """The attributes the rules read: the inputs :meth:`matches` needs."""
        self.used_lists = frozenset(used_lists)
        """The lists the rules read (what a policy version pins)."""
        compiler = NumpyCompiler(self.lists)
        self._conditions: list[BoolFn] = [compiler.condition(r.condition) for r in rules]

    def matches(
        self,
        inputs: Mapping[str, np.ndarray | Coded],
        missing: Mapping[str, np.ndarray] | None = None,
        n_rows: int | None = None,
    ) -> np.ndarray:
        """Each rule's condition on each row: an n_rules x n_rows bool matrix.

        ``inputs`` maps every name in :attr:`attributes` to an array (dtypes: each catalogue
        entry's ``dtype``; docs/rules.md lists them), or for text and card attributes to a
        :class:`Coded` (codes into labels). ``missing`` maps nullable attributes to bool masks
        (true = missing; absent = none missing). ``n_rows`` is needed only when the rules read
        no attribute at all.
        """
        env = _env(self.attributes, inputs, missing or {}, n_rows)
        result = np.empty((len(self.rules), env.n), dtype=bool)
        for i, condition in enumerate(self._conditions):
            result[i] = condition(env)
        return result

    def decide(
        self,
        inputs: Mapping[str, np.ndarray | Coded],
        missing: Mapping[str, np.ndarray] | None = None,
        n_rows: int | None = None,
        challenge_passed: np.ndarray | None = None,
    ) -> Outcome:
        """Decisions for a batch (arguments as :meth:`matches`; ``challenge_passed`` as
        :func:`decide_from_matches`)."""
        return self.decide_matches(self.matches(inputs, missing, n_rows), challenge_passed)

    def decide_matches(
        self, matches: np.ndarray, challenge_passed: np.ndarray | None = None
    ) -> Outcome:
        """Decisions from a match matrix of this policy (see :func:`decide_from_matches`)."""
        return decide_from_matches(matches, self.actions, challenge_passed)

    def sql(
        self,
        prefix: str = "rule_",
        membership_sql: MembershipSql | None = None,
        risk_score_sql: str | None = None,
    ) -> SqlPlan:
        """The rules as DuckDB SQL over ``transactions`` rows. Parameters are named
        ``<prefix><n>``; ``membership_sql`` answers list membership (default: the items bound
        as list parameters named ``<prefix>list_<i>``); ``risk_score_sql`` is the DOUBLE
        expression of ``:risk_score:`` under the candidate's score weights (needed only when a
        rule reads it)."""
        membership = membership_sql or default_membership_sql(self.lists, f"{prefix}list_")
        kinds = {name: spec.kind for name, spec in self.lists.items()}
        compiler = SqlCompiler(prefix, membership, risk_score_sql, kinds)
        # CASE WHEN reads NULL as false: the words need no coalesce below and/or.
        lenient = [compiler.condition(rule.condition, null_is_false=True) for rule in self.rules]
        words = [
            " + ".join(
                f"CASE WHEN {sql} THEN {1 << (i % BITS_PER_WORD)} ELSE 0 END"
                for i, sql in enumerate(lenient[start : start + BITS_PER_WORD], start)
            )
            for start in range(0, len(lenient), BITS_PER_WORD)
        ]
        return SqlPlan(
            rules=[f"coalesce({sql}, FALSE)" for sql in lenient],
            words=[f"({w})" for w in words],
            params=compiler.params,
            conditions=lenient,
        )

    def unpack_words(self, words: np.ndarray) -> np.ndarray:
        """Match words of this policy's :attr:`SqlPlan.words` (n x n_words) as its match
        matrix."""
        return unpack_words(words, len(self.rules))


def compile_policy(
    rules: Sequence[Mapping[str, Any]], lists: Mapping[str, ListSpec] | None = None
) -> CompiledPolicy:
    """Check a policy (1-200 rules, each ``{"name", "action", "when"}``) against the catalogue
    and ``lists``, and compile it; raises :class:`RuleError` naming the rule and part at fault.

    Names are 1-200 printable characters without surrounding spaces, unique ignoring case (a
    decision reason must not be ambiguous); the action is ``allow``, ``challenge``, ``block`` or
    ``review``.
    """
    lists = dict(lists or {})
    if isinstance(rules, str | bytes) or not isinstance(rules, Sequence):
        raise RuleError("rules must be a list of {name, action, when} objects")
    if not 1 <= len(rules) <= MAX_RULES:
        raise RuleError(f"a policy has 1 to {MAX_RULES} rules, not {len(rules)}")
    kinds = {name: spec.kind for name, spec in lists.items()}
    checked: list[Rule] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(rules):
        rule = _check_rule(index, raw, kinds)
        key = rule.name.casefold()
        if key in seen:
            raise RuleError(
                f"two rules are named {rule.name!r} (rule {seen[key]} too); names must differ "
                "(ignoring case)",
                rule=index,
                part="name",
            )
        seen[key] = index
        checked.append(rule)
    return CompiledPolicy(tuple(checked), lists)


def _check_rule(index: int, raw: Any, kinds: Mapping[str, str]) -> Rule:
    if not isinstance(raw, Mapping):
        raise RuleError("a rule is an object {name, action, when}", rule=index)
    for part in ("name", "action", "when"):
        if not isinstance(raw.get(part), str):
            raise RuleError(f"the rule needs a {part} (text)", rule=index, part=part)  # type: ignore[arg-type]
    name, action, when = raw["name"], raw["action"], raw["when"]
    _check_name(index, name)
    if action not in _RULE_ACTIONS:
        raise RuleError(
            f"the action must be allow, challenge, block or review, not {action[:40]!r}",
            rule=index,
            part="action",
        )
    try:
        condition = parse_condition(when)
        check_condition(condition, when, kinds)
    except RuleError as error:
        raise error.in_rule(index, "when") from None
    return Rule(name=name, action=_RULE_ACTIONS[action], when=when, condition=condition)


def _check_name(index: int, name: str) -> None:
    problem = None
    if not name.strip():
        problem = "a rule needs a name"
    elif len(name) > MAX_NAME_CHARS:
        problem = f"a rule name has at most {MAX_NAME_CHARS} characters, not {len(name)}"
    elif not name.isprintable():
        problem = "a rule name cannot hold line breaks, tabs or other control characters"
    elif name != name.strip():
        problem = "a rule name cannot start or end with spaces"
    if problem:
        raise RuleError(problem, rule=index, part="name")


def references(conditions: Any) -> tuple[set[str], set[str]]:
    """The attributes and lists the conditions read."""
    names: set[str] = set()
    lists: set[str] = set()
    stack = list(conditions)
    while stack:
        node = stack.pop()
        match node:
            case t.Attr(name=name):
                names.add(name)
            case t.Arith(operands=ops) | t.And(operands=ops) | t.Or(operands=ops):
                stack.extend(ops)
            case t.Neg(operand=o) | t.Not(operand=o):
                stack.append(o)
            case t.Compare(left=a, right=b):
                stack.extend((a, b))
            case t.Member(value=v, target=target):
                stack.append(v)
                if isinstance(target, t.ListRef):
                    lists.add(target.name)
    return names, lists


def _env(
    needed: frozenset[str],
    inputs: Mapping[str, np.ndarray | Coded],
    missing: Mapping[str, np.ndarray],
    n_rows: int | None,
) -> Env:
    absent = sorted(needed - inputs.keys())
    if absent:
        raise KeyError(f"the rules read {', '.join(absent)}: pass them in inputs")
    values = {name: _column(name, inputs[name]) for name in needed}
    lengths = {len(v) for v in values.values()}
    if n_rows is not None:
        lengths.add(n_rows)
    if len(lengths) > 1:
        raise ValueError(f"input columns have different lengths: {sorted(lengths)}")
    if not lengths:
        raise ValueError("the rules read no attribute: pass n_rows")
    n = lengths.pop()
    masks = {}
    for name in needed & missing.keys():
        mask = np.asarray(missing[name], dtype=bool)
        if len(mask) != n:
            raise ValueError(f"the missing mask of {name} has {len(mask)} rows, not {n}")
        masks[name] = mask
    return Env(values, masks, n)


_DTYPES = {
    name: np.dtype(
        np.int64
        if a.form in ("money", "integer") or name == "card_bin"
        else np.float64
        if a.form == "double"
        else bool
        if a.type == "bool"
        else "S16"
        if a.type == "card"
        else object
    )
    for name, a in CATALOGUE.items()
}


def _column(name: str, values: np.ndarray | Coded) -> np.ndarray | Coded:
    """An input as the dtype the evaluator computes with; a wrong kind is a caller's bug."""
    attribute = CATALOGUE[name]
    if isinstance(values, Coded):
        if attribute.type not in ("text", "card"):
            raise TypeError(f"input {name} is a {attribute.type}: pass an array, not codes")
        codes = np.asarray(values.codes)
        if codes.dtype.kind not in "iu":
            raise TypeError(f"the codes of input {name} must be integers, not {codes.dtype}")
        labels = values.labels  # kept as given: results over labels are cached by identity
        checked = _column(name, labels)
        if checked is not labels and not np.shares_memory(checked, labels):
            raise TypeError(f"the labels of input {name} must hold {attribute.dtype} already")
        return Coded(codes, labels)
    if type(values) is np.ndarray and values.dtype == _DTYPES.get(name):  # the common case
        return values
    array = np.asarray(values)
    if attribute.form in ("money", "integer") or name == "card_bin":
        expected, ok = "integers", array.dtype.kind in "iu"
        array = array.astype(np.int64, copy=False) if ok else array
    elif attribute.form == "double":
        expected, ok = "float64", array.dtype.kind == "f"
        array = array.astype(np.float64, copy=False) if ok else array
    elif attribute.type == "bool":
        expected, ok = "bools", array.dtype.kind == "b"
    elif attribute.type == "card":
        expected = "16-byte fingerprints ('S16')"
        ok = array.dtype == np.dtype("S16") or array.dtype.kind == "O"
        array = array.astype("S16", copy=False) if ok else array
    else:
        expected, ok = "text", array.dtype.kind in "UOT"
    if not ok:
        raise TypeError(f"input {name} must hold {expected} ({attribute.dtype}), not {array.dtype}")
    return array
