"""Backtests: re-decide stored history under a candidate policy and compare it with the active one.

Every stored row keeps its attributes and the uniform draw its randomized rules used, so
re-deciding it under another policy with the *same* draws (common random numbers) shows the
effect of the policy alone. Both policies' rules run inside DuckDB as the SQL the rule compiler
writes (:meth:`~engine.rules.CompiledPolicy.sql`), packed into match-bit words. One scan, the
comparison's (:mod:`engine.compare`, which prices both policies), also groups the rows by
(label, scenario, candidate score bin, match words), and the decisions are then taken from the
match bits by the same :func:`~engine.rules.decide_from_matches` the live and bulk paths use,
over a few thousand groups. No raw rows leave the database.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from engine.challenge import ABANDONED, FAILED, PASSED
from engine.costs import CostBreakdown, CostModel
from engine.decision import Decider, Reason, reason_codes, settled_reasons
from engine.filters import RowFilter
from engine.lists import Lists
from engine.models import FRAUD_DISPUTE_REASONS, Money
from engine.policy import SCORE_RULE, Policy, ScoreWeights
from engine.rules import Action, decide_from_matches, unpack_words
from engine.store import ReadTx, Store

if TYPE_CHECKING:  # engine.compare builds on this module
    from engine.compare import SharedRules

_APPROVING = (
    Reason.APPROVED,
    Reason.REVIEW_BY_RULE,
    Reason.ALLOWED_BY_RULE,
    Reason.CHALLENGE_PASSED,
)
DECLINE_REASONS = tuple(r for r in Reason if r not in _APPROVING)
CURVE_STEPS = 100
_BEFORE_BLOCK = (int(Action.ALLOW), int(Action.CHALLENGE))
"""The score-threshold curve has a point at every multiple of ``1 / CURVE_STEPS``."""


class PolicyMetrics(BaseModel):
    """How one policy decides the selected rows. Rates are fractions in [0, 1].

    Fraud metrics only count labelled rows (:func:`label_sql`): simulated rows by their ground
    truth as known at ``labels_as_of``, live rows with a fraud dispute.
    """

    rows: int
    approved: int
    declined: int
    approval_rate: float
    decline_rate: float
    labelled: int = Field(
        description="Labelled rows: simulated rows (ground truth, as known at labels_as_of) "
        "and live rows with a fraud or friendly_fraud dispute."
    )
    fraud: int = Field(description="Fraud rows among the labelled ones.")
    fraud_caught: int = Field(description="Fraud rows declined.")
    recall: float | None = Field(description="fraud_caught / fraud (None without fraud).")
    precision: float | None = Field(
        description="fraud_caught / declined labelled rows (None without declines)."
    )
    fraud_loss: Money = Field(
        description="Amount of approved fraud (currencies mixed), except fraud that passed a "
        "challenge: its liability shifted to the issuer."
    )
    false_declines: int = Field(description="Legitimate labelled rows declined.")
    false_decline_amount: Money
    declines_by_reason: dict[str, int]
    challenged: int = Field(0, description="Rows a challenge rule decided (3-D Secure step-up).")
    challenge_passed: int = Field(0, description="Challenged rows that passed: approved.")
    challenge_abandoned: int = Field(
        0, description="Challenged rows whose genuine payer abandoned: declined, a lost sale."
    )
    challenge_failed: int = Field(
        0, description="Challenged rows whose fraudster failed the challenge: declined."
    )
    liability_shifted: int = Field(
        0, description="Fraud rows approved after a passed challenge (not in fraud_loss)."
    )
    costs: CostBreakdown = Field(
        description="The policy's costs in the cost model's reporting currency, with the counts "
        "and amounts they are computed from: POST /compare's pricing of the same rows."
    )


class CostDifference(BaseModel):
    """Candidate − active for each cost, exact, in the reporting currency (negative: the
    candidate costs less)."""

    currency: str
    fraud_loss: Money
    chargeback_fees: Money
    lost_margin: Money
    churn: Money
    false_decline_cost: Money
    review_cost: Money
    challenge_cost: Money
    abandonment_cost: Money
    total: Money

    @classmethod
    def between(cls, candidate: CostBreakdown, active: CostBreakdown) -> CostDifference:
        """``candidate`` − ``active``, field by field."""
        money = [name for name in cls.model_fields if name != "currency"]
        return cls(
            currency=candidate.currency,
            **{name: getattr(candidate, name) - getattr(active, name) for name in money},
        )


class ScenarioRecall(BaseModel):
    """Fraud caught per fraud scenario, candidate vs active."""

    scenario: str
    fraud: int
    caught_candidate: int
    caught_active: int
    recall_candidate: float
    recall_active: float


class CurvePoint(BaseModel):
    """The candidate policy with its score threshold set to ``score_threshold`` (None = off)."""

    score_threshold: float | None
    approval_rate: float
    recall: float | None


class RuleFigures(BaseModel):
    """What one candidate rule does over the selected rows (amounts in GBP at the reference
    rates; rows without a rate add nothing to ``amount_decided``)."""

    index: int
    name: str
    action: str
    matched: int = Field(description="Rows where the rule's condition is true.")
    decided: int = Field(description="Rows this rule decided (first match in evaluation order).")
    fraud_decided: int = Field(description="Fraud rows this rule decided.")
    unique_fraud: int = Field(
        description="Fraud rows this rule matches and no other block or review rule does: "
        "what it alone catches (0 for allow rules)."
    )
    false_positives: int = Field(
        description="Legitimate labelled rows this block or review rule decided (0 for allow "
        "rules, which approve)."
    )
    amount_decided: Money = Field(description="GBP amount of the rows this rule decided.")


class OverlapCell(BaseModel):
    """Fraud rows two block or review rules both match."""

    a: str
    b: str
    fraud_both: int


class BacktestResult(BaseModel):
    """Candidate vs active over the same rows and the same stored draws."""

    filters: RowFilter
    candidate_policy: Policy
    active_policy: Policy
    candidate: PolicyMetrics
    active: PolicyMetrics
    newly_declined: int = Field(description="Rows the active policy approves, the candidate not.")
    newly_approved: int = Field(description="Rows the active policy declines, the candidate not.")
    scenarios: list[ScenarioRecall]
    curve: list[CurvePoint] = Field(
        description="Approval rate vs fraud caught with a block rule ':risk_score: >= t' in "
        "place of the candidate's own score-threshold rule, for t = 0, 0.01, ..., 1 (None: none)."
    )
    rules: list[RuleFigures] = Field(description="Per candidate rule, in the policy's order.")
    overlap: list[OverlapCell] = Field(
        description="Per pair of candidate block/review rules, the fraud rows both match."
    )
    cost_model: CostModel = Field(
        description="The cost model both policies were priced with (backtests are not stored: "
        "the answer carries it)."
    )
    cost_difference: CostDifference = Field(
        description="candidate.costs − active.costs for each cost (negative: the candidate "
        "costs less)."
    )
    elapsed_ms: float


def _score_bin(score: str) -> str:
    """The number of curve thresholds k/STEPS (k ≥ 1) with ``score >= k/STEPS``, computed
    exactly (a plain floor(score·STEPS) can be off by one where the product rounds). A score
    is within [0, 1], so the floor is at most STEPS."""
    s = CURVE_STEPS
    b0 = f"floor({score} * {s})"
    return (
        f"(CAST({b0} AS INTEGER) + CASE WHEN {b0} < {s} AND {score} >= ({b0} + 1) / {s}.0 "
        f"THEN 1 ELSE 0 END - CASE WHEN {score} < {b0} / {s}.0 THEN 1 ELSE 0 END)"
    )


Grouped = Callable[[str, dict[str, Any]], pd.DataFrame]
"""Runs an aggregating query (SQL, parameters) and returns its groups: counts and sums only,
so groups of disjoint sets of rows add up to those of their union."""

UNLABELLED, LEGITIMATE, FRAUD = 0, 1, 2
"""The labels :func:`label_sql` gives a row."""
_FRAUD_REASONS = ", ".join(f"'{reason}'" for reason in FRAUD_DISPUTE_REASONS)


def label_sql(labels_as_of: bool) -> str:
    """The label a backtest counts for each simulated row, as SQL: 0 unlabelled, 1 legitimate,
    2 fraud (a live row here is 0; its label comes from its disputes, :func:`backtest_label_sql`).

    - A simulated row (``run_id`` set) is labelled by its ground truth ``is_fraud`` (friendly
      fraud is the cardholder's own payment: legitimate). With ``labels_as_of`` (the parameter
      ``$labels_as_of``), it is labelled by its observed dispute instead, as an analyst saw it
      then: fraud once a ``fraud`` or ``friendly_fraud`` dispute arrived
      (``label_available_at <= $labels_as_of``), else legitimate: an approved payment with no
      chargeback yet. So fraud not disputed yet or never disputed counts as legitimate, and
      friendly fraud and false disputes filed as fraud count as fraud (label noise); a declined
      row has no dispute (nothing was charged). Disputes recorded through the API on simulated
      rows are kept and audited but change no label: the run's own outcomes already hold.
    - A live row is labelled only by disputes: fraud when a ``fraud`` or ``friendly_fraud``
      dispute exists (reported by ``labels_as_of`` when given), else unlabelled; live traffic
      has no ground truth, and a payment nobody disputed is not known to be legitimate.
    """
    simulated = (
        f"dispute_reason IN ({_FRAUD_REASONS}) AND label_available_at <= $labels_as_of"
        if labels_as_of
        else "is_fraud"
    )
    return (
        f"CASE WHEN run_id IS NULL THEN {UNLABELLED} WHEN is_fraud IS NULL THEN {UNLABELLED} "
        f"WHEN {simulated} THEN {FRAUD} ELSE {LEGITIMATE} END"
    )


def backtest_label_sql(label: str, live: str) -> str:
    """The backtest's label (:func:`label_sql`, live rows by their disputes) from the
    comparison's (SQL ``label``, with its friendly-fraud label 3, :mod:`engine.compare`) and
    whether the row is live traffic (SQL ``live``): friendly fraud is legitimate on a simulated
    row (the cardholder's own payment) and, as any fraud dispute, fraud on a live row (what its
    dispute says)."""
    return (
        f"(CASE WHEN {label} = 3 THEN CASE WHEN {live} THEN {FRAUD} ELSE {LEGITIMATE} END "
        f"ELSE {label} END)"
    )


@dataclass(frozen=True, slots=True)
class Regroup:
    """A second grouping of a comparison query's rows, computed in its scan
    (:func:`engine.compare.compare_sql`): the backtest's groups. ``carried``: (name, SQL over a
    transaction row) columns the rows carry for it, ``cents`` among them (summed per group);
    ``keys``: (name, SQL over the carried columns, the label, scores, challenge outcomes and
    match words) the groups are keyed by; ``params``: what their SQL binds."""

    carried: list[tuple[str, str]]
    keys: list[tuple[str, str]]
    params: dict[str, Any]


def backtest_regroup(
    shared: SharedRules, scenarios: list[str], candidate: Decider, active: Decider
) -> Regroup:
    """The backtest's grouping of a comparison of ``active`` (A) and ``candidate`` (B): each
    row gets an integer ``k`` packing (label, scenario, candidate score bin, challenge outcomes)
    and the shared match words (``shared``: :func:`engine.compare.shared_rules`), one BIGINT
    with the words when they fit, else beside it. ``scenarios`` lists the fraud scenario names
    to code (1-based; 0 = none or unknown)."""
    label = backtest_label_sql("label", "live")
    scenario_code = "0"
    params: dict[str, Any] = {}
    if scenarios:
        whens = " ".join(f"WHEN $s{i} THEN {i + 1}" for i in range(len(scenarios)))
        scenario_code = (
            f"CASE WHEN {label} = {FRAUD} THEN (CASE fraud_scenario {whens} ELSE 0 END) ELSE 0 END"
        )
        params = {f"s{i}": name for i, name in enumerate(scenarios)}
    b, n_sc = CURVE_STEPS + 1, len(scenarios) + 1
    key = f"(({label} * {n_sc} + {scenario_code}) * {b} + {_score_bin('b_score')})"
    for side, decider in (("b", candidate), ("a", active)):  # decoded A first, then B
        if decider.policy.challenges:
            key = f"({key} * 3 + {side}_challenge)"
    n_outcomes = int(candidate.policy.challenges) + int(active.policy.challenges)
    carried = [
        ("live", "run_id IS NULL"),
        ("fraud_scenario", "fraud_scenario"),
        ("cents", "CAST(amount * 100 AS BIGINT)"),
    ]
    if _packs(shared.conditions, n_sc, n_outcomes):
        keys = [("bk", f"({key}::BIGINT * {1 << shared.conditions} + w0)::BIGINT")]
    else:
        keys = [("bk", f"{key}::BIGINT")] + [(f"w{i}", f"w{i}") for i in range(len(shared.words))]
    return Regroup(carried, keys, params)


def _packs(conditions: int, n_scenarios: int, n_outcomes: int) -> bool:
    """Whether the match bits and the (label, scenario, score bin, challenge outcomes) key fit
    one non-negative BIGINT: hashing one integer per row is cheaper than hashing several."""
    key_bits = (3 * n_scenarios * (CURVE_STEPS + 1) * 3**n_outcomes).bit_length()
    return conditions + key_bits <= 62


def scenarios_sql(filters: RowFilter) -> tuple[str, dict[str, Any]]:
    """The fraud scenario names among the selected rows."""
    where, params = filters.where()
    return (
        f"SELECT DISTINCT fraud_scenario FROM transactions {where} "
        "AND is_fraud AND fraud_scenario IS NOT NULL ORDER BY 1",
        params,
    )


def any_fraud_dispute(tx: ReadTx) -> bool:
    """Whether any dispute labels a payment fraud (most databases have none: no join then)."""
    row = tx.one(f"SELECT EXISTS (SELECT 1 FROM disputes WHERE reason IN ({_FRAUD_REASONS}))")
    return bool(row and row[0])


def run_backtest(
    store: Store,
    lists: Lists,
    candidate: Decider,
    active: Decider,
    filters: RowFilter | None = None,
    grouped: Grouped | None = None,
    costs: CostModel | None = None,
    scored_with: ScoreWeights | None = None,
) -> BacktestResult:
    """Re-decide the rows selected by ``filters`` under ``candidate`` and ``active`` with their
    stored draws, and report both, priced with ``costs`` (default: the default model).

    One scan: the comparison's query (:func:`engine.compare.compare_sql`, active as A and
    candidate as B: the costs need the day, card and score of each payment) with the
    backtest's own grouping added to it (:func:`backtest_regroup`), so each rule is evaluated
    once per row for both; a small query listing the scenarios runs first in the same
    snapshot. The rest is arithmetic on the groups. ``lists`` holds the lists the policies pin
    (read as semi-joins in the query). ``grouped`` runs the aggregating query elsewhere (a lake
    run's partitions on a cluster: :mod:`engine.lake.cluster`), else it runs in the store.
    ``scored_with``: the weights every selected row was scored with when it was decided, if
    known (a run's policy's): a policy with those weights reads the stored scores."""
    from engine.compare import (  # engine.compare builds on this module
        DEFAULT_CONFIDENCE,
        DEFAULT_REPLICATES,
        compare_sql,
        compared_groups,
        shared_rules,
        sides,
    )

    started = time.perf_counter()
    filters = filters or RowFilter()
    costs = costs or CostModel()
    a_side, b_side = sides(active, candidate, lists)  # reads the lists: before the snapshot
    shared = shared_rules(a_side, b_side)
    with store.read() as tx:
        names = [row[0] for row in tx.rows(*scenarios_sql(filters))]
        # a simulation run's rows take no labels from disputes: no join to pay for
        disputes = not isinstance(filters.run, int) and any_fraud_dispute(tx)
        regroup = backtest_regroup(shared, names, candidate, active)
        sql, params = compare_sql(a_side, b_side, filters, disputes, costs.review_capacity,
                                  regroup, scored_with)  # fmt: skip
        groups = grouped(sql, params) if grouped is not None else tx.frame(sql, params)
    backtest_groups = groups["part"] == 3
    priced = compared_groups(groups[~backtest_groups], filters, costs, active.policy,
                             candidate.policy, DEFAULT_REPLICATES, DEFAULT_CONFIDENCE, 0,
                             started)  # fmt: skip
    g = _Groups.of(groups[backtest_groups], names, candidate, active, shared)
    c_costs, a_costs = priced.b.costs, priced.a.costs
    return BacktestResult(
        filters=filters,
        candidate_policy=candidate.policy,
        active_policy=active.policy,
        candidate=_metrics(g, g.c_approved, g.c_reason, c_costs),
        active=_metrics(g, g.a_approved, g.a_reason, a_costs),
        newly_declined=int(g.n[g.a_approved & ~g.c_approved].sum()),
        newly_approved=int(g.n[~g.a_approved & g.c_approved].sum()),
        scenarios=_scenarios(g),
        curve=_curve(g.n, g.fraud, g.c_bin, g.c_rest_approved, g.c_allowed),
        rules=_rule_figures(g, candidate.policy),
        overlap=_overlap(g, candidate.policy),
        cost_model=costs,
        cost_difference=CostDifference.between(c_costs, a_costs),
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    )


@dataclass(frozen=True, slots=True)
class _Groups:
    """The aggregated rows, decoded: one entry per group, and both policies' decisions."""

    n: np.ndarray
    cents: np.ndarray
    pence: np.ndarray
    labelled: np.ndarray
    fraud: np.ndarray
    scenario: np.ndarray
    c_bin: np.ndarray
    c_matches: np.ndarray  # rules x groups
    c_rule: np.ndarray
    c_approved: np.ndarray
    c_reason: np.ndarray
    c_rest_approved: np.ndarray  # approved without the candidate's score-threshold rule
    c_allowed: np.ndarray  # an allow or challenge rule of the candidate matched
    a_approved: np.ndarray
    a_reason: np.ndarray

    @property
    def legit(self) -> np.ndarray:
        return self.labelled & ~self.fraud

    @staticmethod
    def of(
        groups: pd.DataFrame,
        scenarios: list[str],
        candidate: Decider,
        active: Decider,
        shared: SharedRules,
    ) -> _Groups:
        """Decode the ``part`` 3 rows of the backtest's query (:func:`backtest_regroup`)."""
        k = groups["k"].to_numpy(dtype=np.int64)
        n_outcomes = int(candidate.policy.challenges) + int(active.policy.challenges)
        if _packs(shared.conditions, len(scenarios) + 1, n_outcomes):
            words = (k & ((1 << shared.conditions) - 1)).reshape(-1, 1)
            k = k >> shared.conditions
        else:
            words = _words(groups, "w")
        bits = unpack_words(words, shared.conditions)
        c_matches, a_matches = bits[shared.b_bits], bits[shared.a_bits]
        a_outcome = c_outcome = None  # each policy's challenge outcome code, when it challenges
        if active.policy.challenges:
            k, a_outcome = np.divmod(k, 3)
        if candidate.policy.challenges:
            k, c_outcome = np.divmod(k, 3)
        k, c_bin = np.divmod(k, CURVE_STEPS + 1)
        label, sc = np.divmod(k, len(scenarios) + 1)
        names = np.array(["(none)", *scenarios], dtype=object)
        c_passed = None if c_outcome is None else c_outcome == PASSED
        a_passed = None if a_outcome is None else a_outcome == PASSED
        c = decide_from_matches(c_matches, candidate.rules.actions, c_passed)
        a = decide_from_matches(a_matches, active.rules.actions, a_passed)
        return _Groups(
            n=groups["n"].to_numpy(dtype=np.int64),
            cents=groups["cents"].fillna(0).to_numpy(dtype=np.int64),
            pence=groups["pence"].fillna(0).to_numpy(dtype=np.int64),
            labelled=label != UNLABELLED,
            fraud=label == FRAUD,
            scenario=names[sc],
            c_bin=c_bin,
            c_matches=c_matches,
            c_rule=c.rule_index,
            c_approved=c.approved,
            c_reason=settled_reasons(c.rule_index, reason_codes(candidate.policy), c.action,
                                     c_outcome),
            c_rest_approved=_without_score_rule(c_matches, candidate, c_passed),
            # allow and challenge rules decide before any block rule: no threshold reaches them
            c_allowed=c_matches[np.isin(candidate.rules.actions, _BEFORE_BLOCK)].any(axis=0),
            a_approved=a.approved,
            a_reason=settled_reasons(a.rule_index, reason_codes(active.policy), a.action,
                                     a_outcome),
        )  # fmt: skip


def _words(groups: pd.DataFrame, prefix: str) -> np.ndarray:
    columns = [c for c in groups.columns if re.fullmatch(rf"{prefix}\d+", c)]
    return groups[columns].to_numpy(dtype=np.int64)


def _without_score_rule(
    matches: np.ndarray, decider: Decider, challenge_passed: np.ndarray | None
) -> np.ndarray:
    """Whether each group is approved once the candidate's score-threshold rule (the block
    rule :meth:`Policy.from_knobs` names after the original text) is taken out: the curve puts
    its own threshold in that rule's place."""
    scored = [i for i, r in enumerate(decider.policy.rules) if r.name == SCORE_RULE]
    if scored:
        matches = matches.copy()
        matches[scored] = False
    return decide_from_matches(matches, decider.rules.actions, challenge_passed).approved


def _metrics(
    g: _Groups, approved: np.ndarray, reason: np.ndarray, costs: CostBreakdown
) -> PolicyMetrics:
    n, ok = g.n, approved
    rows = int(n.sum())
    n_approved = int(n[ok].sum())
    fraud_total = int(n[g.fraud].sum())
    caught = int(n[g.fraud & ~ok].sum())
    declined_labelled = int(n[g.labelled & ~ok].sum())
    shifted = g.fraud & (reason == Reason.CHALLENGE_PASSED)  # the issuer's loss, not ours
    return PolicyMetrics(
        rows=rows,
        approved=n_approved,
        declined=rows - n_approved,
        approval_rate=n_approved / rows if rows else 0.0,
        decline_rate=(rows - n_approved) / rows if rows else 0.0,
        labelled=int(n[g.labelled].sum()),
        fraud=fraud_total,
        fraud_caught=caught,
        recall=caught / fraud_total if fraud_total else None,
        precision=caught / declined_labelled if declined_labelled else None,
        fraud_loss=Decimal(int(g.cents[g.fraud & ok & ~shifted].sum())).scaleb(-2),
        false_declines=int(n[g.legit & ~ok].sum()),
        false_decline_amount=Decimal(int(g.cents[g.legit & ~ok].sum())).scaleb(-2),
        declines_by_reason={
            r.name: int(n[~ok & (reason == r)].sum()) for r in Reason if r in DECLINE_REASONS
        },
        challenged=int(n[reason >= Reason.CHALLENGE_PASSED].sum()),
        challenge_passed=int(n[reason == Reason.CHALLENGE_PASSED + PASSED].sum()),
        challenge_abandoned=int(n[reason == Reason.CHALLENGE_PASSED + ABANDONED].sum()),
        challenge_failed=int(n[reason == Reason.CHALLENGE_PASSED + FAILED].sum()),
        liability_shifted=int(n[shifted].sum()),
        costs=costs,
    )


def _scenarios(g: _Groups) -> list[ScenarioRecall]:
    out = []
    for name in sorted(set(g.scenario[g.fraud])):
        rows = g.fraud & (g.scenario == name)
        total = int(g.n[rows].sum())
        cc = int(g.n[rows & ~g.c_approved].sum())
        ca = int(g.n[rows & ~g.a_approved].sum())
        out.append(
            ScenarioRecall(
                scenario=str(name),
                fraud=total,
                caught_candidate=cc,
                caught_active=ca,
                recall_candidate=cc / total if total else 0.0,
                recall_active=ca / total if total else 0.0,
            )
        )
    return out


def _catching(policy: Policy) -> list[int]:
    """The indices of the challenge, block and review rules (those that catch)."""
    return [i for i, r in enumerate(policy.rules) if r.action in ("challenge", "block", "review")]


def _rule_figures(g: _Groups, policy: Policy) -> list[RuleFigures]:
    catching = _catching(policy)
    catching_count = g.c_matches[catching].sum(axis=0) if catching else np.zeros(len(g.n))
    figures = []
    for i, rule in enumerate(policy.rules):
        matched = g.c_matches[i]
        decided = g.c_rule == i
        catches = rule.action != "allow"
        alone = matched & (catching_count == 1) if catches else np.zeros_like(matched)
        figures.append(
            RuleFigures(
                index=i,
                name=rule.name,
                action=rule.action,
                matched=int(g.n[matched].sum()),
                decided=int(g.n[decided].sum()),
                fraud_decided=int(g.n[decided & g.fraud].sum()),
                unique_fraud=int(g.n[alone & g.fraud].sum()),
                false_positives=int(g.n[decided & g.legit].sum()) if catches else 0,
                amount_decided=Decimal(int(g.pence[decided].sum())).scaleb(-2),
            )
        )
    return figures


def _overlap(g: _Groups, policy: Policy) -> list[OverlapCell]:
    catching = _catching(policy)
    fraud_n = np.where(g.fraud, g.n, 0)
    m = g.c_matches[catching].astype(np.int64)
    both = (m * fraud_n) @ m.T  # both[i, j] = fraud rows rules i and j both match
    return [
        OverlapCell(a=policy.rules[i].name, b=policy.rules[j].name, fraud_both=int(both[x, y]))
        for x, i in enumerate(catching)
        for y, j in enumerate(catching)
        if x < y
    ]


def _curve(
    n: np.ndarray,
    fraud: np.ndarray,
    score_bin: np.ndarray,
    rest_ok: np.ndarray,
    allowed: np.ndarray,
) -> list[CurvePoint]:
    """Approval rate and recall at each score threshold k/STEPS, plus the rule switched off.

    At threshold k/STEPS a row is approved when the candidate without its score-threshold rule
    approves it (``rest_ok``) and either an allow rule matched it (allow rules come first, so
    no threshold reaches it) or its score bin is below k.
    """
    rows = int(n.sum())
    fraud_total = int(n[fraud].sum())
    bins = np.clip(score_bin.astype(np.int64), 0, CURVE_STEPS)
    # shifted <= k  <=>  approved at threshold k (given rest_ok); index STEPS + 1: no threshold
    shifted = np.where(allowed, 0, bins + 1)
    size = CURVE_STEPS + 2
    approved_at = np.cumsum(np.bincount(shifted[rest_ok], weights=n[rest_ok], minlength=size))
    fraud_ok = rest_ok & fraud
    missed_at = np.cumsum(np.bincount(shifted[fraud_ok], weights=n[fraud_ok], minlength=size))
    thresholds = [k / CURVE_STEPS for k in range(CURVE_STEPS + 1)] + [None]
    return [
        CurvePoint(
            score_threshold=threshold,
            approval_rate=approved_at[k] / rows if rows else 0.0,
            recall=(fraud_total - missed_at[k]) / fraud_total if fraud_total else None,
        )
        for k, threshold in enumerate(thresholds)
    ]
