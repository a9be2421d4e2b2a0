"""The challenge action (3-D Secure step-up): its outcome comes from the second stored draw and the
policy's challenge model on the live path and in bulk runs; backtests count challenged / passed /
abandoned / failed as independent queries over the stored draws do; comparisons price each
challenge, lose the margin of abandoned sales and shift the liability of passed fraud; files of
schema v14 migrate with a deterministic challenge_draw."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from support import TEST_CARDS, database_at_schema, read_numpy

from engine.challenge import ABANDONED, FAILED, PASSED, ChallengeModel
from engine.costs import CostModel
from engine.policy import DEFAULT_POLICY
from engine.rules import decide_from_matches
from engine.schema import SCHEMA_VERSION
from engine.service import Engine

STEP_UP = [{"name": "step up", "action": "challenge", "when": ":amount: > 50"}]
TRUTH = "SELECT challenge_draw, channel::VARCHAR AS channel, coalesce(is_fraud, false) AS fraud"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("challenge") / "challenge.duckdb"
    with Engine.open(path, seed=3, card_key="challenge-key", backup_interval_s=0) as eng:
        eng.simulate({"rows": 20_000, "seed": 8, "days": 10, "fraud_rate": 0.05})
        yield eng


def test_the_model_passes_below_the_rate_for_whom_it_is_paying() -> None:
    model = ChallengeModel(ecommerce_pass_rate=0.8, other_pass_rate=0.9, fraud_pass_rate=0.1)
    draw = np.array([0.79, 0.8, 0.89, 0.9, 0.05, 0.1, 0.5])
    ecommerce = np.array([True, True, False, False, True, False, True])
    fraud = np.array([False, False, False, False, True, True, True])
    assert model.outcomes(draw, ecommerce, fraud).tolist() == [
        PASSED, ABANDONED, PASSED, ABANDONED, PASSED, FAILED, FAILED
    ]  # fmt: skip
    assert model.outcomes(draw, ecommerce).tolist() == [
        PASSED, ABANDONED, PASSED, ABANDONED, PASSED, PASSED, PASSED
    ]  # fmt: skip  # no ground truth (live): every payer is genuine


@pytest.mark.parametrize(
    "bad", [{"fraud_pass_rate": 1.5}, {"other_pass_rate": -0.1}, {"ecommerce_pass_rate": True},
            {"ecommerce_pass_rate": "0.9"}, {"abandon_rate": 0.1}]
)  # fmt: skip
def test_the_model_refuses_what_is_not_a_probability(bad) -> None:
    with pytest.raises(ValidationError):
        ChallengeModel(**bad)


def test_a_challenge_without_outcomes_is_a_callers_bug() -> None:
    with pytest.raises(ValueError, match="challenge_passed"):
        decide_from_matches(np.ones((1, 2), dtype=bool), np.array([4], dtype=np.int8))


def test_challenge_comes_after_allow_and_before_block() -> None:
    actions = np.array([2, 4, 1], dtype=np.int8)  # block, challenge, allow (as written)
    matches = np.array([[1, 1, 1, 0], [1, 1, 0, 1], [1, 0, 0, 0]], dtype=bool)
    passed = np.array([False, False, True, False])
    outcome = decide_from_matches(matches, actions, passed)
    assert outcome.rule_index.tolist() == [2, 1, 0, 1]  # allow, challenge, block, challenge
    assert outcome.approved.tolist() == [True, False, False, False]


def test_live_payments_are_challenged_by_their_stored_draw(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "live.duckdb", seed=5, card_key="k") as eng:
        version = eng.create_policy(
            STEP_UP, challenge=ChallengeModel(ecommerce_pass_rate=0.6, other_pass_rate=0.0)
        ).version
        eng.activate_version(version)
        answers = [
            eng.authorize({"card_number": TEST_CARDS[i % 4], "amount": f"{60 + i}.00",
                           "merchant": "Shop", "channel": "ecommerce" if i % 3 else "pos"})
            for i in range(60)
        ]  # fmt: skip
        answers.append(eng.authorize({"card_number": TEST_CARDS[0], "amount": "5.00",
                                      "merchant": "Shop"}))  # fmt: skip
        stored = {a.transaction_id: eng.get_transaction(a.transaction_id) for a in answers}
        audit = eng.get_audit(answers[0].transaction_id)[0].decision
    outcomes = {a.challenge for a in answers}
    assert outcomes == {"passed", "abandoned", None}  # live payers never fail: no ground truth
    for a in answers[:-1]:
        row = stored[a.transaction_id]
        rate = 0.6 if row.channel == "ecommerce" else 0.0
        expected = "passed" if row.challenge_draw < rate else "abandoned"
        assert (a.action, a.rule, a.challenge, row.challenge) == ("challenge", "step up",
                                                                  expected, expected)  # fmt: skip
        if expected == "passed":
            assert (a.status, a.decision_reason, a.reason_code) == (
                "Approved", None, "CHALLENGE_PASSED")  # fmt: skip
        else:
            assert (a.status, a.reason_code) == ("Declined", "CHALLENGE_ABANDONED")
            assert a.decision_reason.startswith("Challenge abandoned")
    assert (answers[-1].action, answers[-1].challenge) == ("none", None)
    assert audit.challenge == answers[0].challenge
    assert audit.challenge_draw == stored[answers[0].transaction_id].challenge_draw


def test_challenge_draws_do_not_depend_on_the_chunking(tmp_path: Path) -> None:
    draws = []
    for chunk_rows in (97, 5_000):
        with Engine.open(tmp_path / f"c{chunk_rows}.duckdb", card_key="k") as eng:
            eng.simulate({"rows": 2_000, "seed": 12, "days": 2, "chunk_rows": chunk_rows})
            draws.append(read_numpy(eng.store, "SELECT challenge_draw, draw FROM transactions "
                                    "ORDER BY created_at, draw"))  # fmt: skip
    np.testing.assert_array_equal(draws[0]["challenge_draw"], draws[1]["challenge_draw"])
    assert draws[0]["challenge_draw"].min() >= 0 and draws[0]["challenge_draw"].max() < 1
    assert abs(np.corrcoef(draws[0]["challenge_draw"], draws[0]["draw"])[0, 1]) < 0.1


def _expected_outcomes(engine: Engine, model: ChallengeModel, where: str) -> dict[str, int]:
    """Challenge outcomes of the rows ``where`` selects, computed here from the stored draws."""
    rows = read_numpy(engine.store, f"{TRUTH} FROM transactions WHERE {where}")
    genuine = np.where(rows["channel"] == "ecommerce", model.ecommerce_pass_rate,
                       model.other_pass_rate)  # fmt: skip
    rate = np.where(rows["fraud"], model.fraud_pass_rate, genuine)
    passed = rows["challenge_draw"] < rate
    return {
        "challenged": len(passed),
        "challenge_passed": int(passed.sum()),
        "challenge_abandoned": int((~passed & ~rows["fraud"]).sum()),
        "challenge_failed": int((~passed & rows["fraud"]).sum()),
    }


def test_a_backtest_counts_each_outcome_of_its_challenges(engine) -> None:
    model = ChallengeModel(fraud_pass_rate=0.3)
    candidate = engine.draft_policy(STEP_UP, challenge=model)
    result = engine.backtest(candidate, run=1)
    expected = _expected_outcomes(engine, model, "amount > 50")
    got = {name: getattr(result.candidate, name) for name in expected}
    assert got == expected and expected["challenge_failed"] > 0
    assert (
        result.candidate.declined == expected["challenge_abandoned"] + expected["challenge_failed"]
    )
    assert (
        result.candidate.declines_by_reason["CHALLENGE_ABANDONED"]
        == expected["challenge_abandoned"]
    )
    assert result.active.challenged == 0
    # liability shift: the fraud that passed a challenge is not the merchant's loss
    (lost,) = engine.store.query(
        "SELECT sum(amount) FROM transactions WHERE is_fraud AND amount <= 50"
    )[0]
    assert result.candidate.fraud_loss == lost
    assert result.candidate.liability_shifted > 0


def test_a_backtest_too_wide_to_pack_its_key_counts_challenges_alike(engine) -> None:
    """60 rules: the match words no longer fit one BIGINT with the key; the outcome codes ride
    in the key all the same."""
    never = [{"name": f"never {i}", "action": "block", "when": ":amount: > 999999"}
             for i in range(59)]  # fmt: skip
    result = engine.backtest(engine.draft_policy(STEP_UP + never), run=1)
    expected = _expected_outcomes(engine, ChallengeModel(), "amount > 50")
    assert {name: getattr(result.candidate, name) for name in expected} == expected


def test_a_comparison_prices_challenges_abandonment_and_the_liability_shift(engine) -> None:
    model = ChallengeModel(fraud_pass_rate=0.5)
    b = engine.draft_policy(STEP_UP, challenge=model)
    costs = CostModel(challenge_cost=Decimal("0.25"), false_decline_margin=Decimal("0.40"))
    result = engine.compare(DEFAULT_POLICY, b, run=1, costs=costs, replicates=200)
    expected = _expected_outcomes(engine, model, "amount > 50")
    assert {name: getattr(result.b, name) for name in expected} == expected
    assert result.b.costs.challenge_cost == Decimal("0.25") * expected["challenged"]
    # abandoned sales: the margin of genuine payers who gave up, in GBP pence summed exactly
    rows = read_numpy(
        engine.store,
        f"{TRUTH}, CAST(amount_in_gbp * 100 AS BIGINT) AS pence, is_fraud AS label "
        "FROM transactions WHERE amount > 50",
    )
    genuine = np.where(rows["channel"] == "ecommerce", 0.85, 0.95)
    passed = rows["challenge_draw"] < np.where(rows["fraud"], 0.5, genuine)
    abandoned = int(rows["pence"][~passed & ~rows["fraud"]].sum())
    margin = Decimal(abandoned).scaleb(-2) * Decimal("0.40")
    margin = margin.quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    assert result.b.costs.abandonment_cost == margin > 0
    shifted = int((passed & rows["label"]).sum())
    assert result.b.liability_shifted == result.b.costs.liability_shifted == shifted > 0
    fraud_small = engine.store.query(
        "SELECT count(*), sum(CAST(amount_in_gbp * 100 AS BIGINT)) FROM transactions "
        "WHERE is_fraud AND amount <= 50"
    )[0]
    assert result.b.costs.approved_fraud == fraud_small[0]  # big fraud: shifted or declined
    assert result.b.costs.fraud_loss == Decimal(int(fraud_small[1])).scaleb(-2)
    total = result.b.costs
    parts = ("fraud_loss", "chargeback_fees", "false_decline_cost", "review_cost",
             "challenge_cost", "abandonment_cost", "friendly_fraud_loss")  # fmt: skip
    assert total.total == sum(getattr(total, part) for part in parts)
    metrics = {d.metric: d for d in result.differences}
    assert metrics["challenge_cost"].difference == float(total.challenge_cost)
    assert metrics["abandonment_cost"].low is not None


def test_a_v14_file_migrates_with_a_deterministic_challenge_draw(tmp_path: Path) -> None:
    draws = []
    for name in ("a", "b"):
        old = tmp_path / f"{name}.duckdb"
        with database_at_schema(old, 14) as con:
            con.execute(
                "INSERT INTO transactions (id, run_id, created_at, card_hash, card_bin, "
                "card_last4, card_length, amount, currency, merchant, channel, status, "
                "reason_code, risk_flag, "
                "rule_index, action, flag_rule, score, spending_velocity, device_trust_score, "
                "ip_risk_score, velocity_count, device_seen_count, device_other_cards, "
                "payments_per_card_24h, amount_per_card_24h, devices_per_card_7d, card_age_days, "
                "draw, policy_version, latency_ms, is_fraud) "
                "SELECT ('00000000-0000-7000-8000-' || lpad(i::VARCHAR, 12, '0'))::UUID, 1, "
                "TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE, uuid(), 400000, i, 16, 100.00, "
                "'GBP', 'M', 'ecommerce', 'Approved', 'APPROVED', false, -1, 'none', -1, 0.1, 0, "
                "0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 1, 1.0, i % 4 = 0 FROM range(400) t(i)"
            )
        with Engine.open(old, card_key="k") as eng:
            assert eng.store.schema_version() == SCHEMA_VERSION
            draws.append(
                read_numpy(eng.store, "SELECT challenge_draw FROM transactions ORDER BY id")
            )
            # the widened types take a challenge decision, and old rows backtest with challenges
            eng.activate_version(eng.create_policy(STEP_UP).version)
            live = eng.authorize({"card_number": TEST_CARDS[0], "amount": "80.00", "merchant": "M"})
            assert live.action == "challenge" and live.challenge in ("passed", "abandoned")
            result = eng.backtest(eng.draft_policy(STEP_UP), run="all")
            assert result.candidate.challenged == 401  # the old rows and the live payment
            expected = _expected_outcomes(eng, ChallengeModel(), "run_id = 1")
            assert result.candidate.challenge_failed == expected["challenge_failed"] > 0
    a, b = draws[0]["challenge_draw"], draws[1]["challenge_draw"]
    np.testing.assert_array_equal(a, b)  # derived from the id: the same rows get the same draws
    assert len(np.unique(a)) == 400 and a.min() >= 0 and a.max() < 1
    assert 0.4 < a.mean() < 0.6
