"""Disputes over time, friendly fraud and the difficulty knobs: the delay model, missed and false
disputes, each labelled scenario's share of the requested mix, class overlap and drift, and the
v14 migration of a file whose fraud rows all had a chargeback."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from support import database_at_schema

from engine.schema import MIGRATIONS, SCHEMA_VERSION, V14_OBSERVED_DISPUTES, V17_SCENARIOS
from engine.service import Engine
from engine.simulation.outcomes import DAY_MS, FRAUD_CODE, NOT_RECEIVED_CODE
from engine.simulation.params import PRESETS, SCENARIOS, SimulationParams
from engine.simulation.population import build_population, hour_counts, hour_starts_ms
from engine.simulation.rows import FRIENDLY_CODE, Rows
from engine.simulation.scenarios import (
    CODE,
    context,
    episode_rates,
    mean_fraud_rows,
    mix_over_run,
)
from engine.simulation.stream import chunks

KEY = b"difficulty-test-key"


def _stream(params: SimulationParams) -> tuple[Rows, object]:
    pop = build_population(params, KEY)
    return Rows.concat(list(chunks(params, pop, 64_000))), pop


def test_presets_resolve_and_explicit_knobs_override_them() -> None:
    assert SimulationParams(rows=1).difficulty == "realistic"
    assert SimulationParams(rows=1).knobs() == PRESETS["realistic"]
    hard = SimulationParams(rows=1, difficulty="hard", drift=0.0).knobs()
    assert hard == dataclasses.replace(PRESETS["hard"], drift=0.0)
    easy, realistic, top = (PRESETS[name] for name in ("easy", "realistic", "hard"))
    for knob in ("overlap", "missed_disputes", "false_disputes", "drift", "friendly_fraud_rate"):
        assert getattr(easy, knob) == 0.0  # easy: today's world
        assert getattr(easy, knob) < getattr(realistic, knob) < getattr(top, knob), knob


def test_dispute_delays_follow_the_card_scheme_window() -> None:
    rows, _ = _stream(
        SimulationParams(rows=150_000, seed=2, days=20, fraud_rate=0.05, difficulty="easy")
    )
    fraud = rows.is_fraud
    disputed = fraud & (rows.dispute >= 0)
    days = (rows.label_at_ms - rows.t_ms)[disputed] / DAY_MS
    assert days.min() >= 2 and days.max() <= 120  # settlement first; the 120-day window
    assert 0.5 < ((days >= 30) & (days <= 60)).mean() < 0.7  # most within 30-60 days
    assert 38 < np.median(days) < 46 and (days > 90).mean() > 0.01  # and a long tail
    # easy: every fraud row is disputed as fraud (but the 1% the window closes on first)
    assert 0.98 < disputed.sum() / fraud.sum() < 1.0
    assert (rows.dispute[disputed] == FRAUD_CODE).all()
    assert (rows.label_at_ms[rows.dispute < 0] == -1).all()
    assert (rows.dispute[~fraud] < 0).all()  # no false disputes, no friendly fraud
    assert not (rows.scenario == FRIENDLY_CODE).any()


def test_missed_and_false_disputes_and_friendly_fraud_come_at_their_rates() -> None:
    params = SimulationParams(
        rows=200_000, seed=3, days=20, fraud_rate=0.05, difficulty="easy",
        missed_disputes=0.3, false_disputes=0.01, friendly_fraud_rate=0.01,
    )  # fmt: skip
    rows, _ = _stream(params)
    disputed = rows.dispute >= 0
    late = 0.008  # the share the 120-day window closes on
    fraud, friendly = rows.is_fraud, rows.scenario == FRIENDLY_CODE
    genuine = rows.scenario < 0
    assert (~disputed[fraud]).mean() == pytest.approx(0.3 + 0.7 * late, abs=0.02)
    assert disputed[genuine].mean() == pytest.approx(0.01 * (1 - late), abs=0.001)
    assert (rows.dispute[genuine & disputed] == FRAUD_CODE).all()
    # friendly fraud: a genuine payment (not fraud), always disputed, 30% as not received
    assert not (fraud & friendly).any()
    expected = 0.01 * params.rows
    assert abs(friendly.sum() - expected) < 4 * np.sqrt(expected)
    assert disputed[friendly].mean() > 0.98
    reasons = rows.dispute[friendly & disputed]
    assert (np.isin(reasons, [FRAUD_CODE, NOT_RECEIVED_CODE])).all()
    assert (reasons == NOT_RECEIVED_CODE).mean() == pytest.approx(0.3, abs=0.04)


def test_friendly_fraud_is_the_cardholders_own_card_not_present_payment() -> None:
    params = SimulationParams(rows=60_000, seed=4, days=10, friendly_fraud_rate=0.02)
    rows, pop = _stream(params)
    friendly = rows.take(rows.scenario == FRIENDLY_CODE)
    assert (friendly.device >= 0).all() and (friendly.device < pop.n_legit_devices).all()
    usual = (friendly.device == pop.card_device[friendly.card]) | (
        friendly.device == pop.card_device2[friendly.card]
    )
    assert usual.mean() > 0.95  # its own devices (a genuine payment: 1% from another)
    assert (friendly.currency == pop.card_home[friendly.card]).mean() > 0.9
    genuine = rows.take((rows.scenario < 0) & (rows.device >= 0))
    ratio = np.median(friendly.amount_cents) / np.median(genuine.amount_cents)
    assert 0.8 < ratio < 1.25  # drawn from the same genuine payments


@pytest.mark.parametrize("difficulty", ["easy", "realistic", "hard"])
def test_every_labelled_scenario_has_its_share_of_the_requested_mix(difficulty: str) -> None:
    params = SimulationParams(
        rows=300_000, seed=6, days=20, fraud_rate=0.08, difficulty=difficulty,
        scenario_mix={"stolen_card": 2.0, "card_testing": 1.0, "account_takeover": 1.0,
                      "compromised_merchant": 1.0, "counterfeit": 1.0},
    )  # fmt: skip
    starts = hour_starts_ms(params)
    rates = episode_rates(params, hour_counts(params), starts, context(params, int(starts[0])))
    wanted = {
        name: rates[:, code].sum() * mean_fraud_rows(name) for code, name in enumerate(SCENARIOS)
    }
    # the rates give exactly the fraud rate and, over the run, the (drifting) mix
    assert sum(wanted[name] for name in SCENARIOS) == pytest.approx(0.08 * params.rows)
    x = (starts - starts[0]) / (params.days * DAY_MS)
    mix = (mix_over_run(params, x) * hour_counts(params)[:, None]).sum(axis=0) / params.rows
    for code, name in enumerate(SCENARIOS):
        assert wanted[name] / (0.08 * params.rows) == pytest.approx(mix[code], abs=0.01)
    rows, _ = _stream(params)
    fraud = rows.is_fraud.sum()
    assert fraud == pytest.approx(0.08 * params.rows, rel=0.1)
    for code, name in enumerate(SCENARIOS):
        got = (rows.scenario == code).sum() / fraud
        assert got == pytest.approx(mix[code], abs=0.05), name
    friendly = (rows.scenario == FRIENDLY_CODE).sum()
    expected = params.knobs().friendly_fraud_rate * params.rows
    assert abs(friendly - expected) <= 4 * np.sqrt(expected) + (expected == 0)


def test_drift_moves_the_mix_and_the_amounts_over_the_run() -> None:
    params = SimulationParams(
        rows=300_000, seed=7, days=20, fraud_rate=0.08, difficulty="easy", drift=1.0
    )
    ends = mix_over_run(params, np.array([0.0, 1.0]))
    np.testing.assert_allclose(ends[0], [0.2] * 5)
    # ×(1 - d/2), ×(1 + d), counterfeit unmoved
    np.testing.assert_allclose(ends[1], np.array([0.1, 0.1, 0.4, 0.4, 0.2]) / 1.2)
    rows, _ = _stream(params)
    x = (rows.t_ms - rows.t_ms[0]) / (params.days * DAY_MS)
    early, late = x < 0.5, x >= 0.5
    hard = np.isin(rows.scenario, [CODE["account_takeover"], CODE["compromised_merchant"]])
    share = [hard[half & rows.is_fraud].mean() for half in (early, late)]
    assert share[1] > share[0] + 0.08
    spree = rows.scenario == CODE["stolen_card"]
    under = (rows.amount_cents >= 40_000) & (rows.amount_cents < 50_000)
    first, last = spree & (x < 0.2), spree & (x > 0.8)
    assert under[first].mean() < 0.35 and under[last].mean() > 0.75  # just under 500, later


def test_overlap_makes_fraud_use_the_cards_own_device_and_profile() -> None:
    def footprint(overlap: float) -> dict[str, float]:
        params = SimulationParams(
            rows=120_000, seed=8, days=10, fraud_rate=0.05, difficulty="easy", overlap=overlap
        )
        rows, pop = _stream(params)
        genuine = rows.take(rows.scenario < 0)
        out = {}
        for name in ("stolen_card", "account_takeover"):
            part = rows.take(rows.scenario == CODE[name])
            out[f"{name} own device"] = (part.device == pop.card_device[part.card]).mean()
            out[f"{name} amount ratio"] = np.median(part.amount_cents) / np.median(
                genuine.amount_cents
            )
        testing = rows.take(rows.scenario == CODE["card_testing"])
        out["card_testing cards per device"] = len(testing) / len(np.unique(testing.device))
        return out

    plain, blended, half = footprint(0.0), footprint(1.0), footprint(0.5)
    for name in ("stolen_card", "account_takeover"):
        assert plain[f"{name} own device"] == 0.0 and blended[f"{name} own device"] == 1.0
        assert 0.3 < half[f"{name} own device"] < 0.7
        assert plain[f"{name} amount ratio"] > 2 and blended[f"{name} amount ratio"] < 1.5
    assert plain["card_testing cards per device"] > 10
    assert blended["card_testing cards per device"] < 1.5  # another home device for each card


def test_declined_rows_keep_their_truth_and_lose_their_dispute(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "d.duckdb", card_key=KEY.decode()) as eng:
        run = eng.simulate({"rows": 20_000, "seed": 9, "days": 5, "fraud_rate": 0.1,
                            "difficulty": "hard"})  # fmt: skip
        counts = dict(
            eng.store.query(
                "SELECT status || ':' || (dispute_reason IS NOT NULL)::VARCHAR, count(*) "
                "FROM transactions WHERE run_id = ? AND fraud_scenario IS NOT NULL GROUP BY 1",
                [run.id],
            )
        )
        (mismatch,) = eng.store.query(
            "SELECT count(*) FROM transactions WHERE (dispute_reason IS NULL) "
            "<> (label_available_at IS NULL)"
        )[0]
    assert counts.get("Declined:true", 0) == 0 and counts["Declined:false"] > 0
    assert counts["Approved:true"] > 0 and counts["Approved:false"] > 0  # missed disputes
    assert mismatch == 0


def test_v14_migrates_a_file_whose_fraud_rows_all_had_a_chargeback(tmp_path: Path) -> None:
    old = tmp_path / "v12.duckdb"
    with database_at_schema(old, MIGRATIONS.index(V14_OBSERVED_DISPUTES)) as con:
        con.execute(
            "INSERT INTO transactions (id, run_id, created_at, card_hash, card_bin, card_last4, "
            "card_length, amount, currency, merchant, channel, status, reason_code, risk_flag, "
            "rule_index, action, flag_rule, score, spending_velocity, device_trust_score, "
            "ip_risk_score, velocity_count, device_seen_count, device_other_cards, "
            "payments_per_card_24h, amount_per_card_24h, devices_per_card_7d, card_age_days, "
            "draw, policy_version, latency_ms, is_fraud, fraud_scenario, label_available_at) "
            "SELECT uuid(), 1, TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE, uuid(), 400000, i, "
            "16, 10.00, 'GBP', 'M', 'pos', 'Approved', 'APPROVED', false, -1, 'none', -1, 0.1, "
            "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 1, 1.0, i % 3 = 0, "
            "CASE WHEN i % 3 = 0 THEN 'card_testing' END, "
            "CASE WHEN i % 3 = 0 THEN TIMESTAMP '2026-02-01' END FROM range(30) t(i)"
        )
    with Engine.open(old, card_key="k") as eng:
        assert eng.store.schema_version() == SCHEMA_VERSION
        got = eng.store.query(
            "SELECT is_fraud, fraud_scenario, dispute_reason, count(label_available_at), "
            "count(*) FROM transactions GROUP BY ALL ORDER BY ALL"
        )
        assert got == [(False, None, None, 0, 20), (True, "card_testing", "fraud", 10, 10)]
        run = eng.simulate({"rows": 3_000, "seed": 1, "days": 2, "friendly_fraud_rate": 0.05})
        (friendly,) = eng.store.query(
            "SELECT count(*) FROM transactions WHERE run_id = ? "
            "AND fraud_scenario = 'friendly_fraud' AND NOT is_fraud",
            [run.id],
        )[0]
        assert friendly > 50  # the widened type takes the new scenario


def test_v17_keeps_every_scenario_and_takes_counterfeit(tmp_path: Path) -> None:
    old = tmp_path / "v14.duckdb"
    with database_at_schema(old, MIGRATIONS.index(V17_SCENARIOS)) as con:
        scenarios = ["stolen_card", "friendly_fraud", None]
        con.execute(
            "INSERT INTO transactions (id, run_id, created_at, card_hash, card_bin, card_last4, "
            "card_length, amount, currency, merchant, channel, status, reason_code, risk_flag, "
            "rule_index, action, flag_rule, score, spending_velocity, device_trust_score, "
            "ip_risk_score, velocity_count, device_seen_count, device_other_cards, "
            "payments_per_card_24h, amount_per_card_24h, devices_per_card_7d, card_age_days, "
            "draw, policy_version, latency_ms, is_fraud, fraud_scenario, challenge_draw) "
            "SELECT uuid(), 1, TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE, uuid(), 400000, i, "
            "16, 10.00, 'GBP', 'M', 'pos', 'Approved', 'APPROVED', false, -1, 'none', -1, 0.1, "
            "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 1, 1.0, i % 3 = 0, "
            "CAST(list_extract($s, i % 3 + 1) AS fraud_scenario), 0.5 FROM range(30) t(i)",
            {"s": scenarios},
        )
    with Engine.open(old, card_key="k") as eng:
        assert eng.store.schema_version() == SCHEMA_VERSION
        got = eng.store.query(
            "SELECT fraud_scenario, count(*) FROM transactions GROUP BY ALL ORDER BY ALL"
        )
        assert got == [("friendly_fraud", 10), ("stolen_card", 10), (None, 10)]
        run = eng.simulate({"rows": 20_000, "seed": 1, "days": 7, "fraud_rate": 0.05})
        (counterfeit,) = eng.store.query(
            "SELECT count(*) FROM transactions WHERE run_id = ? AND fraud_scenario = "
            "'counterfeit' AND is_fraud",
            [run.id],
        )[0]
        assert counterfeit > 50  # the widened type takes the new scenario


def test_blended_fraud_pays_like_the_card_in_the_world() -> None:
    """A blended (mimicking) episode picks its merchant as the card's own online payments do
    (mostly in the card's country) and pays in that merchant's currency, the amount's."""
    from engine.simulation.population import build_population
    from engine.simulation.scenarios import GENERATORS, Context

    pop = build_population(SimulationParams(rows=20_000, seed=5), b"blend-key")
    ctx = Context(run_start_ms=1_767_225_600_000, run_end_ms=1_767_225_600_000 + 30 * 86_400_000,
                  breach_window_ms=12 * 3_600_000, max_delay_ms=5 * 86_400_000, overlap=1.0,
                  drift=0.0)  # fmt: skip
    start = ctx.run_start_ms + np.arange(200, dtype=np.int64) * 3_600_000
    for name in ("stolen_card", "account_takeover"):
        rows = GENERATORS[name](np.random.default_rng(1), pop, start, ctx)
        assert (rows.currency == pop.merchant_currency[rows.merchant]).all(), name
        domestic = pop.merchant_country[rows.merchant] == pop.card_country[rows.card]
        assert domestic.mean() > 0.6, name
