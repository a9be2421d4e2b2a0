"""Policy: an immutable, validated, versioned value; activation is audited."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from engine.policy import DEFAULT_POLICY, Policy


def test_default_policy_is_the_original_heuristic() -> None:
    assert DEFAULT_POLICY.amount_threshold == Decimal("500")
    assert DEFAULT_POLICY.amount_threshold_cents == 50_000
    assert DEFAULT_POLICY.high_amount_decline_prob == 0.30
    assert DEFAULT_POLICY.base_decline_prob == 0.10
    assert DEFAULT_POLICY.score_threshold is None
    assert DEFAULT_POLICY.velocity_limit is None
    assert (
        DEFAULT_POLICY.weight_device,
        DEFAULT_POLICY.weight_ip,
        DEFAULT_POLICY.weight_amount,
        DEFAULT_POLICY.weight_velocity,
    ) == (0.4, 0.3, 0.2, 0.1)


def test_policy_is_immutable() -> None:
    with pytest.raises(ValidationError):
        DEFAULT_POLICY.base_decline_prob = 0.5  # type: ignore[misc]
    assert DEFAULT_POLICY.base_decline_prob == 0.10


@pytest.mark.parametrize(
    "knobs",
    [
        {"base_decline_prob": -0.01},
        {"base_decline_prob": 1.01},
        {"high_amount_decline_prob": float("nan")},
        {"high_amount_decline_prob": float("inf")},
        {"score_threshold": 1.5},
        {"amount_threshold": 0},
        {"amount_threshold": -5},
        {"amount_threshold": Decimal("10.001")},
        {"amount_threshold": Decimal("1000000.01")},
        {"velocity_limit": 0},
        {"velocity_limit": 10_001},
        {"weight_device": -1},
        {"weight_ip": 11},
        {"weight_device": 0, "weight_ip": 0, "weight_amount": 0, "weight_velocity": 0},
        {"version": -1},
        {"no_such_knob": 1},
    ],
)
def test_bad_knobs_are_rejected(knobs: dict) -> None:
    with pytest.raises(ValidationError):
        Policy(**knobs)


def test_knobs_exclude_version_and_define_equality_of_rules() -> None:
    a = Policy(version=3, score_threshold=0.8)
    b = Policy(version=9, score_threshold=0.8)
    assert "version" not in a.knobs()
    assert a.knobs() == b.knobs()
    assert a.same_rules_as(b)
    assert not a.same_rules_as(DEFAULT_POLICY)
    assert Policy(**a.knobs()) == Policy(score_threshold=0.8)


def test_fresh_engine_stores_the_default_policy_as_version_1(engine) -> None:
    active = engine.active_policy()
    assert active.version == 1
    assert active.same_rules_as(DEFAULT_POLICY)
    history = engine.policy_history()
    assert [p["version"] for p in history] == [1]


def test_activate_policy_creates_a_new_version_with_an_audit_entry(engine) -> None:
    candidate = Policy(score_threshold=0.9, velocity_limit=5)
    active = engine.activate_policy(candidate, note="tighter")
    assert active.version == 2
    assert active.same_rules_as(candidate)
    assert engine.active_policy() == active
    assert [p["version"] for p in engine.policy_history()] == [2, 1]
    assert engine.policy_history()[0]["note"] == "tighter"

    audit = engine.store.query(
        "SELECT event, policy_version, transaction_id FROM audit_log ORDER BY policy_version"
    )
    assert [(e, v) for e, v, _ in audit] == [("policy.activated", 1), ("policy.activated", 2)]
    assert all(tid is None for _, _, tid in audit)

    result = engine.authorize(
        {"card_number": "4111111111111111", "amount": "10.00", "merchant": "M"}
    )
    assert result.policy_version == 2


def test_reset_policy_is_a_new_version_with_the_default_rules(engine) -> None:
    engine.activate_policy(Policy(base_decline_prob=0.5))
    reset = engine.reset_policy()
    assert reset.version == 3
    assert reset.same_rules_as(DEFAULT_POLICY)
    events = engine.store.query("SELECT count(*) FROM audit_log WHERE event = 'policy.activated'")
    assert events[0][0] == 3
