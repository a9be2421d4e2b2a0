"""Backtests: the SQL re-decision equals the numpy decider, metrics are right, candidate ==
active is a no-op, and per-rule figures and overlaps count what they say."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import numpy as np
import pytest
from knob_reference import decide_as_engine
from support import read_numpy
from synthetic_rows import insert_rows, random_columns

from engine.backtest import CURVE_STEPS
from engine.decision import Decider, Reason, reason_codes, risk_score_sql
from engine.errors import InvalidRequestError
from engine.filters import RowFilter
from engine.policy import DEFAULT_POLICY, Policy, ScoreWeights
from engine.service import Engine


@pytest.fixture
def engine(tmp_path):
    with Engine.open(tmp_path / "bt.duckdb", seed=7) as eng:
        yield eng


def sql_decisions(engine: Engine, policy: Policy) -> dict[str, np.ndarray]:
    """Per-row score and reason from the compiled SQL (match words decided in numpy, as a
    backtest does), in id order."""
    decider = Decider(policy)
    score_sql = risk_score_sql(policy.score_weights)
    plan = decider.rules.sql(prefix="c_", risk_score_sql=score_sql)
    words = ", ".join(f"{w} AS w{i}" for i, w in enumerate(plan.words))
    rows = read_numpy(
        engine.store,
        f"SELECT {score_sql} AS c_score, {words} FROM transactions ORDER BY id",
        plan.params,
    )
    matrix = np.column_stack([rows[f"w{i}"] for i in range(len(plan.words))])
    outcome = decider.rules.decide_matches(decider.rules.unpack_words(matrix))
    codes = reason_codes(policy)
    reason = np.where(outcome.rule_index >= 0, codes[outcome.rule_index], Reason.APPROVED)
    return {"score": rows["c_score"], "reason": reason}


def numpy_decisions(cols: dict[str, np.ndarray], policy: Policy):
    return decide_as_engine(
        policy, cols["cents"], cols["sv"], cols["dt"], cols["ip"], cols["vc"], cols["draw"]
    )


def edge_columns() -> dict[str, np.ndarray]:
    """Rows sitting exactly on every boundary of the default-like policies below."""
    cents = [50_000, 50_001, 49_999, 50_000, 50_001, 1, 99_999_999, 25_000, 12_345, 50_000]
    draw = [0.30, 0.30, 0.10, 0.0999999, 0.2999999, 0.0, 0.9999, 0.10, 0.5, 0.30]
    return {
        "cents": np.array(cents, np.int64),
        "sv": np.array([0.0, 1.0, 0.5, 0.25, 0.75, 0.0, 1.0, 0.1, 0.333, 0.2]),
        "dt": np.array([1.0, 0.0, 0.5, 0.75, 0.25, 1.0, 0.0, 0.3, 0.777, 0.6]),
        "ip": np.array([0.0, 1.0, 0.5, 0.1, 0.9, 0.0, 1.0, 0.7, 0.123, 0.4]),
        "vc": np.array([0, 5, 4, 5, 6, 0, 100, 5, 3, 1], np.int32),
        "draw": np.array(draw),
        "is_fraud": np.array([False, True, False, True, False, False, True, False, True, False]),
        "scenario": np.array(
            [
                None,
                "stolen_card",
                None,
                "card_testing",
                None,
                None,
                "card_testing",
                None,
                "account_takeover",
                None,
            ],
            dtype=object,
        ),
    }


def policies_for(cols: dict[str, np.ndarray]) -> list[Policy]:
    """Default, plus policies whose score threshold equals a row's score exactly."""
    base = [
        DEFAULT_POLICY,
        Policy.from_knobs(velocity_limit=5),
        Policy.from_knobs(amount_threshold=Decimal("123.45"), high_amount_decline_prob=0.5),
        Policy.from_knobs(weight_device=10, weight_ip=10, weight_amount=10, weight_velocity=10),
        Policy.from_knobs(score_threshold=0.0),
        Policy.from_knobs(score_threshold=1.0, weight_amount=5),
        Policy.from_knobs(base_decline_prob=0.0, high_amount_decline_prob=1.0),
    ]
    for row in (0, 2, 3, 7, 8):
        for knobs in ({}, {"weight_ip": 0.7, "weight_amount": 0.05}):
            probe = Policy.from_knobs(**knobs)
            score = float(numpy_decisions(cols, probe).score[row])
            base.append(Policy.from_knobs(**knobs, score_threshold=score, velocity_limit=5))
    return base


def test_sql_translation_matches_decide_on_edge_cases(engine):
    cols = edge_columns()
    insert_rows(engine.store, cols)
    for policy in policies_for(cols):
        expected = numpy_decisions(cols, policy)
        got = sql_decisions(engine, policy)
        np.testing.assert_array_equal(got["score"], expected.score, err_msg=str(policy))
        np.testing.assert_array_equal(got["reason"], expected.reason, err_msg=str(policy))


def test_edge_rows_hit_each_boundary_as_decide_says():
    cols = edge_columns()
    d = numpy_decisions(cols, DEFAULT_POLICY)
    # amount exactly at the threshold is not "high"; draw exactly at the probability approves
    assert d.reason[0] == Reason.APPROVED
    assert d.reason[1] == Reason.APPROVED
    assert d.reason[2] == Reason.APPROVED
    assert d.reason[3] == Reason.RANDOM_DECLINE
    assert d.reason[4] == Reason.HIGH_AMOUNT
    assert d.reason[5] == Reason.RANDOM_DECLINE
    v = numpy_decisions(cols, Policy.from_knobs(velocity_limit=5))
    assert v.reason[1] == Reason.VELOCITY_LIMIT and v.reason[8] != Reason.VELOCITY_LIMIT


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_translation_matches_decide_on_random_rows_and_policies(engine, seed):
    cols = random_columns(3000, seed)
    insert_rows(engine.store, cols)
    rng = np.random.default_rng(seed + 100)
    for _ in range(8):
        policy = Policy.from_knobs(
            amount_threshold=Decimal(int(rng.integers(1, 200_000))).scaleb(-2),
            high_amount_decline_prob=float(rng.random()),
            base_decline_prob=float(rng.random() * 0.3),
            score_threshold=float(rng.random()) if rng.random() < 0.7 else None,
            velocity_limit=int(rng.integers(1, 12)) if rng.random() < 0.5 else None,
            weight_device=float(rng.random()),
            weight_ip=float(rng.random()),
            weight_amount=float(rng.random() * 2),
            weight_velocity=float(rng.random()),
        )
        expected = numpy_decisions(cols, policy)
        got = sql_decisions(engine, policy)
        np.testing.assert_array_equal(got["score"], expected.score)
        np.testing.assert_array_equal(got["reason"], expected.reason)


def reference_metrics(cols, policy):
    """Backtest metrics computed row by row in numpy, for comparison."""
    d = numpy_decisions(cols, policy)
    fraud = cols["is_fraud"].astype(bool)
    declined = ~d.approved
    return {
        "approved": int(d.approved.sum()),
        "fraud": int(fraud.sum()),
        "fraud_caught": int((fraud & declined).sum()),
        "false_declines": int((~fraud & declined).sum()),
        "fraud_loss": Decimal(int(cols["cents"][fraud & d.approved].sum())).scaleb(-2),
        "false_decline_amount": Decimal(int(cols["cents"][~fraud & declined].sum())).scaleb(-2),
        "precision": (fraud & declined).sum() / declined.sum(),
    }


def test_metrics_match_a_row_by_row_reference(engine):
    cols = random_columns(5000, seed=11)
    insert_rows(engine.store, cols)
    candidate = Policy.from_knobs(
        score_threshold=0.62, velocity_limit=9, amount_threshold=Decimal("300")
    )
    result = engine.backtest(candidate)
    for name, metrics, policy in (
        ("candidate", result.candidate, candidate),
        ("active", result.active, engine.active_policy()),
    ):
        ref = reference_metrics(cols, policy)
        assert metrics.rows == 5000, name
        assert metrics.labelled == 5000
        assert metrics.approved == ref["approved"], name
        assert metrics.declined == 5000 - ref["approved"]
        assert metrics.fraud == ref["fraud"]
        assert metrics.fraud_caught == ref["fraud_caught"], name
        assert metrics.recall == pytest.approx(ref["fraud_caught"] / ref["fraud"])
        assert metrics.precision == pytest.approx(ref["precision"])
        assert metrics.false_declines == ref["false_declines"], name
        assert metrics.fraud_loss == ref["fraud_loss"], name
        assert metrics.false_decline_amount == ref["false_decline_amount"], name
        assert sum(metrics.declines_by_reason.values()) == metrics.declined
    # the candidate is stricter: it catches more fraud and approves less
    assert result.candidate.fraud_caught > result.active.fraud_caught
    assert result.candidate.approval_rate < result.active.approval_rate
    assert sum(s.fraud for s in result.scenarios) == result.candidate.fraud
    assert sum(s.caught_candidate for s in result.scenarios) == result.candidate.fraud_caught
    assert {s.scenario for s in result.scenarios} <= {
        "stolen_card",
        "card_testing",
        "account_takeover",
        "compromised_merchant",
    }


def test_hand_computed_numbers_on_four_rows(engine):
    cols = {
        "cents": np.array([10_000, 60_000, 60_000, 2_000], np.int64),
        "sv": np.zeros(4),
        "dt": np.ones(4),
        "ip": np.zeros(4),
        "vc": np.array([0, 0, 7, 0], np.int32),
        "draw": np.array([0.5, 0.2, 0.9, 0.05]),
        "is_fraud": np.array([False, True, True, False]),
        "scenario": np.array([None, "stolen_card", "card_testing", None], dtype=object),
    }
    insert_rows(engine.store, cols)
    # active (default): row 1 high amount, draw .2 < .3: declined; row 3 draw .05 < .1: declined
    result = engine.backtest(Policy.from_knobs(velocity_limit=5))
    a, c = result.active, result.candidate
    assert (a.approved, a.fraud_caught, a.false_declines) == (2, 1, 1)
    assert a.fraud_loss == Decimal("600.00")
    assert a.false_decline_amount == Decimal("20.00")
    assert a.recall == 0.5 and a.precision == 0.5
    # candidate adds the velocity rule: row 2 (7 prior payments) is declined too
    assert (c.approved, c.fraud_caught, c.false_declines) == (1, 2, 1)
    assert c.fraud_loss == Decimal("0.00") and c.recall == 1.0
    assert c.declines_by_reason["VELOCITY_LIMIT"] == 1
    assert result.newly_declined == 1 and result.newly_approved == 0
    recall = {s.scenario: (s.recall_active, s.recall_candidate) for s in result.scenarios}
    assert recall == {"stolen_card": (1.0, 1.0), "card_testing": (0.0, 1.0)}


def test_candidate_equal_to_active_gives_identical_metrics(engine):
    insert_rows(engine.store, random_columns(2000, seed=5))
    active = engine.activate_policy(
        Policy.from_knobs(score_threshold=0.7, velocity_limit=6), "test"
    )
    result = engine.backtest(Policy.from_knobs(active.knobs))
    assert result.candidate == result.active
    assert result.newly_declined == result.newly_approved == 0
    assert all(s.recall_active == s.recall_candidate for s in result.scenarios)


def test_curve_passes_through_the_candidate_point(engine):
    cols = random_columns(4000, seed=9)
    insert_rows(engine.store, cols)
    for threshold in (0.35, 0.5, 0.57, 0.29):
        result = engine.backtest(Policy.from_knobs(score_threshold=threshold))
        point = result.curve[round(threshold * CURVE_STEPS)]
        assert point.score_threshold == threshold
        assert point.approval_rate == pytest.approx(result.candidate.approval_rate)
        assert point.recall == pytest.approx(result.candidate.recall)
    off = result.curve[-1]
    assert off.score_threshold is None
    assert off.approval_rate == pytest.approx(result.active.approval_rate)
    rates = [p.approval_rate for p in result.curve[:-1]]
    assert rates == sorted(rates)  # raising the threshold never approves less


def test_filters_select_runs_live_rows_and_time_ranges(engine):
    insert_rows(engine.store, random_columns(500, seed=1), run_id=1)
    insert_rows(engine.store, random_columns(300, seed=2), run_id=2, first_index=10_000)
    live = random_columns(40, seed=3)
    live["is_fraud"] = np.array([None] * 40, dtype=object)
    live["scenario"] = np.array([None] * 40, dtype=object)
    insert_rows(engine.store, live, run_id=None, first_index=20_000)
    candidate = Policy.from_knobs(score_threshold=0.5)
    assert engine.backtest(candidate).candidate.rows == 840
    assert engine.backtest(candidate, run=2).candidate.rows == 300
    only_live = engine.backtest(candidate, run="live").candidate
    assert only_live.rows == 40 and only_live.labelled == 0 and only_live.recall is None
    from datetime import timedelta

    from synthetic_rows import START

    day = engine.backtest(candidate, RowFilter(run=1, since=START, until=START + timedelta(days=1)))
    assert 0 < day.candidate.rows < 500
    # a valid currency the selection does not hold selects nothing; a run that does not exist
    # is a mistake, refused naming the field
    empty = engine.backtest(candidate, run=1, currencies=("JPY",)).candidate
    assert empty.rows == 0 and empty.approval_rate == 0.0 and empty.recall is None
    with pytest.raises(InvalidRequestError) as refused:
        engine.backtest(candidate, run=99)
    assert refused.value.field == "filters.run"


def test_filter_rejects_an_inverted_time_range():
    from synthetic_rows import START

    with pytest.raises(ValueError, match="since"):
        RowFilter(since=START, until=START)


def test_a_priced_backtest_reads_the_transactions_once(engine):
    """The backtest's groups and the comparison's that price it come from one scan (GROUPING
    SETS over one evaluation of the rules), not two: pricing once doubled a backtest's time."""
    from engine.backtest import backtest_regroup
    from engine.compare import compare_sql, shared_rules, sides

    candidate = Decider(Policy.from_knobs(score_threshold=0.5))
    a_side, b_side = sides(Decider(DEFAULT_POLICY), candidate, engine.lists)
    regroup = backtest_regroup(
        shared_rules(a_side, b_side), ["stolen_card"], candidate, Decider(DEFAULT_POLICY)
    )
    sql, params = compare_sql(a_side, b_side, RowFilter(), False, 200, regroup)
    used = set(re.findall(r"\$(\w+)", sql))
    plan = engine.store.query(
        "EXPLAIN (FORMAT json) " + sql, {k: v for k, v in params.items() if k in used}
    )[0][1]

    def tables(node: dict) -> list[str]:
        own = [node["extra_info"]["Table"]] if node.get("name") == "SEQ_SCAN" else []
        return own + [t for child in node.get("children", []) for t in tables(child)]

    scanned = [t for root in json.loads(plan) for t in tables(root)]
    assert [t for t in scanned if t.endswith(".transactions")] == [
        next(t for t in scanned if t.endswith(".transactions"))
    ], scanned


def test_the_curve_never_declines_what_an_allow_rule_approves(engine):
    """Allow rules come first: at every threshold the rows they match stay approved, and the
    point at the candidate's own threshold is the candidate."""
    from engine.policy import SCORE_RULE, RuleSpec

    cols = random_columns(3000, seed=4)
    insert_rows(engine.store, cols)
    candidate = Policy(
        rules=(
            RuleSpec(name="small", action="allow", when=":amount: < 20"),
            RuleSpec(name=SCORE_RULE, action="block", when=":risk_score: >= 0.5"),
        )
    )
    result = engine.backtest(candidate)
    small = float((cols["cents"] < 2_000).mean())
    assert result.curve[0].approval_rate == pytest.approx(small)
    assert result.curve[50].approval_rate == pytest.approx(result.candidate.approval_rate)
    assert result.curve[-1].approval_rate == 1.0  # no threshold, no other block rule


def test_policies_too_wide_for_one_group_key_give_the_same_figures(engine):
    """Up to 62 match bits in all, the group key is one BIGINT; beyond, the words are grouped as
    columns. A wide policy padded with never-matching rules reports what its live rules do."""
    from engine.policy import RuleSpec

    insert_rows(engine.store, random_columns(2000, seed=8))
    live = (
        RuleSpec(name="fast", action="block", when=":payments_per_card_1h: >= 7"),
        RuleSpec(name="odd", action="review", when=":risk_score: >= 0.55"),
    )
    padding = tuple(
        RuleSpec(name=f"never {i}", action="block", when=f":amount: < -{i + 1}") for i in range(70)
    )
    narrow = engine.backtest(Policy(rules=live))
    wide = engine.backtest(Policy(rules=padding + live))
    assert wide.candidate == narrow.candidate
    assert [r.model_dump(exclude={"index"}) for r in wide.rules[70:]] == [
        r.model_dump(exclude={"index"}) for r in narrow.rules
    ]
    assert wide.curve == narrow.curve


def test_a_runs_own_weights_score_with_its_stored_scores(engine):
    """A run is scored by one policy version: a candidate with those weights reads each row's
    stored score (the value the decision saw) and answers exactly as recomputing it does; a
    candidate with other weights recomputes from the stored features."""
    from engine.backtest import run_backtest

    run = engine.simulate({"rows": 4000, "seed": 5, "days": 2})
    rules = [{"name": "risky", "action": "block", "when": ":risk_score: >= 0.45"}]
    same = engine.draft_policy(rules)
    other = engine.draft_policy(rules, ScoreWeights(device=0.3, ip=0.3, amount=0.1, velocity=0.1))
    chosen = RowFilter(run=run.id)
    decider, active = engine.policies.decider(same), engine.active_decider()

    def figures(result):
        return result.model_dump(exclude={"elapsed_ms"})

    recomputed = run_backtest(engine.store, engine.lists, decider, active, chosen)
    stored = engine.backtest(same, run=run.id)
    assert figures(stored) == figures(recomputed)
    assert 0 < stored.candidate.declined < stored.candidate.rows

    with engine.store.write() as tx:  # what the decisions saw, if it had been higher
        tx.execute("UPDATE transactions SET score = 1.0 WHERE run_id = ?", [run.id])
    assert engine.backtest(same, run=run.id).candidate.declined == stored.candidate.rows
    reweighted = engine.backtest(other, run=run.id)
    recomputed_other = run_backtest(
        engine.store, engine.lists, engine.policies.decider(other), active, chosen
    )
    assert figures(reweighted) == figures(recomputed_other)
    assert reweighted.candidate.declined < reweighted.candidate.rows
