"""The one decision function: the knob rules decide as the original heuristic did, rule kinds
have their reason codes, and risk flags name the rule whose risk condition held."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from knob_reference import decide, decide_as_engine

from engine.decision import REASON_TEXT, Decider, Reason, explain, risk_score
from engine.policy import DEFAULT_POLICY, HIGH_AMOUNT_RULE, Knobs, Policy, RuleSpec


def _decide(amount_cents, draw, policy=DEFAULT_POLICY, velocity=0.0, trust=1.0, ip=0.0, count=0):
    n = len(amount_cents)
    return decide_as_engine(
        policy,
        np.asarray(amount_cents, dtype=np.int64),
        np.full(n, velocity),
        np.full(n, trust),
        np.full(n, ip),
        np.full(n, count, dtype=np.int64),
        np.asarray(draw, dtype=np.float64),
    )


def test_the_default_policy_is_the_original_heuristic_written_as_rules() -> None:
    assert [r.public() for r in DEFAULT_POLICY.rules] == [
        {
            "name": "High amount flagged by risk heuristic.",
            "action": "block",
            "when": ":amount: > 500 and :random: < 0.3",
        },
        {
            "name": "Randomized decline to simulate fraud checks.",
            "action": "block",
            "when": ":amount: <= 500 and :random: < 0.1",
            "flags_risk": False,
        },
    ]
    assert REASON_TEXT[Reason.HIGH_AMOUNT] == "High amount flagged by risk heuristic."


def test_exactly_500_is_not_high_but_500_01_is() -> None:
    # draw 0.2: declined only under the 0.30 high-amount rule, approved under the 0.10 base rule.
    d = _decide([50_000, 50_001], [0.2, 0.2])
    assert d.approved.tolist() == [True, False]
    assert d.reason.tolist() == [Reason.APPROVED, Reason.HIGH_AMOUNT]
    assert d.risk_flag.tolist() == [False, True]


def test_draw_equal_to_the_probability_is_not_a_decline_and_flags_ignore_the_draw() -> None:
    d = _decide([1_000, 1_000, 60_000, 60_000], [0.10, np.nextafter(0.10, 0), 0.30, 0.2999999])
    assert d.reason.tolist() == [
        Reason.APPROVED,
        Reason.RANDOM_DECLINE,
        Reason.APPROVED,
        Reason.HIGH_AMOUNT,
    ]
    assert d.risk_flag.tolist() == [False, False, True, True]
    assert d.flag_rule.tolist() == [-1, -1, 0, 0]


def test_rule_precedence_score_then_velocity_then_amount_then_random() -> None:
    policy = Policy.from_knobs(score_threshold=0.5, velocity_limit=1)
    amount = np.array([90_000, 90_000, 90_000, 1_000])
    d = decide_as_engine(
        policy,
        amount,
        np.zeros(4),
        np.array([0.0, 1.0, 1.0, 1.0]),
        np.zeros(4),
        np.array([5, 5, 0, 0]),
        np.full(4, 0.01),
    )
    assert d.reason.tolist() == [
        Reason.SCORE_THRESHOLD,
        Reason.VELOCITY_LIMIT,
        Reason.HIGH_AMOUNT,
        Reason.RANDOM_DECLINE,
    ]
    assert d.rule_index.tolist() == [0, 1, 2, 3]
    assert not d.approved.any()


def test_score_matches_a_hand_computation() -> None:
    # amount 250.00 against an amount scale of 1000 → 0.25;
    # 0.4·(1 − 0.7) + 0.3·0.3 + 0.2·0.25 + 0.1·0.2 = 0.12 + 0.09 + 0.05 + 0.02 = 0.28
    weights = DEFAULT_POLICY.score_weights
    score = risk_score(
        np.array([25_000]), np.array([0.2]), np.array([0.7]), np.array([0.3]), weights
    )
    assert score[0] == pytest.approx(0.28, abs=1e-12)
    saturated = risk_score(
        np.array([200_000]), np.array([0.0]), np.array([1.0]), np.array([0.0]), weights
    )
    assert saturated[0] == pytest.approx(0.2, abs=1e-12)


knobs = st.builds(
    Knobs,
    amount_threshold=st.decimals("0.01", "2000", places=2),
    high_amount_decline_prob=st.floats(0, 1),
    base_decline_prob=st.floats(0, 1),
    score_threshold=st.one_of(st.none(), st.floats(0, 1)),
    velocity_limit=st.one_of(st.none(), st.integers(1, 20)),
    weight_device=st.floats(0.01, 10),
    weight_ip=st.floats(0, 10),
    weight_amount=st.floats(0, 10),
    weight_velocity=st.floats(0, 10),
)


@given(knobs=knobs, seed=st.integers(0, 2**32 - 1))
def test_knob_policies_decide_exactly_as_the_original_heuristic(knobs: Knobs, seed: int) -> None:
    """Existing files and decisions keep their meaning: for any knobs, the rules
    Policy.from_knobs writes give the original's approvals, reasons, risk flags and scores."""
    rng = np.random.default_rng(seed)
    n = 64
    threshold = int(knobs.amount_threshold * 100)
    cents = rng.choice([threshold - 1, threshold, threshold + 1, 1, 3 * threshold], n)
    args = (
        cents.astype(np.int64),
        rng.random(n),
        rng.random(n),
        rng.random(n),
        rng.integers(0, 25, n),
        rng.choice([knobs.base_decline_prob, knobs.high_amount_decline_prob, 0.5], n)
        * rng.choice([1.0, 0.999999], n),
    )
    original = decide(*args, knobs)
    engine = decide_as_engine(Policy.from_knobs(knobs), *args)
    assert engine.reason.tolist() == original.reason.tolist()
    assert engine.approved.tolist() == original.approved.tolist()
    assert engine.risk_flag.tolist() == original.risk_flag.tolist()
    assert engine.score.tolist() == original.score.tolist()


def _policy(*rules: tuple[str, str, str]) -> Policy:
    return Policy(rules=tuple(RuleSpec(name=n, action=a, when=w) for n, a, w in rules))


def test_rule_kinds_have_their_reason_codes_and_review_approves() -> None:
    policy = _policy(
        ("trusted", "allow", ":amount: < 5"),
        ("big", "block", ":amount: > 1000"),
        ("watch", "review", ":amount: > 100"),
    )
    d = decide_as_engine(policy, np.array([100, 200_000, 20_000, 10_000]), *[np.zeros(4)] * 5)
    assert d.reason.tolist() == [
        Reason.ALLOWED_BY_RULE,
        Reason.BLOCKED_BY_RULE,
        Reason.REVIEW_BY_RULE,
        Reason.APPROVED,
    ]
    assert d.approved.tolist() == [True, False, True, True]
    assert d.review.tolist() == [False, False, True, False]
    words = [
        explain(policy, int(i), int(f)) for i, f in zip(d.rule_index, d.flag_rule, strict=True)
    ]
    assert [(w.action, w.rule, w.decision_reason, w.review) for w in words] == [
        ("allow", "trusted", None, False),
        ("block", "big", "big", False),
        ("review", "watch", None, True),
        ("none", None, None, False),
    ]
    # the block rule flags where it decided; the review rule flags the big payment too, but
    # block rules come first in evaluation order
    assert [w.risk_flag for w in words] == [None, "big", "watch", None]


@pytest.mark.parametrize(
    ("when", "flags_at"),
    [
        (":amount: > 500 and :random: < 0.5", [False, True, False]),  # the draw is dropped
        (":random: < 0.5", [False, False, False]),  # only the draw: sampling, not a flag
        (":amount: > 500 or :random: < 0.5", [True, True, False]),  # inseparable: its match
    ],
)
def test_a_rule_flags_when_its_risk_condition_holds_whatever_the_draw(when, flags_at) -> None:
    policy = _policy(("rule", "block", when))
    cents, draw = np.array([100, 60_000, 100]), np.array([0.1, 0.9, 0.9])
    d = decide_as_engine(policy, cents, *[np.zeros(3)] * 4, draw)
    assert d.risk_flag.tolist() == flags_at


def test_flags_risk_false_never_flags() -> None:
    policy = Policy(rules=(RuleSpec(name="r", action="block", when="true", flags_risk=False),))
    d = decide_as_engine(policy, np.array([1]), *[np.zeros(1)] * 5)
    assert not d.approved[0] and not d.risk_flag[0]


def test_the_decider_reads_only_what_the_rules_need() -> None:
    assert Decider(DEFAULT_POLICY).attributes == {"amount", "random"}
    scored = Policy.from_knobs(score_threshold=0.5)
    assert "risk_score" in Decider(scored).attributes
    assert explain(DEFAULT_POLICY, 0, 0).decision_reason == HIGH_AMOUNT_RULE
