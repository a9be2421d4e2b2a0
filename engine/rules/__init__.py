"""The rule language: a policy is an ordered list of rules ``{"name", "action", "when"}``.

Parsed once (lark, :mod:`engine.rules.parser`), type-checked against the attribute catalogue
(:mod:`engine.rules.catalogue`, :mod:`engine.rules.checker`) and compiled to a numpy evaluator
(live groups, bulk chunks) and to DuckDB SQL (backtests) that agree row for row.

Semantics (``docs/rules.md`` has the whole of it, input dtypes and what the SQL needs):

* **Order**: allow rules in order, the first match approves and stops; then block rules, the
  first match declines (its name is the reason); then review rules, the first match approves
  and marks for review; no match approves with action ``none`` (:func:`decide_from_matches`).
* **Missing values** (no device, no GBP rate, a division by zero, a non-finite arithmetic
  result): a comparison or ``in``/``not in`` involving one is false; ``not``/``and``/``or`` are
  two-valued on top, so ``not (:device_id: = 'x')`` is true without a device.
* **Numbers**: a bare money or integer attribute compares exactly with a literal (in minor
  units: ``:amount: > 500.005`` is ``hundredths > 50000``) or with another such attribute;
  arithmetic is float64, left to right, identical in numpy and DuckDB DOUBLE; ``:random:`` and
  the scores compare as doubles.
* **Text** compares exactly; ``:card_bin:`` is six-digit text (stored as a number);
  ``:card:`` is only usable with card lists.
"""

from engine.rules.catalogue import CATALOGUE, Attribute, attributes_json
from engine.rules.errors import RuleError
from engine.rules.lists import KINDS as LIST_KINDS
from engine.rules.lists import ListSpec
from engine.rules.numpy_eval import Coded
from engine.rules.policy import (
    ACTION_NAMES,
    BITS_PER_WORD,
    DECISION_ORDER,
    Action,
    CompiledPolicy,
    Outcome,
    Rule,
    SqlPlan,
    action_from_words_sql,
    compile_policy,
    decide_from_matches,
    hour_and_weekday,
    pack_words,
    references,
    unpack_words,
)
from engine.rules.sql import MembershipSql, default_membership_sql

__all__ = [
    "ACTION_NAMES",
    "BITS_PER_WORD",
    "CATALOGUE",
    "DECISION_ORDER",
    "LIST_KINDS",
    "Action",
    "Attribute",
    "Coded",
    "CompiledPolicy",
    "ListSpec",
    "MembershipSql",
    "Outcome",
    "Rule",
    "RuleError",
    "SqlPlan",
    "action_from_words_sql",
    "attributes_json",
    "compile_policy",
    "decide_from_matches",
    "default_membership_sql",
    "hour_and_weekday",
    "pack_words",
    "references",
    "unpack_words",
]
