"""The original knob heuristic, as engine/decision.py computed it before policies became rules.

Kept as the test oracle: ``Policy.from_knobs`` must decide exactly as this did, for any knobs
(same approvals, reasons, risk flags and scores), so existing files and decisions keep their
meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.decision import ChallengeInputs, Decider, Reason
from engine.decision import Decisions as EngineDecisions
from engine.decision import risk_score as engine_risk_score
from engine.policy import Knobs, Policy


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
    policy: Knobs,
) -> np.ndarray:
    """score = w_d·(1 − device_trust) + w_ip·ip_risk + w_a·min(amount / 2·threshold, 1)
    + w_v·velocity, clipped to [0, 1]."""
    amount_part = np.minimum(
        np.asarray(amount_cents, dtype=np.float64) / (2.0 * int(policy.amount_threshold * 100)), 1.0
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
    policy: Knobs,
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
    high_amount = amount_cents > int(policy.amount_threshold * 100)
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


def decide_as_engine(
    policy: Policy,
    amount_cents: np.ndarray,
    spending_velocity: np.ndarray,
    device_trust: np.ndarray,
    ip_risk: np.ndarray,
    velocity_count: np.ndarray,
    draw: np.ndarray,
    lists: dict | None = None,
    challenge: ChallengeInputs | None = None,
) -> EngineDecisions:
    """``policy`` through the engine's own decider, fed the attributes the knob rules read
    (rows without devices, history beyond the hour's count, or lists)."""
    decider = Decider(policy, lists)
    amount_cents = np.asarray(amount_cents, dtype=np.int64)
    score = engine_risk_score(
        amount_cents, spending_velocity, device_trust, ip_risk, policy.score_weights
    )
    values = {
        "amount": amount_cents,
        "random": np.asarray(draw, dtype=np.float64),
        "risk_score": score,
        "payments_per_card_1h": np.asarray(velocity_count, dtype=np.int64),
        "spending_velocity": np.asarray(spending_velocity, dtype=np.float64),
        "device_trust_score": np.asarray(device_trust, dtype=np.float64),
        "ip_risk_score": np.asarray(ip_risk, dtype=np.float64),
    }
    used = {k: v for k, v in values.items() if k in decider.attributes}
    return decider.decide(score, used, challenge=challenge)
