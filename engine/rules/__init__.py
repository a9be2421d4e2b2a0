"""The rule language: a policy is an ordered list of rules ``{"name", "action", "when"}``.

Parsed once (lark, :mod:`engine.rules.parser`), type-checked against the attribute catalogue
(:mod:`engine.rules.catalogue`, :mod:`engine.rules.checker`) and compiled to a numpy evaluator
(live groups, bulk chunks) and to DuckDB SQL (backtests) that agree row for row. Semantics,
input dtypes and what the SQL needs: ``docs/rules.md``.
"""

from engine.rules.catalogue import CATALOGUE, Attribute, attributes_json
from engine.rules.errors import RuleError
from engine.rules.lists import KINDS as LIST_KINDS
from engine.rules.lists import ListSpec
from engine.rules.numpy_eval import Coded
from engine.rules.policy import (
    ACTION_NAMES,
    Action,
    CompiledPolicy,
    Outcome,
    Rule,
    SqlPlan,
    compile_policy,
    decide_from_matches,
    hour_and_weekday,
    pack_words,
    unpack_words,
)
from engine.rules.sql import MembershipSql, default_membership_sql

__all__ = [
    "ACTION_NAMES",
    "CATALOGUE",
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
    "attributes_json",
    "compile_policy",
    "decide_from_matches",
    "default_membership_sql",
    "hour_and_weekday",
    "pack_words",
    "unpack_words",
]
