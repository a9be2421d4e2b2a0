"""Policies: immutable, validated, versioned rules; drafts, activation, list pins, old files."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError
from support import LATER_COLUMNS, TEST_CARDS, database_at_schema

from engine.errors import NotFoundError
from engine.policy import DEFAULT_POLICY, HIGH_AMOUNT_RULE, Knobs, Policy, ScoreWeights
from engine.rules import RuleError
from engine.simulation.params import SCENARIOS


def test_default_policy_is_the_original_heuristic_with_its_knobs() -> None:
    knobs = DEFAULT_POLICY.knobs
    assert knobs == Knobs()
    assert (knobs.amount_threshold, knobs.high_amount_decline_prob) == (Decimal("500"), 0.30)
    assert (knobs.base_decline_prob, knobs.score_threshold, knobs.velocity_limit) == (
        0.10,
        None,
        None,
    )
    assert DEFAULT_POLICY.score_weights == ScoreWeights(
        device=0.4, ip=0.3, amount=0.2, velocity=0.1, amount_scale=Decimal("1000")
    )


def test_policy_is_immutable() -> None:
    with pytest.raises(ValidationError):
        DEFAULT_POLICY.note = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "knobs",
    [
        {"base_decline_prob": -0.01},
        {"base_decline_prob": 1.01},
        {"high_amount_decline_prob": float("nan")},
        {"score_threshold": 1.5},
        {"amount_threshold": 0},
        {"amount_threshold": Decimal("10.001")},
        {"amount_threshold": Decimal("1000000.01")},
        {"velocity_limit": 0},
        {"velocity_limit": 10_001},
        {"weight_device": -1},
        {"weight_ip": 11},
        {"weight_device": 0, "weight_ip": 0, "weight_amount": 0, "weight_velocity": 0},
        {"no_such_knob": 1},
    ],
)
def test_bad_knobs_are_rejected(knobs: dict) -> None:
    with pytest.raises(ValidationError):
        Policy.from_knobs(**knobs)


def test_same_rules_ignores_version_and_note() -> None:
    a = Policy.from_knobs(score_threshold=0.8).model_copy(update={"version": 3, "note": "a"})
    b = Policy.from_knobs(score_threshold=0.8).model_copy(update={"version": 9})
    assert a.same_rules_as(b) and not a.same_rules_as(DEFAULT_POLICY)


def test_fresh_engine_stores_the_default_policy_as_version_1(engine) -> None:
    active = engine.active_policy()
    assert active.version == 1 and active.same_rules_as(DEFAULT_POLICY)
    assert [p.version for p in engine.policy_history()] == [1]


def test_activate_policy_creates_a_new_version_with_audit_entries(engine) -> None:
    candidate = Policy.from_knobs(score_threshold=0.9, velocity_limit=5)
    active = engine.activate_policy(candidate, note="tighter")
    assert active.version == 2 and active.same_rules_as(candidate)
    assert engine.active_policy() == active
    assert [p.version for p in engine.policy_history()] == [2, 1]
    assert engine.policy_history()[0].note == "tighter"
    audit = engine.store.query(
        "SELECT event, policy_version, transaction_id FROM audit_log ORDER BY policy_version, event"
    )
    assert [(e, v) for e, v, _ in audit] == [
        ("policy.activated", 1),
        ("policy.created", 1),
        ("policy.activated", 2),
        ("policy.created", 2),
    ]
    assert all(tid is None for _, _, tid in audit)
    result = engine.authorize({"card_number": TEST_CARDS[0], "amount": "10.00", "merchant": "M"})
    assert result.policy_version == 2


def test_a_created_policy_is_a_draft_until_activated(engine) -> None:
    rules = [{"name": "big", "action": "block", "when": ":amount: > 100"}]
    draft = engine.create_policy(rules, note="try")
    assert draft.version == 2 and engine.active_policy().version == 1
    paid = engine.authorize({"card_number": TEST_CARDS[1], "amount": "150.00", "merchant": "M"})
    assert paid.policy_version == 1
    engine.activate_version(draft.version, "go")
    declined = engine.authorize({"card_number": TEST_CARDS[1], "amount": "150.00", "merchant": "M"})
    assert (declined.status, declined.decision_reason, declined.rule, declined.action) == (
        "Declined",
        "big",
        "big",
        "block",
    )
    with pytest.raises(NotFoundError):
        engine.activate_version(99)


def test_bad_rules_are_refused_naming_rule_line_and_column(engine) -> None:
    with pytest.raises(RuleError) as refused:
        engine.create_policy(
            [
                {"name": "ok", "action": "block", "when": ":amount: > 1"},
                {"name": "bad", "action": "block", "when": ":amount: > 1 and\n :amout: > 2"},
            ]
        )
    assert refused.value.field == "rules[1].when"
    assert (refused.value.line, refused.value.column) == (2, 2)
    assert "did you mean :amount:" in refused.value.message
    with pytest.raises(RuleError, match="unknown list @vip"):
        engine.create_policy([{"name": "v", "action": "allow", "when": ":merchant: in @vip"}])
    with pytest.raises(RuleError) as extra:
        engine.create_policy([{"name": "v", "action": "allow", "when": "true", "colour": 1}])
    assert extra.value.field == "rules[0]"
    assert [p.version for p in engine.policy_history()] == [1]  # nothing stored


def test_a_policy_pins_its_lists_and_a_list_change_repins_the_active_policy(engine) -> None:
    engine.put_list("vip", "merchant", ["Shop"])
    policy = engine.create_policy(
        [{"name": "vip", "action": "allow", "when": ":merchant: in @vip"}, *_block_all()]
    )
    assert policy.lists == (("vip", 1),)
    engine.activate_version(policy.version)
    body = {"card_number": TEST_CARDS[2], "amount": "5.00", "merchant": "Shop"}
    assert engine.authorize(body).status == "Approved"
    engine.put_list("vip", "merchant", ["Other"])
    active = engine.active_policy()
    assert active.version == policy.version + 1 and active.lists == (("vip", 2),)
    assert "list vip changed" in active.note
    assert engine.authorize(body).status == "Declined"
    assert engine.policy(policy.version).lists == (("vip", 1),)  # the old version is intact
    events = engine.store.query(
        "SELECT event FROM audit_log WHERE policy_version = ? ORDER BY created_at", [active.version]
    )
    assert [e for (e,) in events] == ["policy.created", "policy.activated"]


def _block_all() -> list[dict]:
    return [{"name": "everything else", "action": "block", "when": "true"}]


def test_reset_policy_is_a_new_version_with_the_default_rules(engine) -> None:
    engine.activate_policy(Policy.from_knobs(base_decline_prob=0.5))
    reset = engine.reset_policy()
    assert reset.version == 3 and reset.same_rules_as(DEFAULT_POLICY)
    events = engine.store.query("SELECT count(*) FROM audit_log WHERE event = 'policy.activated'")
    assert events[0][0] == 3


def test_explain_names_the_original_texts_for_knob_rules(engine) -> None:
    policy = engine.active_policy()
    assert policy.rules[0].name == HIGH_AMOUNT_RULE and policy.rules[0].flags_risk
    assert not policy.rules[1].flags_risk


def test_the_v11_migration_derives_rule_columns_from_knob_decisions(tmp_path) -> None:
    """Rows decided by knob policies in a file at schema v10 (before rules) get exactly the
    rule index, action and flagging rule the rule engine stores for the same decisions now."""
    from engine.service import Engine

    derived = ("rule_index", "action", "flag_rule")
    query = (
        "SELECT id, reason_code::VARCHAR, status::VARCHAR, rule_index, action::VARCHAR, "
        "flag_rule, risk_flag FROM transactions ORDER BY id"
    )
    with Engine.open(tmp_path / "new.duckdb", card_key="k") as eng:
        eng.activate_policy(Policy.from_knobs(score_threshold=0.5, velocity_limit=2))
        # easy: no friendly fraud, nor counterfeit, which a file of that age cannot hold (v14
        # and v17 added them)
        eng.simulate(
            {"rows": 3_000, "seed": 4, "days": 1, "fraud_rate": 0.2, "difficulty": "easy",
             "scenario_mix": {**dict.fromkeys(SCENARIOS, 1.0), "counterfeit": 0.0}}
        )  # fmt: skip
        eng.activate_policy(Policy.from_knobs(velocity_limit=3, base_decline_prob=0.3))
        for i in range(30):
            eng.authorize(
                {"card_number": TEST_CARDS[i % 3], "amount": f"{i * 40 + 1}.00", "merchant": "M"}
            )
        expected = eng.store.query(query)
    assert {r[1] for r in expected} == {
        "APPROVED", "HIGH_AMOUNT", "RANDOM_DECLINE", "SCORE_THRESHOLD", "VELOCITY_LIMIT"
    }  # fmt: skip
    old = tmp_path / "old.duckdb"
    with database_at_schema(old, 10) as con:
        con.execute(f"ATTACH '{tmp_path / 'new.duckdb'}' AS new (READ_ONLY)")
        con.execute(
            "INSERT INTO transactions BY NAME SELECT * EXCLUDE (reason_code, "
            f"{', '.join([*derived, *LATER_COLUMNS])}), reason_code::VARCHAR AS reason_code "
            "FROM new.transactions"
        )
        con.execute(
            "INSERT INTO policies SELECT version, created_at, knobs, note FROM new.policies"
        )
        con.execute("INSERT INTO runs SELECT * FROM new.runs")
        con.execute("UPDATE run_id_counter SET last_id = (SELECT max(id) FROM runs)")
    with Engine.open(old, card_key="k") as eng:
        assert eng.store.query(query) == expected
        assert eng.active_policy().version == 3
        assert eng.policy(2).knobs == Knobs(score_threshold=0.5, velocity_limit=2)
