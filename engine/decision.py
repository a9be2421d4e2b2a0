"""The one decision function: a policy's rules over a batch's attributes, vectorized with numpy.

The live path calls :meth:`Decider.decide` on each group-commit batch and the bulk generator on
each chunk; backtests run the same compiled rules as DuckDB SQL (:mod:`engine.backtest`) and
decide from their match bits with the same :func:`~engine.rules.decide_from_matches`, so all
three decide identically.

Risk flags (the documented ``risk_flag``): a block or review rule *flags* a payment when its risk
condition holds, whatever the random draw then decided. The risk condition is the rule's
condition without its top-level ``and`` terms that read ``:random:`` (the draw samples, it does
not measure risk); a rule whose every term reads ``:random:``, or that says ``flags_risk:
false``, never flags. The first flagging rule in evaluation order is named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from engine.challenge import OUTCOME_NAMES, PASSED
from engine.policy import (
    HIGH_AMOUNT_RULE,
    RANDOM_DECLINE_RULE,
    SCORE_RULE,
    VELOCITY_RULE,
    Policy,
    ScoreWeights,
)
from engine.rules import (
    ACTION_NAMES,
    Action,
    Coded,
    CompiledPolicy,
    ListSpec,
    compile_policy,
    decide_from_matches,
    references,
)
from engine.rules import tree as t
from engine.rules.policy import Rule


class Reason(IntEnum):
    """Reason codes, stored as their names. The first five are the original rules' (a block
    rule named with an original decline text keeps its code); the others say which kind of
    rule decided."""

    APPROVED = 0
    SCORE_THRESHOLD = 1
    VELOCITY_LIMIT = 2
    HIGH_AMOUNT = 3
    RANDOM_DECLINE = 4
    BLOCKED_BY_RULE = 5
    REVIEW_BY_RULE = 6
    ALLOWED_BY_RULE = 7
    # a challenge rule decided: CHALLENGE_PASSED + the challenge outcome code (engine.challenge)
    CHALLENGE_PASSED = 8
    CHALLENGE_ABANDONED = 9
    CHALLENGE_FAILED = 10


REASON_TEXT: dict[Reason, str] = {
    Reason.APPROVED: "Approved: passed risk checks.",
    Reason.SCORE_THRESHOLD: SCORE_RULE,
    Reason.VELOCITY_LIMIT: VELOCITY_RULE,
    Reason.HIGH_AMOUNT: HIGH_AMOUNT_RULE,
    Reason.RANDOM_DECLINE: RANDOM_DECLINE_RULE,
    Reason.BLOCKED_BY_RULE: "Declined by a block rule of the policy.",
    Reason.REVIEW_BY_RULE: "Approved and marked for review by a review rule of the policy.",
    Reason.ALLOWED_BY_RULE: "Approved by an allow rule of the policy.",
    Reason.CHALLENGE_PASSED: "Approved: the payer passed the 3-D Secure challenge.",
    Reason.CHALLENGE_ABANDONED: "Challenge abandoned: the payer did not complete the 3-D Secure "
    "challenge.",
    Reason.CHALLENGE_FAILED: "Challenge failed: the payer did not pass the 3-D Secure challenge.",
}
REASON_NAMES = np.array([reason.name for reason in Reason])
ACTION_LABELS = np.array(ACTION_NAMES)  # Action codes -> the stored rule_action labels
_ORIGINAL_RULES = {REASON_TEXT[r]: r for r in Reason if 1 <= r <= 4}
_BY_ACTION = {
    "block": Reason.BLOCKED_BY_RULE,
    "review": Reason.REVIEW_BY_RULE,
    "allow": Reason.ALLOWED_BY_RULE,
    "challenge": Reason.CHALLENGE_PASSED,  # the outcome then adds its code (settled_reasons)
}
RANDOM_ATTRIBUTE = "random"


@dataclass(frozen=True, slots=True)
class Decisions:
    """Column-wise decisions for a batch of payments."""

    score: np.ndarray  # float64 in [0, 1]: the policy's risk score
    approved: np.ndarray  # bool
    reason: np.ndarray  # int8 Reason codes
    rule_index: np.ndarray  # int16: the deciding rule's index in the policy, -1 for none
    action: np.ndarray  # int8 Action codes (NONE when no rule matched)
    flag_rule: np.ndarray  # int16: the index of the rule that flagged the payment, -1 for none

    @property
    def risk_flag(self) -> np.ndarray:
        """Whether some rule flagged the payment (bool)."""
        return self.flag_rule >= 0

    @property
    def review(self) -> np.ndarray:
        """Whether a review rule decided (the payment is approved and marked for review)."""
        return self.action == Action.REVIEW

    def __len__(self) -> int:
        return len(self.score)


@dataclass(frozen=True, slots=True)
class ChallengeInputs:
    """What a challenge's outcome depends on, per row (:mod:`engine.challenge`)."""

    draw: np.ndarray  # float64: the stored challenge_draw
    ecommerce: np.ndarray  # bool: the payment's channel is ecommerce
    is_fraud: np.ndarray | None = None  # bool ground truth; None (live): every payer genuine


@dataclass(frozen=True, slots=True)
class Explanation:
    """One decision in the documented words (what the API answers)."""

    decision_reason: str | None  # the deciding block rule's name, the challenge's outcome
    # text when a challenge was not passed; None when approved
    risk_flag: str | None  # the flagging rule's name
    action: str  # allow | challenge | block | review | none
    rule: str | None  # the deciding rule's name
    challenge: str | None = None  # passed | abandoned | failed; None when not challenged

    @property
    def review(self) -> bool:
        """Whether a review rule decided."""
        return self.action == "review"


def explain(
    policy: Policy, rule_index: int, flag_rule: int, reason: int = Reason.APPROVED
) -> Explanation:
    """A decision of ``policy`` (its deciding and flagging rule indices, -1 for none, and its
    :class:`Reason` code, which holds a challenge's outcome) in words."""
    rule = policy.rules[rule_index] if rule_index >= 0 else None
    decision_reason = rule.name if rule is not None and rule.action == "block" else None
    challenge = None
    if rule is not None and rule.action == "challenge":
        outcome = int(reason) - Reason.CHALLENGE_PASSED
        challenge = OUTCOME_NAMES[outcome]
        if outcome != PASSED:
            decision_reason = REASON_TEXT[Reason(reason)]
    return Explanation(
        decision_reason=decision_reason,
        risk_flag=policy.rules[flag_rule].name if flag_rule >= 0 else None,
        action=rule.action if rule is not None else "none",
        rule=rule.name if rule is not None else None,
        challenge=challenge,
    )


def risk_score(
    amount_cents: np.ndarray,
    spending_velocity: np.ndarray,
    device_trust: np.ndarray,
    ip_risk: np.ndarray,
    weights: ScoreWeights,
) -> np.ndarray:
    """score = w_d·(1 − device_trust) + w_ip·ip_risk + w_a·min(amount / amount_scale, 1)
    + w_v·velocity, clipped to [0, 1] (:func:`risk_score_sql` is the same in SQL)."""
    amount_part = np.minimum(
        np.asarray(amount_cents, dtype=np.float64) / float(weights.amount_scale_cents), 1.0
    )
    score = (
        weights.device * (1.0 - device_trust)
        + weights.ip * ip_risk
        + weights.amount * amount_part
        + weights.velocity * spending_velocity
    )
    return np.clip(score, 0.0, 1.0)


def risk_score_sql(weights: ScoreWeights) -> str:
    """:func:`risk_score` as a DuckDB DOUBLE expression over a ``transactions`` row, operation
    by operation in the same order, so both give the same doubles. Weights are written as
    exact literals (they are numbers the model validated, never text)."""

    def lit(value: float) -> str:
        return f"{float(value)!r}::DOUBLE"

    cents = "CAST(amount * 100 AS BIGINT)::DOUBLE"
    return (
        f"greatest(least(((({lit(weights.device)} * (1.0::DOUBLE - device_trust_score)) "
        f"+ ({lit(weights.ip)} * ip_risk_score)) "
        f"+ ({lit(weights.amount)} * least({cents} / {lit(weights.amount_scale_cents)}, "
        f"1.0::DOUBLE))) + ({lit(weights.velocity)} * spending_velocity), 1.0::DOUBLE), "
        "0.0::DOUBLE)"
    )


def score_sql(weights: ScoreWeights, scored_with: ScoreWeights | None) -> str:
    """Each selected row's risk score under ``weights``, as SQL: its stored ``score`` when
    ``scored_with`` (the weights that scored every selected row when they decided it, None
    when they differ or are unknown) are ``weights``, else :func:`risk_score_sql`. Both give
    the same doubles (a row's features are stored as the decision saw them), and reading one
    column is cheaper than computing over four (benchmarks/README.md, "A run's stored scores")."""
    return "score" if weights == scored_with else risk_score_sql(weights)


def reason_codes(policy: Policy) -> np.ndarray:
    """Each rule's reason code (int8): its original code when it is a block rule named with an
    original decline text, else by its action."""
    return np.array(
        [
            _ORIGINAL_RULES.get(rule.name, Reason.BLOCKED_BY_RULE)
            if rule.action == "block"
            else _BY_ACTION[rule.action]
            for rule in policy.rules
        ],
        dtype=np.int8,
    )


def settled_reasons(
    rule_index: np.ndarray,
    codes: np.ndarray,
    action: np.ndarray,
    challenge_outcomes: np.ndarray | None,
) -> np.ndarray:
    """Reason codes (int8) of decisions: the deciding rule's code (``codes``, from
    :func:`reason_codes`), APPROVED when none decided, and for a challenge rule
    CHALLENGE_PASSED + the row's challenge outcome code."""
    reason = np.where(rule_index >= 0, codes[rule_index], Reason.APPROVED).astype(np.int8)
    if challenge_outcomes is not None:
        challenged = action == Action.CHALLENGE
        reason[challenged] = Reason.CHALLENGE_PASSED + challenge_outcomes[challenged]
    return reason


class Decider:
    """A policy compiled once for the numpy paths (live groups and bulk chunks).

    ``lists`` maps every list the rules read to its pinned contents. Construction checks the
    rules (:class:`~engine.rules.RuleError` when they do not compile)."""

    def __init__(self, policy: Policy, lists: Mapping[str, ListSpec] | None = None) -> None:
        self.policy = policy
        self.rules = compile_policy([r.public() for r in policy.rules], lists)
        self.reasons = reason_codes(policy)
        self._challenges = policy.challenges
        self._flags, self._flag_source = _flag_conditions(policy, self.rules)
        flag_attributes = self._flags.attributes if self._flags else frozenset()
        self.attributes: frozenset[str] = self.rules.attributes | flag_attributes
        """Every attribute :meth:`decide` reads (``risk_score`` included when a rule reads
        it)."""

    def decide(
        self,
        score: np.ndarray,
        inputs: Mapping[str, np.ndarray | Coded],
        missing: Mapping[str, np.ndarray] | None = None,
        challenge: ChallengeInputs | None = None,
    ) -> Decisions:
        """Decide a batch: ``score`` is the policy's :func:`risk_score` of each row; ``inputs``
        and ``missing`` hold the attributes :attr:`attributes` names (see
        :meth:`~engine.rules.CompiledPolicy.matches`); ``challenge`` what a challenge's
        outcome depends on (needed only when a rule challenges)."""
        n = len(score)
        matches = self.rules.matches(inputs, missing, n_rows=n)
        outcomes = self.challenge_outcomes(challenge)
        outcome = decide_from_matches(
            matches, self.rules.actions, None if outcomes is None else outcomes == PASSED
        )
        reason = settled_reasons(outcome.rule_index, self.reasons, outcome.action, outcomes)
        return Decisions(
            score=score,
            approved=outcome.approved,
            reason=reason,
            rule_index=outcome.rule_index,
            action=outcome.action,
            flag_rule=self._flag_rule(matches, inputs, missing, n),
        )

    def challenge_outcomes(self, challenge: ChallengeInputs | None) -> np.ndarray | None:
        """Each row's challenge outcome code under this policy's challenge model (None when no
        rule challenges)."""
        if not self._challenges:
            return None
        if challenge is None:
            raise ValueError("the policy challenges: pass the challenge inputs")
        return self.policy.challenge.outcomes(
            challenge.draw, challenge.ecommerce, challenge.is_fraud
        )

    def _flag_rule(
        self,
        matches: np.ndarray,
        inputs: Mapping[str, np.ndarray | Coded],
        missing: Mapping[str, np.ndarray] | None,
        n: int,
    ) -> np.ndarray:
        flags = self._flags.matches(inputs, missing, n_rows=n) if self._flags else None
        flag_rule = np.full(n, -1, dtype=np.int16)
        for rule, source in reversed(self._flag_source):  # the first in order writes last
            held = matches[rule] if source < 0 else flags[source]  # type: ignore[index]
            np.putmask(flag_rule, held, rule)
        return flag_rule


def _flag_conditions(
    policy: Policy, compiled: CompiledPolicy
) -> tuple[CompiledPolicy | None, list[tuple[int, int]]]:
    """The flagging rules in evaluation order (challenge, block, then review) as ``(rule
    index, source)``:
    source -1 when the rule's own match is its risk condition, else the index of its risk
    condition in the returned policy of risk conditions."""
    sources: list[tuple[int, int]] = []
    conditions: list[Rule] = []
    for action in ("challenge", "block", "review"):
        for i, spec in enumerate(policy.rules):
            if spec.action != action or not spec.flags_risk:
                continue
            rule = compiled.rules[i]
            risk = _risk_condition(rule.condition)
            if risk is None:
                continue
            if risk is rule.condition:
                sources.append((i, -1))
            else:
                sources.append((i, len(conditions)))
                conditions.append(Rule(rule.name, rule.action, rule.when, risk))
    flags = CompiledPolicy(tuple(conditions), compiled.lists) if conditions else None
    return flags, sources


def _risk_condition(condition: t.Expr) -> t.Expr | None:
    """The condition without its top-level ``and`` terms reading ``:random:`` (itself when it
    reads no draw or is not a conjunction); None when nothing but the draw is left."""
    if RANDOM_ATTRIBUTE not in references([condition])[0]:
        return condition
    if not isinstance(condition, t.And):
        return None if _only_random(condition) else condition
    kept = tuple(o for o in condition.operands if RANDOM_ATTRIBUTE not in references([o])[0])
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else t.And(kept, condition.pos)


def _only_random(condition: t.Expr) -> bool:
    return references([condition])[0] == {RANDOM_ATTRIBUTE}
