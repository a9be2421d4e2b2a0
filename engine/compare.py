"""Compare any two policies over the same stored payments, in money, with confidence intervals.

Both policies re-decide every selected row with its stored draw (common random numbers), as a
backtest does: the same rule SQL (:meth:`engine.rules.CompiledPolicy.sql`) and the same
decision (:func:`engine.rules.action_from_words_sql`, the SQL twin of ``decide_from_matches``),
a condition that rules of both policies test evaluated once (:func:`shared_rules`). One
query aggregates the rows per (day, label, action under A, action under B), and counts the
distinct falsely declined cards, each on the first day it was falsely declined.

**Intervals** are a paired day-block bootstrap: the selection's days are resampled with
replacement (``replicates`` times, from ``seed``), both policies' totals are recomputed on the
same resampled days, and the interval of each difference (B − A) is the central ``confidence``
share of the resampled differences (percentile method). Pairing matters: both policies see the
same payments and draws, so a day with much fraud raises both losses and mostly cancels in the
difference, which makes the interval far tighter than two separate intervals would. Days are
the blocks because fraud comes in episodes that span hours, not single payments. Fewer than two
days give no interval.

**Labels** are the backtest's (:func:`engine.backtest.label_sql`) with one more: friendly fraud
(:data:`FRIENDLY`), a genuine payment its cardholder disputes, priced as a chargeback
(:mod:`engine.costs`): a simulated row whose ``fraud_scenario`` is ``friendly_fraud`` (with
``labels_as_of``: once its dispute was reported, unless it was filed as ``fraud``, which the
backtest already counts as fraud), a live row with a ``friendly_fraud`` dispute and no other
fraud dispute (reported by ``labels_as_of`` when given).

**CP@k** (card precision at capacity, the Fraud Detection Handbook's card precision top-k):
with a review capacity k, each day the selection's cards with a payment the policy sent to
review are ranked by their highest risk score among those payments that day (at equal scores a
card without fraud first: ties never flatter the policy); of the first k, those compromised
(with a fraud-labelled payment that day, whatever its decision) are counted. CP@k is that count
summed over the days divided by k x the days (days with fewer than k queued cards count the
missing ones as misses, as the handbook's ``card_precision_top_k_day`` does).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from engine.backtest import (
    FRAUD,
    LEGITIMATE,
    UNLABELLED,
    Grouped,
    Regroup,
    any_fraud_dispute,
    label_sql,
)
from engine.challenge import ABANDONED, FAILED, OUTCOME_NAMES, PASSED, ChallengeModel
from engine.costs import Consequences, CostBreakdown, CostModel, cost_breakdown
from engine.decision import Decider, score_sql
from engine.filters import RowFilter
from engine.lists import Lists
from engine.models import FRAUD_DISPUTE_REASONS, Money, UtcDateTime
from engine.policy import Policy, ScoreWeights
from engine.rules import (
    ACTION_NAMES,
    BITS_PER_WORD,
    DECISION_ORDER,
    Action,
    action_from_words_sql,
)
from engine.store import ReadTx, Store

DEFAULT_REPLICATES = 2_000
# Outcome codes per policy: Action codes 0-3, then a challenge rule's decision as
# CHALLENGED + its outcome (passed, abandoned, failed). The group key packs (day, label, A
# outcome code, B outcome code).
CHALLENGED = int(Action.CHALLENGE)
_ACTIONS = CHALLENGED + 3
FRIENDLY = 3
"""The comparison's fourth label (after the backtest's unlabelled, legitimate, fraud): friendly
fraud, a genuine payment its cardholder disputes."""
_LABELS = FRIENDLY + 1
_GENUINE = f"({LEGITIMATE}, {FRIENDLY})"  # labels whose decline is a false decline
# whole days since 0001-01-01 (a date difference: ~6x cheaper than dividing epoch_ms)
_EPOCH_DAY = "(CAST(created_at AS DATE) - DATE '0001-01-01')"
_FRAUD_REASONS = ", ".join(f"'{reason}'" for reason in FRAUD_DISPUTE_REASONS)


def _label(k: str) -> str:
    return f"({k} // {_ACTIONS**2} % {_LABELS})"


def _day(k: str) -> str:
    return f"({k} // {_ACTIONS**2 * _LABELS})"


def _a(k: str) -> str:
    return f"({k} // {_ACTIONS} % {_ACTIONS})"


def _b(k: str) -> str:
    return f"({k} % {_ACTIONS})"


DEFAULT_CONFIDENCE = 0.95


class PolicyOutcome(BaseModel):
    """What one policy does to the selected rows, counted and priced."""

    rows: int
    approved: int
    approval_rate: float
    labelled: int = Field(description="Rows with a label (see the backtest's labels).")
    fraud: int
    fraud_caught: int = Field(description="Fraud rows declined.")
    fraud_stopped: int = Field(description="Fraud rows the review team worked and stopped.")
    recall: float | None = Field(
        description="(fraud_caught + fraud_stopped) / fraud (None without fraud)."
    )
    false_declines: int = Field(
        description="Legitimate and friendly-fraud rows declined by a block rule."
    )
    friendly_fraud: int = Field(
        0,
        description="Friendly-fraud rows (genuine payments their cardholder disputed: not fraud; "
        "approved, each costs its amount and a chargeback fee).",
    )
    review_marked: int = Field(description="Rows a review rule decided (approved, for review).")
    reviewed: int = Field(description="Rows the review team worked (within its capacity).")
    review_backlog: int = Field(description="review_marked - reviewed: never worked.")
    review_hit_rate: float | None = Field(
        description="fraud_stopped / reviewed (None when nothing was reviewed)."
    )
    cp_at_k: float | None = Field(
        None,
        description="Card precision at capacity k (the Fraud Detection Handbook's CP@k, "
        "k = review_capacity): each day, the k cards with the highest risk score among their "
        "payments sent to review that day (ties: cards without fraud first); the share of them "
        "with a fraud payment that day; the compromised cards found summed over the days "
        "divided by k x days (a day with fewer than k queued cards counts the rest as misses). "
        "None without a review capacity (or with capacity 0).",
    )
    cp_at_k_cards: int | None = Field(
        None,
        description="The compromised cards among each day's k riskiest queued cards, summed "
        "over the days: CP@k's numerator. None without a review capacity.",
    )
    challenged: int = Field(0, description="Rows a challenge rule decided.")
    challenge_passed: int = Field(0, description="Challenged rows passed: approved.")
    challenge_abandoned: int = Field(
        0, description="Challenged rows a genuine payer abandoned: declined, a lost sale."
    )
    challenge_failed: int = Field(0, description="Challenged rows a fraudster failed: declined.")
    liability_shifted: int = Field(
        0, description="Fraud rows approved after a passed challenge: the issuer's loss."
    )
    costs: CostBreakdown


class Difference(BaseModel):
    """B − A for one metric, with its paired bootstrap interval (None with fewer than 2 days)."""

    metric: str
    a: float
    b: float
    difference: float
    low: float | None
    high: float | None


class IntervalMethod(BaseModel):
    """How the intervals were computed."""

    method: str = "paired day-block bootstrap, percentile interval"
    confidence: float
    replicates: int
    blocks: int = Field(description="Days in the selection (the resampled blocks).")
    seed: int


class MaturityPoint(BaseModel):
    """The comparison as it would have looked ``days_after`` the selection's last payment:
    only the disputes known by then count (most fraud is not disputed at month end)."""

    days_after: int
    labels_as_of: UtcDateTime
    fraud_known: int = Field(description="Fraud payments labelled by then.")
    a_total_cost: Money
    b_total_cost: Money
    total_cost: Difference = Field(description="B − A in total cost, with its interval.")


class Comparison(BaseModel):
    """Policy A vs policy B over the same rows and the same stored draws."""

    filters: RowFilter
    costs: CostModel
    a_policy: Policy
    b_policy: Policy
    a: PolicyOutcome
    b: PolicyOutcome
    differences: list[Difference] = Field(
        description="B − A for total_cost, fraud_loss, false_decline_cost, review_cost, "
        "challenge_cost, abandonment_cost, friendly_fraud_loss, "
        "approval_rate, recall, fraud_caught, false_declines, reviewed and, with a review "
        "capacity, cp_at_k."
    )
    interval: IntervalMethod
    unpriced: int = Field(description="Rows in a currency without a reference rate (no amount).")
    maturity: list[MaturityPoint] = Field(
        default_factory=list,
        description="The same comparison with the labels known N days after the selection's "
        "last payment, for each N asked (label maturity).",
    )
    elapsed_ms: float


@dataclass(frozen=True, slots=True)
class DailyCounts:
    """One policy's per-day sums (arrays over the selection's days, in day order)."""

    rows: np.ndarray
    approved: np.ndarray
    labelled: np.ndarray
    fraud: np.ndarray
    fraud_caught: np.ndarray
    false_declines: np.ndarray
    review_marked: np.ndarray  # payments a review rule decided
    reviewed: np.ndarray  # those the team worked (within its daily capacity)
    fraud_stopped: np.ndarray  # fraud among the worked ones: refunded before any dispute
    approved_fraud_pence: np.ndarray  # approved fraud that was not stopped
    false_decline_pence: np.ndarray
    false_declined_cards: np.ndarray  # each card on the first day it was falsely declined
    challenged: np.ndarray
    challenge_passed: np.ndarray
    challenge_abandoned: np.ndarray  # a lost sale, priced like a false decline's margin
    challenge_failed: np.ndarray
    abandoned_pence: np.ndarray
    liability_shifted: np.ndarray  # fraud approved after a passed challenge: not the merchant's
    friendly: np.ndarray  # friendly-fraud payments, whatever their decision
    friendly_approved: np.ndarray  # approved ones: each a chargeback
    friendly_approved_pence: np.ndarray
    cp_cards: np.ndarray  # compromised cards among the day's k riskiest queued cards (CP@k)
    blocks: np.ndarray  # 1 per day: resampled, the number of days drawn

    def total(self) -> Consequences:
        """The whole selection's counts, exactly."""
        lost = (
            self.fraud.sum()
            - self.fraud_caught.sum()
            - self.fraud_stopped.sum()
            - self.liability_shifted.sum()
        )
        return Consequences(
            approved_fraud=int(lost),
            approved_fraud_pence=int(self.approved_fraud_pence.sum()),
            false_declines=int(self.false_declines.sum()),
            false_decline_pence=int(self.false_decline_pence.sum()),
            false_declined_cards=int(self.false_declined_cards.sum()),
            reviewed=int(self.reviewed.sum()),
            challenged=int(self.challenged.sum()),
            abandoned=int(self.challenge_abandoned.sum()),
            abandoned_pence=int(self.abandoned_pence.sum()),
            liability_shifted=int(self.liability_shifted.sum()),
            friendly_fraud=int(self.friendly_approved.sum()),
            friendly_fraud_pence=int(self.friendly_approved_pence.sum()),
        )

    def resampled(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Each field's total on every resampled selection (``weights``: replicates x days)."""
        return {
            name: weights @ getattr(self, name).astype(np.float64)
            for name in DailyCounts.__dataclass_fields__
        }


def compare_sql(
    a_side: RuleSide,
    b_side: RuleSide,
    filters: RowFilter,
    fraud_disputes: bool,
    review_capacity: int | None = None,
    regroup: Regroup | None = None,
    scored_with: ScoreWeights | None = None,
) -> tuple[str, dict[str, Any]]:
    """The one aggregating query of a comparison (sides from :func:`sides`; the result's rows
    in :func:`_aggregated_sql`). Without a review capacity the order of the review queue does
    not matter: no group per queued score. ``regroup`` adds a second grouping of the same
    rows to the same scan (a backtest's: :class:`engine.backtest.Regroup`), its groups the
    result's ``part`` 3 rows. ``scored_with``: the weights every selected row was scored with
    when it was decided, if known (:func:`engine.decision.score_sql`)."""
    a, b = a_side.decider, b_side.decider
    same_weights = a.policy.score_weights == b.policy.score_weights
    shared = shared_rules(a_side, b_side)
    where, params = filters.where()
    params = {**params, **shared.params, **(regroup.params if regroup else {})}
    as_of = filters.labels_as_of_utc()
    if as_of is not None:
        params["labels_as_of"] = as_of
    a_score, b_score = (score_sql(d.policy.score_weights, scored_with) for d in (a, b))
    b_score = "" if same_weights else f", {b_score} AS b_score"
    b_score_column = "a_score AS b_score" if same_weights else "b_score"
    words = [f"{w} AS w{i}" for i, w in enumerate(shared.words)]
    names = [f"w{i}" for i in range(len(words))]
    outcomes = [
        f"{d.policy.challenge.outcome_sql()} AS {side}_challenge"
        for side, d in (("a", a), ("b", b))
        if d.policy.challenges
    ]
    a_action = action_from_words_sql(names, shared.a_actions, f"{CHALLENGED} + a_challenge")
    b_action = action_from_words_sql(names, shared.b_actions, f"{CHALLENGED} + b_challenge")
    joined = comparison_disputes_join(as_of is not None) if fraud_disputes else ""
    carried = "".join(f", {sql} AS {name}" for name, sql in regroup.carried) if regroup else ""
    ctes = f"""
        selected AS NOT MATERIALIZED (
            SELECT *, {a_score} AS a_score{b_score}
            FROM transactions {joined} {where}
        ), matched AS NOT MATERIALIZED (
            SELECT {comparison_label_sql(as_of is not None, fraud_disputes)} AS label,
                   {_EPOCH_DAY} AS day, card_hash,
                   CAST(amount_in_gbp * 100 AS BIGINT) AS pence, a_score, {b_score_column},
                   {"".join(f"{sql}, " for sql in outcomes)}{", ".join(words)}{carried}
            FROM selected
        ),"""
    rows = f"SELECT *, {a_action} AS a_action, {b_action} AS b_action FROM matched"
    return _aggregated_sql(ctes, rows, review_capacity, regroup), params


def stored_decisions_sql(
    filters: RowFilter,
    fraud_disputes: bool,
    review_capacity: int | None = None,
    shadow_challenge: ChallengeModel | None = None,
) -> tuple[str, dict[str, Any]]:
    """:func:`compare_sql` over the decisions stored on live rows instead of re-deciding: A is
    what was enforced (``action``, ``score``: the active policy's or a routed challenger's; a
    challenge's outcome from its ``reason_code``), B the shadow's (``shadow_action``,
    ``shadow_score``) on the rows version ``$shadow_version`` shadowed, a shadow challenge's
    outcome re-derived from the row's ``challenge_draw`` by ``shadow_challenge`` (the shadow
    policy's model) as the live path derived it. Same groups, same answer shape: the same
    metrics follow from it."""
    where, params = filters.where()
    as_of = filters.labels_as_of_utc()
    if as_of is not None:
        params["labels_as_of"] = as_of
    joined = comparison_disputes_join(as_of is not None) if fraud_disputes else ""
    enforced = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(ACTION_NAMES))
    outcome = " ".join(
        f"WHEN 'CHALLENGE_{name.upper()}' THEN {CHALLENGED + code}"
        for code, name in enumerate(OUTCOME_NAMES)
    )
    a_action = (
        f"CASE CAST(reason_code AS VARCHAR) {outcome} "
        f"ELSE CASE CAST(action AS VARCHAR) {enforced} END END"
    )
    b_action = "shadow_action"
    if shadow_challenge is not None:
        b_action = (
            f"CASE WHEN shadow_action = {CHALLENGED} "
            f"THEN {CHALLENGED} + {shadow_challenge.outcome_sql()} ELSE shadow_action END"
        )
    rows = f"""
        SELECT {comparison_label_sql(as_of is not None, fraud_disputes)} AS label,
               {_EPOCH_DAY} AS day,
               card_hash, CAST(amount_in_gbp * 100 AS BIGINT) AS pence,
               score AS a_score, shadow_score AS b_score,
               {a_action} AS a_action, {b_action} AS b_action
        FROM transactions {joined} {where} AND shadow_version = $shadow_version
    """
    return _aggregated_sql("", rows, review_capacity), params


def comparison_label_sql(labels_as_of: bool, fraud_disputes: bool) -> str:
    """The label a comparison counts for each row, as SQL: :func:`engine.backtest.label_sql`'s
    0 unlabelled, 1 legitimate, 2 fraud, and :data:`FRIENDLY` (see the module's "Labels").
    ``fraud_disputes``: whether the query joins :func:`comparison_disputes_join`."""
    live = (
        f"CASE WHEN fraud_disputed THEN {FRAUD} WHEN friendly_disputed THEN {FRIENDLY} "
        f"ELSE {UNLABELLED} END"
        if fraud_disputes
        else str(UNLABELLED)
    )
    friendly = "NOT is_fraud AND fraud_scenario = 'friendly_fraud'"
    if labels_as_of:  # reported by then, and not filed as fraud (which the analyst saw as fraud)
        friendly += (
            f" AND label_available_at <= $labels_as_of AND dispute_reason NOT IN ({_FRAUD_REASONS})"
        )
    return (
        f"CASE WHEN run_id IS NULL THEN {live} WHEN {friendly} THEN {FRIENDLY} "
        f"ELSE {label_sql(labels_as_of)} END"
    )


def comparison_disputes_join(labels_as_of: bool) -> str:
    """A LEFT JOIN giving each transaction ``fraud_disputed`` (a fraud dispute other than
    friendly fraud) and ``friendly_disputed`` (a ``friendly_fraud`` dispute), each reported by
    ``$labels_as_of`` when given; NULL without any."""
    known = " AND reported_at <= $labels_as_of" if labels_as_of else ""
    return (
        "LEFT JOIN (SELECT transaction_id, bool_or(reason <> 'friendly_fraud') AS fraud_disputed,"
        " bool_or(reason = 'friendly_fraud') AS friendly_disputed FROM disputes "
        f"WHERE reason IN ({_FRAUD_REASONS}){known} GROUP BY transaction_id) d "
        "ON d.transaction_id = transactions.id"
    )


def _aggregated_sql(
    ctes: str, rows: str, capacity: int | None, regroup: Regroup | None = None
) -> str:
    """The aggregation both comparisons share: ``rows`` (a query after the WITH items
    ``ctes``) gives each payment's label, day, card_hash, pence, a_score, b_score, a_action and
    b_action. Result rows:

    - ``part`` 0: per (day, label, A action, B action, and with a review ``capacity`` the risk
      score of a payment sent to review under A, under B) the rows, their GBP pence and how
      many had a rate. A score is kept only where it can be among the day's ``capacity``
      highest (at least that many queued payments score as high or higher: the others are
      never worked), else NULL, so the groups stay few;
    - ``part`` 1: per (first day falsely declined under A, under B) the distinct cards;
    - with a ``capacity``, ``part`` 2: per (day, compromised or not, the card's highest score
      among its payments A sent to review, the same under B) the cards, for CP@k; again only
      scores among the day's ``capacity`` highest cards' are kept, and cards with none left out.

    - with a ``regroup``, ``part`` 3: per value of its keys (the first in ``k``, the others in
      their own columns, NULL in the other parts) the rows, their pence and ``cents`` (the
      rows' sum of the ``cents`` column ``regroup`` carries): the same rows grouped a second
      way in the same scan, so the rules are evaluated once for both.

    Each payment's row is computed once (``decided``) and streamed to every grouping beside
    each other (DuckDB fans a materialized CTE out to its consumers): the per-card groupings
    see only the cards they need, the others few groups each.

    A lake run's shards hold disjoint cards and each keeps its own top ``capacity``: what is
    among a shard's top is the most a run-wide top can need, so the merged groups agree."""
    block, review = int(Action.BLOCK), int(Action.REVIEW)
    ranked = bool(capacity)  # capacity 0: nobody is worked, no order needed
    # without a capacity no score is kept: grouping by the key alone halves that grouping's
    # cost (DuckDB hashes every key column, constant or not)
    review_columns, grouped_scores, grouped_keys = (
        (
            "".join(
                f", CASE WHEN {side}_action = {review} THEN {side}_score END AS {side}_review_score"
                for side in "ab"
            ),
            "a_review_score, b_review_score",
            "ALL",
        )
        if ranked
        else ("", "NULL::DOUBLE AS a_review_score, NULL::DOUBLE AS b_review_score", "k")
    )
    # a card is kept where it counts: a false decline, and for CP@k a payment sent to review or
    # a fraud payment (what makes the card compromised)
    carded = f"label IN {_GENUINE} AND (a_action = {block} OR b_action = {block})"
    if ranked:
        carded += f" OR a_action = {review} OR b_action = {review} OR label = {FRAUD}"
    key = f"((day * {_LABELS} + label) * {_ACTIONS} + a_action) * {_ACTIONS} + b_action"
    regrouped, named_pad, pad = _regrouped_sql(regroup)
    sums = f"""
        SELECT 0 AS part, k, NULL::BIGINT AS b_day, a_review_score, b_review_score, n,
               pence::BIGINT AS pence, priced{named_pad}
        FROM grouped"""
    ranked_ctes = at_capacity = ""
    if ranked:
        ranked_ctes = f"""
        , cuts AS (  -- per day, the lowest score that can be among the capacity highest
            SELECT {_day("k")} AS day, list_min(max(a_review_score, {capacity})) AS a_cut,
                   list_min(max(b_review_score, {capacity})) AS b_cut
            FROM grouped GROUP BY ALL
        ), cards AS MATERIALIZED (
            SELECT {_day("k")} AS day, max(a_review_score) AS a_top,
                   max(b_review_score) AS b_top, bool_or({_label("k")} = {FRAUD}) AS compromised
            FROM decided WHERE card IS NOT NULL AND (a_review_score IS NOT NULL
                  OR b_review_score IS NOT NULL OR {_label("k")} = {FRAUD})
            GROUP BY card, day
        ), card_cuts AS (
            SELECT day, list_min(max(a_top, {capacity})) AS a_cut,
                   list_min(max(b_top, {capacity})) AS b_cut
            FROM cards GROUP BY ALL
        )"""
        sums = f"""
        SELECT 0 AS part, k, NULL::BIGINT AS b_day,
               CASE WHEN a_review_score >= a_cut THEN a_review_score END AS a_review_score,
               CASE WHEN b_review_score >= b_cut THEN b_review_score END AS b_review_score,
               sum(n)::BIGINT AS n, sum(pence)::BIGINT AS pence,
               sum(priced)::BIGINT AS priced{named_pad}
        FROM grouped JOIN cuts ON cuts.day = {_day("k")} GROUP BY ALL"""
        at_capacity = f"""
        UNION ALL
        SELECT 2, day * {_LABELS} + CASE WHEN compromised THEN {FRAUD} ELSE {LEGITIMATE} END,
               NULL, CASE WHEN a_top >= a_cut THEN a_top END,
               CASE WHEN b_top >= b_cut THEN b_top END, count(*), NULL, NULL{pad}
        FROM cards JOIN card_cuts USING (day)
        WHERE a_top >= a_cut OR b_top >= b_cut GROUP BY ALL"""
    regroup_columns = ""
    if regroup is not None:
        regroup_columns = "".join(f", {sql} AS {name}" for name, sql in regroup.keys) + ", cents"
    return f"""
        WITH {ctes} decided AS MATERIALIZED (
            SELECT {key} AS k, pence, CASE WHEN {carded} THEN card_hash END AS card
                   {review_columns}{regroup_columns}
            FROM ({rows})
        ), grouped AS MATERIALIZED (  -- a few thousand groups, plus with a capacity one per
            -- score of a payment sent to review (worked in score order)
            SELECT k, {grouped_scores}, count(*) AS n, sum(pence) AS pence,
                   count(pence) AS priced
            FROM decided GROUP BY {grouped_keys}
        ){ranked_ctes}
        {sums}
        UNION ALL
        SELECT 1, a_day, b_day, NULL, NULL, count(*), NULL, NULL{pad} FROM (
            SELECT card, min({_day("k")}) FILTER (WHERE {_a("k")} = {block}
                   AND {_label("k")} IN {_GENUINE}) AS a_day,
                   min({_day("k")}) FILTER (WHERE {_b("k")} = {block}
                   AND {_label("k")} IN {_GENUINE}) AS b_day
            FROM decided WHERE card IS NOT NULL GROUP BY card
        ) WHERE a_day IS NOT NULL OR b_day IS NOT NULL GROUP BY ALL{at_capacity}{regrouped}
    """


def _regrouped_sql(regroup: Regroup | None) -> tuple[str, str, str]:
    """``(part 3 query, named padding, padding)`` for :func:`_aggregated_sql`: the
    regrouping's groups of ``decided`` (none without ``regroup``), and the padding columns the
    comparison's parts carry for the regrouping's ``cents`` and extra keys."""
    if regroup is None:
        return "", "", ""
    names = [name for name, _ in regroup.keys]
    first, others = names[0], names[1:]
    extra = "".join(f", {n}" for n in others)
    regrouped = f"""
        UNION ALL
        SELECT 3, {first}, NULL, NULL, NULL, count(*), sum(pence)::BIGINT, count(pence),
               sum(cents)::BIGINT{extra}
        FROM decided GROUP BY {", ".join(names)}"""
    named = ", NULL::BIGINT AS cents" + "".join(f", NULL::BIGINT AS {n}" for n in others)
    return regrouped, named, ", NULL" * len(names)


@dataclass(frozen=True, slots=True)
class RuleSide:
    """One policy of a comparison: compiled, with each rule's condition as SQL."""

    decider: Decider
    conditions: list[str]  # rule i's condition (NULL where false), in the policy's order
    params: dict[str, Any]


def sides(a: Decider, b: Decider, lists: Lists) -> tuple[RuleSide, RuleSide]:
    """Both policies' rule SQL (this reads the pinned lists' versions: call it before opening
    the comparison's read snapshot). B reads A's score column when the weights agree."""
    same_weights = a.policy.score_weights == b.policy.score_weights
    return (
        _side(a, "a_", lists, "a_score"),
        _side(b, "b_", lists, "a_score" if same_weights else "b_score"),
    )


def _side(decider: Decider, prefix: str, lists: Lists, score_column: str) -> RuleSide:
    def membership(name: str, value_sql: str) -> tuple[str, dict[str, Any]]:
        return lists.membership_sql(name, dict(decider.policy.lists)[name], value_sql, "l_")

    plan = decider.rules.sql(prefix, membership, score_column)
    return RuleSide(decider, plan.conditions, plan.params)


@dataclass(frozen=True, slots=True)
class SharedRules:
    """Both policies' rules as one set of match words: each distinct condition (the same SQL
    with the same bound values) is one bit, evaluated once per row however many rules of A
    and B test it; ``a_actions[i]`` is A's action for bit i (``NONE``: no rule of A tests it),
    and ``b_actions`` B's."""

    words: list[str]
    a_actions: np.ndarray
    b_actions: np.ndarray
    params: dict[str, Any]  # what the words bind (a shared condition binds A's)
    conditions: int  # distinct conditions: the bits, each evaluated once per row
    a_bits: np.ndarray  # a_bits[i]: the bit of A's rule i (its condition's)
    b_bits: np.ndarray


def shared_rules(a: RuleSide, b: RuleSide) -> SharedRules:
    """:class:`SharedRules` of ``a`` and ``b``. Decisions are unchanged: a policy's action is
    the first kind (in :data:`DECISION_ORDER`) with a matching rule, so where one condition
    belongs to rules of different kinds of one policy only the kind tested first can decide
    and the bit carries that one."""
    bits: dict[str, int] = {}
    conditions: list[str] = []
    params: dict[str, Any] = {}
    chosen: list[list[int]] = []
    for side in (a, b):
        mine = []
        for sql in side.conditions:
            key = _bound(sql, side.params)
            if key not in bits:
                bits[key] = len(conditions)
                conditions.append(sql)
                params.update((m, side.params[m]) for m in _PARAM.findall(sql) if m in side.params)
            mine.append(bits[key])
        chosen.append(mine)
    rank = {int(action): i for i, action in enumerate(DECISION_ORDER)}
    actions = []
    for side, mine in zip((a, b), chosen, strict=True):
        deciding = np.full(len(conditions), int(Action.NONE), dtype=np.int8)
        for bit, action in zip(mine, side.decider.rules.actions, strict=True):
            held = int(deciding[bit])
            if held == Action.NONE or rank[int(action)] < rank[held]:
                deciding[bit] = action
        actions.append(deciding)
    words = [
        "(" + " + ".join(
            f"CASE WHEN {sql} THEN {1 << (i % BITS_PER_WORD)} ELSE 0 END"
            for i, sql in enumerate(conditions[start : start + BITS_PER_WORD], start)
        ) + ")"
        for start in range(0, len(conditions), BITS_PER_WORD)
    ]  # fmt: skip
    a_bits, b_bits = (np.array(mine, dtype=np.int64) for mine in chosen)
    return SharedRules(words, actions[0], actions[1], params, len(conditions), a_bits, b_bits)


_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def _bound(sql: str, params: dict[str, Any]) -> str:
    """``sql`` with its parameters written as their values' reprs: the same text for the same
    condition of two policies (whose parameters have different names)."""
    return _PARAM.sub(lambda m: repr(params[m[1]]) if m[1] in params else m[0], sql)


def _daily(groups: pd.DataFrame, days: np.ndarray, side: str, capacity: int | None) -> DailyCounts:
    """One policy's :class:`DailyCounts` from the query's rows (``days``: the selection's day
    numbers, sorted; ``capacity``: payments the review team works a day, None = all)."""
    sums = groups[groups["part"] == 0]
    k = sums["k"].to_numpy(dtype=np.int64)
    rest, b_action = np.divmod(k, _ACTIONS)
    rest, a_action = np.divmod(rest, _ACTIONS)
    day_number, label = np.divmod(rest, _LABELS)
    day = np.searchsorted(days, day_number)
    n = sums["n"].to_numpy(dtype=np.int64)
    pence = sums["pence"].fillna(0).to_numpy(dtype=np.int64)
    action = a_action if side == "a" else b_action
    blocked, marked = action == Action.BLOCK, action == Action.REVIEW
    passed = action == CHALLENGED + PASSED
    abandoned, failed = action == CHALLENGED + ABANDONED, action == CHALLENGED + FAILED
    declined = blocked | abandoned | failed
    fraud, friendly = label == FRAUD, label == FRIENDLY
    genuine = (label == LEGITIMATE) | friendly  # declining it is a false decline
    worked = _worked(day, sums[f"{side}_review_score"].to_numpy(dtype=np.float64), label, n,
                     marked, capacity)  # fmt: skip
    stopped_pence = _share_of(pence, worked, n)

    def per_day(values: np.ndarray, where: np.ndarray) -> np.ndarray:
        return np.bincount(day[where], weights=values[where], minlength=len(days)).astype(np.int64)

    first_day = "k" if side == "a" else "b_day"  # part 1 rows: A's first day sits in "k"
    cards = groups[(groups["part"] == 1) & groups[first_day].notna()]
    card_day = np.searchsorted(days, cards[first_day].to_numpy(dtype=np.int64))
    return DailyCounts(
        rows=per_day(n, np.ones(len(n), dtype=bool)),
        approved=per_day(n, ~declined),
        labelled=per_day(n, fraud | genuine),
        fraud=per_day(n, fraud),
        fraud_caught=per_day(n, fraud & declined),
        false_declines=per_day(n, genuine & blocked),
        review_marked=per_day(n, marked),
        reviewed=per_day(worked, marked),
        fraud_stopped=per_day(worked, marked & fraud),
        approved_fraud_pence=per_day(pence - stopped_pence, fraud & ~declined & ~passed),
        false_decline_pence=per_day(pence, genuine & blocked),
        false_declined_cards=np.bincount(
            card_day, weights=cards["n"].to_numpy(dtype=np.float64), minlength=len(days)
        ).astype(np.int64),
        challenged=per_day(n, action >= CHALLENGED),
        challenge_passed=per_day(n, passed),
        challenge_abandoned=per_day(n, abandoned),
        challenge_failed=per_day(n, failed),
        abandoned_pence=per_day(pence, abandoned),
        liability_shifted=per_day(n, fraud & passed),
        friendly=per_day(n, friendly),
        friendly_approved=per_day(n, friendly & ~declined),
        friendly_approved_pence=per_day(pence, friendly & ~declined),
        cp_cards=_compromised_at_capacity(groups, days, side, capacity),
        blocks=np.ones(len(days), dtype=np.int64),
    )


def _compromised_at_capacity(
    groups: pd.DataFrame, days: np.ndarray, side: str, capacity: int | None
) -> np.ndarray:
    """Per day, the compromised cards among the ``capacity`` cards ``side`` queued with the
    highest risk scores (CP@k's numerator; zeros without a capacity), from the ``part`` 2 rows:
    cards per (day, compromised, highest queued score under A, under B)."""
    if not capacity:
        return np.zeros(len(days), dtype=np.int64)
    cards = groups[(groups["part"] == 2) & groups[f"{side}_review_score"].notna()]
    day_number, label = np.divmod(cards["k"].to_numpy(dtype=np.int64), _LABELS)
    day = np.searchsorted(days, day_number)
    n = cards["n"].to_numpy(dtype=np.int64)
    score = cards[f"{side}_review_score"].to_numpy(dtype=np.float64)
    top = _worked(day, score, label, n, np.ones(len(n), dtype=bool), capacity)
    found = np.where(label == FRAUD, top, 0)
    return np.bincount(day, weights=found, minlength=len(days)).astype(np.int64)


def _worked(
    day: np.ndarray,
    score: np.ndarray,
    label: np.ndarray,
    n: np.ndarray,
    marked: np.ndarray,
    capacity: int | None,
) -> np.ndarray:
    """Payments of each group the review team works: all the review-marked ones, or each day
    the first ``capacity`` in descending score order (at equal scores the payments that are not
    fraud come first: ties never flatter the team)."""
    if capacity is None:
        return np.where(marked, n, 0)
    worked = np.zeros(len(n), dtype=np.int64)
    rows = np.flatnonzero(marked)
    order = rows[np.lexsort((label[rows] == FRAUD, -score[rows], day[rows]))]
    before = np.cumsum(n[order]) - n[order]  # worked earlier the same day, once reset per day
    first = np.r_[True, day[order][1:] != day[order][:-1]]
    before -= np.maximum.accumulate(np.where(first, before, 0))
    worked[order] = np.clip(capacity - before, 0, n[order])
    return worked


def _share_of(pence: np.ndarray, worked: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The pence of the worked part of each group: all of it when the whole group was worked;
    a group the capacity cut (payments with one score, label and day) in proportion, to the
    penny (half to even)."""
    whole = worked == n
    share = np.rint(pence * (worked / np.maximum(n, 1))).astype(np.int64)
    return np.where(whole, pence, share)


def _outcome(daily: DailyCounts, model: CostModel) -> PolicyOutcome:
    rows, approved, fraud = int(daily.rows.sum()), int(daily.approved.sum()), int(daily.fraud.sum())
    caught, stopped = int(daily.fraud_caught.sum()), int(daily.fraud_stopped.sum())
    marked, reviewed = int(daily.review_marked.sum()), int(daily.reviewed.sum())
    k, days = model.review_capacity, len(daily.blocks)
    found = int(daily.cp_cards.sum()) if k is not None else None
    return PolicyOutcome(
        rows=rows,
        approved=approved,
        approval_rate=approved / rows if rows else 0.0,
        labelled=int(daily.labelled.sum()),
        fraud=fraud,
        fraud_caught=caught,
        fraud_stopped=stopped,
        recall=(caught + stopped) / fraud if fraud else None,
        false_declines=int(daily.false_declines.sum()),
        friendly_fraud=int(daily.friendly.sum()),
        review_marked=marked,
        reviewed=reviewed,
        review_backlog=marked - reviewed,
        review_hit_rate=stopped / reviewed if reviewed else None,
        cp_at_k=found / (k * days) if found is not None and k and days else None,
        cp_at_k_cards=found,
        challenged=int(daily.challenged.sum()),
        challenge_passed=int(daily.challenge_passed.sum()),
        challenge_abandoned=int(daily.challenge_abandoned.sum()),
        challenge_failed=int(daily.challenge_failed.sum()),
        liability_shifted=int(daily.liability_shifted.sum()),
        costs=cost_breakdown(daily.total(), model),
    )


def _metrics(s: dict[str, np.ndarray], model: CostModel) -> dict[str, np.ndarray]:
    """The compared metrics from (resampled) totals, as floats in the reporting currency."""
    per_pence = model.per_gbp_pence()
    fraud_loss = s["approved_fraud_pence"] * per_pence
    lost = s["fraud"] - s["fraud_caught"] - s["fraud_stopped"] - s["liability_shifted"]
    fees = float(model.chargeback_fee) * lost
    margin = float(model.false_decline_margin)
    false_decline = s["false_decline_pence"] * per_pence * margin
    false_decline = false_decline + float(model.churn_cost_per_card) * s["false_declined_cards"]
    review = float(model.review_cost) * s["reviewed"]
    challenge = float(model.challenge_cost) * s["challenged"]
    abandonment = s["abandoned_pence"] * per_pence * margin
    friendly = s["friendly_approved_pence"] * per_pence
    friendly = friendly + float(model.chargeback_fee) * s["friendly_approved"]
    k = model.review_capacity or np.nan  # no CP@k without a capacity: not finite, left out
    total = fraud_loss + fees + false_decline + review + challenge + abandonment + friendly
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "total_cost": total,
            "fraud_loss": fraud_loss,
            "false_decline_cost": false_decline,
            "review_cost": review,
            "challenge_cost": challenge,
            "abandonment_cost": abandonment,
            "friendly_fraud_loss": friendly,
            "approval_rate": s["approved"] / s["rows"],
            "recall": (s["fraud_caught"] + s["fraud_stopped"]) / s["fraud"],
            "fraud_caught": s["fraud_caught"],
            "false_declines": s["false_declines"],
            "reviewed": s["reviewed"],
            "cp_at_k": s["cp_cards"] / (k * s["blocks"]),
        }


def paired_differences(
    a: DailyCounts,
    b: DailyCounts,
    model: CostModel,
    replicates: int = DEFAULT_REPLICATES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> list[Difference]:
    """B − A for every compared metric, with paired day-block bootstrap intervals."""
    days = len(a.rows)
    ones = np.ones((1, days))
    point_a, point_b = _metrics(a.resampled(ones), model), _metrics(b.resampled(ones), model)
    bounds: dict[str, tuple[float | None, float | None]] = {}
    if days >= 2:
        rng = np.random.default_rng(seed)
        weights = rng.multinomial(days, np.full(days, 1.0 / days), size=replicates).astype(
            np.float64
        )
        ra, rb = _metrics(a.resampled(weights), model), _metrics(b.resampled(weights), model)
        tail = (1.0 - confidence) / 2.0
        for name in ra:
            delta = rb[name] - ra[name]
            delta = delta[np.isfinite(delta)]
            if len(delta):
                low, high = np.quantile(delta, [tail, 1.0 - tail])
                bounds[name] = (float(low), float(high))
    out = []
    for name in point_a:
        va, vb = float(point_a[name][0]), float(point_b[name][0])
        if not (np.isfinite(va) and np.isfinite(vb)):
            continue  # e.g. recall without fraud
        low, high = bounds.get(name, (None, None))
        out.append(Difference(metric=name, a=va, b=vb, difference=vb - va, low=low, high=high))
    return out


_EXACT = {
    "total_cost": "total",
    "fraud_loss": "fraud_loss",
    "false_decline_cost": "false_decline_cost",
    "review_cost": "review_cost",
    "challenge_cost": "challenge_cost",
    "abandonment_cost": "abandonment_cost",
    "friendly_fraud_loss": "friendly_fraud_loss",
}


def _exact_money(d: Difference, a: CostBreakdown, b: CostBreakdown) -> Difference:
    """A money difference with its point values from the exact breakdowns (the resampling
    works in floats; its interval stays as computed)."""
    field = _EXACT.get(d.metric)
    if field is None:
        return d
    va, vb = getattr(a, field), getattr(b, field)
    return d.model_copy(update={"a": float(va), "b": float(vb), "difference": float(vb - va)})


def run_comparison(
    store: Store,
    lists: Lists,
    a: Decider,
    b: Decider,
    filters: RowFilter | None = None,
    costs: CostModel | None = None,
    replicates: int = DEFAULT_REPLICATES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    grouped: Grouped | None = None,
    scored_with: ScoreWeights | None = None,
) -> Comparison:
    """Decide the rows ``filters`` selects under ``a`` and ``b`` with their stored draws, price
    both with ``costs`` and give every difference a paired bootstrap interval. ``grouped`` runs
    the aggregating query elsewhere (:func:`engine.backtest.run_backtest`); ``scored_with``:
    the weights every selected row was scored with, if known (:func:`compare_sql`)."""
    started = time.perf_counter()
    filters = filters or RowFilter()
    costs = costs or CostModel()
    a_side, b_side = sides(a, b, lists)  # reads the lists' summaries: before the snapshot
    with store.read() as tx:
        groups = comparison_groups(tx, a_side, b_side, filters, costs, grouped, scored_with)
    return compared_groups(groups, filters, costs, a.policy, b.policy, replicates, confidence,
                           seed, started)  # fmt: skip


def comparison_groups(
    tx: ReadTx,
    a_side: RuleSide,
    b_side: RuleSide,
    filters: RowFilter,
    costs: CostModel,
    grouped: Grouped | None = None,
    scored_with: ScoreWeights | None = None,
) -> pd.DataFrame:
    """The comparison query's groups for two :func:`sides`, read in the open snapshot ``tx``
    (so a caller can read them with other queries in one snapshot: the backtest prices itself
    this way)."""
    disputes = not isinstance(filters.run, int) and any_fraud_dispute(tx)
    sql = compare_sql(a_side, b_side, filters, disputes, costs.review_capacity,
                      scored_with=scored_with)  # fmt: skip
    return grouped(*sql) if grouped is not None else tx.frame(*sql)


def run_shadow_comparison(
    store: Store,
    shadow_version: int,
    a_policy: Policy,
    b_policy: Policy,
    filters: RowFilter,
    costs: CostModel | None = None,
    replicates: int = DEFAULT_REPLICATES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Comparison:
    """The comparison of what was enforced (A) with what shadow version ``shadow_version``
    decided (B) on the live rows ``filters`` selects that it shadowed, from the decisions stored
    on them (:func:`stored_decisions_sql`): the metrics, intervals and answer of
    :func:`run_comparison`. ``a_policy`` and ``b_policy`` are what the answer names."""
    started = time.perf_counter()
    costs = costs or CostModel()
    with store.read() as tx:
        disputes = any_fraud_dispute(tx)
        sql, params = stored_decisions_sql(
            filters,
            disputes,
            costs.review_capacity,
            b_policy.challenge if b_policy.challenges else None,
        )
        groups = tx.frame(sql, {**params, "shadow_version": shadow_version})
    policies = a_policy, b_policy
    return compared_groups(groups, filters, costs, *policies, replicates, confidence, seed, started)


def compared_groups(
    groups: pd.DataFrame,
    filters: RowFilter,
    costs: CostModel,
    a_policy: Policy,
    b_policy: Policy,
    replicates: int,
    confidence: float,
    seed: int,
    started: float,
) -> Comparison:
    """The :class:`Comparison` from the rows of a comparison query (both kinds), ``started``
    being when the work began (``time.perf_counter()``) for its ``elapsed_ms``."""
    sums = groups[groups["part"] == 0]
    days = np.unique(sums["k"].to_numpy(dtype=np.int64) // (_LABELS * _ACTIONS**2))
    capacity = costs.review_capacity
    daily_a, daily_b = _daily(groups, days, "a", capacity), _daily(groups, days, "b", capacity)
    rows = int(sums["n"].sum()) if len(sums) else 0
    priced = int(sums["priced"].sum()) if len(sums) else 0
    outcome_a, outcome_b = _outcome(daily_a, costs), _outcome(daily_b, costs)
    differences = paired_differences(daily_a, daily_b, costs, replicates, confidence, seed)
    return Comparison(
        filters=filters,
        costs=costs,
        a_policy=a_policy,
        b_policy=b_policy,
        a=outcome_a,
        b=outcome_b,
        differences=[_exact_money(d, outcome_a.costs, outcome_b.costs) for d in differences],
        interval=IntervalMethod(
            confidence=confidence, replicates=replicates, blocks=len(days), seed=seed
        ),
        unpriced=rows - priced,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def selection_end(store: Store, filters: RowFilter) -> datetime | None:
    """The event time of the selection's last payment (UTC), or None when it is empty."""
    where, params = filters.where()
    row = store.query(f"SELECT max(created_at) FROM transactions {where}", params)[0]
    return None if row[0] is None else row[0].replace(tzinfo=UTC)


def label_maturity(
    store: Store,
    lists: Lists,
    a: Decider,
    b: Decider,
    filters: RowFilter,
    costs: CostModel,
    days: Sequence[int],
    replicates: int = DEFAULT_REPLICATES,
    seed: int = 0,
    scored_with: ScoreWeights | None = None,
) -> list[MaturityPoint]:
    """The comparison with the labels known ``days`` after the selection's last payment, one
    full comparison (one scan) per point (``scored_with`` as :func:`run_comparison` takes it)."""
    end = selection_end(store, filters)
    if end is None:
        return []
    points = []
    for after in sorted(set(days)):
        as_of = end + timedelta(days=after)
        at = filters.model_copy(update={"labels_as_of": as_of})
        result = run_comparison(store, lists, a, b, at, costs, replicates, seed=seed,
                                scored_with=scored_with)  # fmt: skip
        total = next(d for d in result.differences if d.metric == "total_cost")
        points.append(
            MaturityPoint(
                days_after=after,
                labels_as_of=as_of,
                fraud_known=result.a.fraud,
                a_total_cost=result.a.costs.total,
                b_total_cost=result.b.costs.total,
                total_cost=total,
            )
        )
    return points
