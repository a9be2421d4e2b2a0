"""The one vectorized decision function: thresholds, draws, opt-in rules and the score."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.decision import (
    REASON_TEXT,
    Reason,
    decide,
    decision_reason,
    risk_flag_text,
    risk_score,
)
from engine.policy import DEFAULT_POLICY, Policy


def _decide(amount_cents, draw, policy=DEFAULT_POLICY, velocity=0.0, trust=1.0, ip=0.0, count=0):
    n = len(amount_cents)
    return decide(
        np.asarray(amount_cents, dtype=np.int64),
        np.full(n, velocity),
        np.full(n, trust),
        np.full(n, ip),
        np.full(n, count, dtype=np.int64),
        np.asarray(draw, dtype=np.float64),
        policy,
    )


def test_reason_texts_are_the_original_ones() -> None:
    assert REASON_TEXT[Reason.HIGH_AMOUNT] == "High amount flagged by risk heuristic."
    assert REASON_TEXT[Reason.RANDOM_DECLINE] == "Randomized decline to simulate fraud checks."


def test_exactly_500_is_not_high_but_500_01_is() -> None:
    # draw 0.2: declined only under the 0.30 high-amount rule, approved under the 0.10 base rule.
    d = _decide([50_000, 50_001], [0.2, 0.2])
    assert d.approved.tolist() == [True, False]
    assert d.reason.tolist() == [Reason.APPROVED, Reason.HIGH_AMOUNT]
    assert d.risk_flag.tolist() == [False, True]


def test_draw_equal_to_the_probability_is_not_a_decline() -> None:
    d = _decide([1_000, 1_000, 60_000, 60_000], [0.10, np.nextafter(0.10, 0), 0.30, 0.2999999])
    assert d.reason.tolist() == [
        Reason.APPROVED,
        Reason.RANDOM_DECLINE,
        Reason.APPROVED,
        Reason.HIGH_AMOUNT,
    ]
    # The high-amount flag is raised whatever the draw said.
    assert d.risk_flag.tolist() == [False, False, True, True]


def test_opt_in_rules_are_off_by_default() -> None:
    d = _decide([1_000], [0.99], trust=0.0, ip=1.0, velocity=1.0, count=10_000)
    assert d.score[0] > 0.7
    assert d.reason.tolist() == [Reason.APPROVED]


def test_score_threshold_declines_at_or_above_the_threshold() -> None:
    policy = Policy(score_threshold=0.5)
    # score = 0.4·(1 − trust) with everything else zero-ish: trust 0 → 0.4 + amount part.
    amount = np.array([0, 0, 0])
    trust = np.array([1.0, 0.0, 0.0])
    ip = np.array([0.0, 0.0, 1.0 / 3.0])
    d = decide(amount, np.zeros(3), trust, ip, np.zeros(3, np.int64), np.full(3, 0.99), policy)
    np.testing.assert_allclose(d.score, [0.0, 0.4, 0.5])
    assert d.reason.tolist() == [Reason.APPROVED, Reason.APPROVED, Reason.SCORE_THRESHOLD]
    assert d.risk_flag.tolist() == [False, False, True]


def test_velocity_limit_counts_prior_payments() -> None:
    policy = Policy(velocity_limit=3)
    d = decide(
        np.full(3, 1_000),
        np.zeros(3),
        np.ones(3),
        np.zeros(3),
        np.array([2, 3, 4]),
        np.full(3, 0.99),
        policy,
    )
    assert d.reason.tolist() == [Reason.APPROVED, Reason.VELOCITY_LIMIT, Reason.VELOCITY_LIMIT]


def test_rule_precedence_score_then_velocity_then_amount_then_random() -> None:
    policy = Policy(score_threshold=0.5, velocity_limit=1)
    # Row 0 trips all rules; row 1 velocity + high amount; row 2 high amount; row 3 random.
    amount = np.array([90_000, 90_000, 90_000, 1_000])
    trust = np.array([0.0, 1.0, 1.0, 1.0])
    count = np.array([5, 5, 0, 0])
    draw = np.array([0.01, 0.01, 0.01, 0.01])
    d = decide(amount, np.zeros(4), trust, np.zeros(4), count, draw, policy)
    assert d.reason.tolist() == [
        Reason.SCORE_THRESHOLD,
        Reason.VELOCITY_LIMIT,
        Reason.HIGH_AMOUNT,
        Reason.RANDOM_DECLINE,
    ]
    assert not d.approved.any()


def test_score_matches_a_hand_computation() -> None:
    # amount 250.00 against threshold 500 → amount part min(25000 / 100000, 1) = 0.25
    # 0.4·(1 − 0.7) + 0.3·0.3 + 0.2·0.25 + 0.1·0.2 = 0.12 + 0.09 + 0.05 + 0.02 = 0.28
    score = risk_score(
        np.array([25_000]), np.array([0.2]), np.array([0.7]), np.array([0.3]), DEFAULT_POLICY
    )
    assert score[0] == pytest.approx(0.28, abs=1e-12)
    # The amount part saturates at twice the threshold: 2000.00 counts as 1.
    saturated = risk_score(
        np.array([200_000]), np.array([0.0]), np.array([1.0]), np.array([0.0]), DEFAULT_POLICY
    )
    assert saturated[0] == pytest.approx(0.2, abs=1e-12)


def test_score_uses_the_policy_weights_and_is_clipped() -> None:
    heavy = Policy(weight_device=5, weight_ip=5, weight_amount=5, weight_velocity=5)
    score = risk_score(np.array([0]), np.array([1.0]), np.array([0.0]), np.array([1.0]), heavy)
    assert score[0] == 1.0
    custom = Policy(weight_device=0, weight_ip=1, weight_amount=0, weight_velocity=0)
    score = risk_score(
        np.array([99_999]), np.array([1.0]), np.array([0.0]), np.array([0.25]), custom
    )
    assert score[0] == pytest.approx(0.25)


def test_decision_is_a_pure_function_of_inputs_and_draws() -> None:
    rng = np.random.default_rng(1)
    n = 1_000
    args = (
        rng.integers(1, 200_000, n),
        rng.random(n),
        rng.random(n),
        rng.random(n),
        rng.integers(0, 20, n),
        rng.random(n),
    )
    policy = Policy(score_threshold=0.7, velocity_limit=10)
    whole = decide(*args, policy)
    one_by_one = [decide(*(a[i : i + 1] for a in args), policy) for i in range(n)]
    assert whole.reason.tolist() == [d.reason[0] for d in one_by_one]
    assert whole.score.tolist() == [d.score[0] for d in one_by_one]


@given(
    amount=st.integers(1, 200_000),
    draw=st.floats(0, 1, exclude_max=True),
    trust=st.floats(0, 1),
    count=st.integers(0, 20),
    score_threshold=st.one_of(st.none(), st.floats(0.05, 1)),
    velocity_limit=st.one_of(st.none(), st.integers(1, 20)),
)
def test_documented_reason_and_risk_flag_texts(
    amount, draw, trust, count, score_threshold, velocity_limit
) -> None:
    """README: decision_reason is null for an approval and the decline text otherwise;
    risk_flag is the text of the first risk rule whose condition held (score, velocity, high
    amount), whatever the draw said, and null when none held."""
    policy = Policy(score_threshold=score_threshold, velocity_limit=velocity_limit)
    d = _decide([amount], [draw], policy=policy, trust=trust, count=count)
    reason = Reason(d.reason[0])
    expected_reason = None if d.approved[0] else REASON_TEXT[reason]
    assert decision_reason(reason) == expected_reason
    held = [
        (score_threshold is not None and d.score[0] >= score_threshold, Reason.SCORE_THRESHOLD),
        (velocity_limit is not None and count >= velocity_limit, Reason.VELOCITY_LIMIT),
        (amount > policy.amount_threshold_cents, Reason.HIGH_AMOUNT),
    ]
    first = next((REASON_TEXT[rule] for condition, rule in held if condition), None)
    assert risk_flag_text(bool(d.risk_flag[0]), reason) == first
