"""The one decision function: features and a uniform draw in, score, status and reason out.

It is vectorized over numpy arrays. The live path calls it on each group-commit batch, the bulk
generator on each chunk and the backtest on stored history, so all three decide identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from engine.policy import Policy


class Reason(IntEnum):
    """Reason codes, stored as their names; the order is also the rule order."""

    APPROVED = 0
    SCORE_THRESHOLD = 1
    VELOCITY_LIMIT = 2
    HIGH_AMOUNT = 3
    RANDOM_DECLINE = 4


REASON_TEXT: dict[Reason, str] = {
    Reason.APPROVED: "Approved: passed risk checks.",
    Reason.SCORE_THRESHOLD: "Risk score at or above the policy's score threshold.",
    Reason.VELOCITY_LIMIT: "Too many payments on this card within the velocity window.",
    Reason.HIGH_AMOUNT: "High amount flagged by risk heuristic.",
    Reason.RANDOM_DECLINE: "Randomized decline to simulate fraud checks.",
}
REASON_NAMES = np.array([reason.name for reason in Reason])


def decision_reason(reason: Reason) -> str | None:
    """The documented ``decision_reason``: the decline text, or None for an approval (the
    approval's code stays in ``reason_code``)."""
    return None if reason == Reason.APPROVED else REASON_TEXT[reason]


def risk_flag_text(flagged: bool, reason: Reason) -> str | None:
    """The documented ``risk_flag``: the text of the risk rule that flagged the payment, or None
    when no risk rule held (randomized declines are not flags: only the draw decided them).

    ``flagged`` is the stored boolean (:attr:`Decisions.risk_flag`: the score, velocity or
    high-amount rule's condition held) and ``reason`` the decision's code. The score and velocity
    rules always decline when they hold, and the high-amount rule declines when the draw says so;
    so a flagged decline names its own rule, and a flagged approval the high-amount rule."""
    if not flagged:
        return None
    return REASON_TEXT[Reason.HIGH_AMOUNT if reason == Reason.APPROVED else reason]


@dataclass(frozen=True, slots=True)
class Decisions:
    """Column-wise decisions for a batch of payments."""

    score: np.ndarray  # float64 in [0, 1]
    approved: np.ndarray  # bool
    reason: np.ndarray  # int8 Reason codes
    risk_flag: np.ndarray  # bool: some risk rule flagged the payment, whatever the draw said

    def __len__(self) -> int:
        return len(self.score)


def risk_score(
    amount_cents: np.ndarray,
    spending_velocity: np.ndarray,
    device_trust: np.ndarray,
    ip_risk: np.ndarray,
    policy: Policy,
) -> np.ndarray:
    """score = w_d·(1 − device_trust) + w_ip·ip_risk + w_a·min(amount / 2·threshold, 1)
    + w_v·velocity, clipped to [0, 1]."""
    amount_part = np.minimum(
        np.asarray(amount_cents, dtype=np.float64) / (2.0 * policy.amount_threshold_cents), 1.0
    )
    score = (
        policy.weight_device * (1.0 - device_trust)
        + policy.weight_ip * ip_risk
        + policy.weight_amount * amount_part
        + policy.weight_velocity * spending_velocity
    )
    return np.clip(score, 0.0, 1.0)


def decide(
    amount_cents: np.ndarray,
    spending_velocity: np.ndarray,
    device_trust: np.ndarray,
    ip_risk: np.ndarray,
    velocity_count: np.ndarray,
    draw: np.ndarray,
    policy: Policy,
) -> Decisions:
    """Apply ``policy`` to a batch. Rules, first match wins:

    1. score ≥ ``score_threshold`` (if set) → decline SCORE_THRESHOLD;
    2. prior payments of the card in the velocity window ≥ ``velocity_limit`` (if set)
       → decline VELOCITY_LIMIT;
    3. amount > ``amount_threshold``: decline HIGH_AMOUNT when draw < high_amount_decline_prob;
    4. otherwise decline RANDOM_DECLINE when draw < base_decline_prob;
    else approve. ``draw`` holds the stored uniform numbers, so re-deciding history under another
    policy uses the same randomness (common random numbers).
    """
    amount_cents = np.asarray(amount_cents, dtype=np.int64)
    score = risk_score(amount_cents, spending_velocity, device_trust, ip_risk, policy)
    high_amount = amount_cents > policy.amount_threshold_cents
    by_score = (
        score >= policy.score_threshold
        if policy.score_threshold is not None
        else np.zeros(len(score), dtype=bool)
    )
    by_velocity = (
        np.asarray(velocity_count) >= policy.velocity_limit
        if policy.velocity_limit is not None
        else np.zeros(len(score), dtype=bool)
    )
    random_decline = np.where(
        high_amount, draw < policy.high_amount_decline_prob, draw < policy.base_decline_prob
    )
    reason = np.select(
        [by_score, by_velocity, high_amount & random_decline, random_decline],
        [Reason.SCORE_THRESHOLD, Reason.VELOCITY_LIMIT, Reason.HIGH_AMOUNT, Reason.RANDOM_DECLINE],
        default=Reason.APPROVED,
    ).astype(np.int8)
    return Decisions(
        score=score,
        approved=reason == Reason.APPROVED,
        reason=reason,
        risk_flag=by_score | by_velocity | high_amount,
    )
