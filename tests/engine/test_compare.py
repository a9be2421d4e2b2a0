"""Comparisons of two policies: the SQL decision equals decide_from_matches, the counts and
costs equal independent queries, A vs A differs by nothing, and the paired intervals cover the
true difference at their stated rate."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import duckdb
import numpy as np
import pytest
from pydantic import ValidationError

from engine.compare import DailyCounts, paired_differences, shared_rules, sides
from engine.costs import CostModel
from engine.fx import RATES_PER_EUR
from engine.policy import DEFAULT_POLICY, Policy
from engine.rules import Action, action_from_words_sql, decide_from_matches, pack_words
from engine.service import Engine
from engine.simulation import shards

RULES = [
    {"name": "big", "action": "block", "when": ":amount: > 300"},
    {"name": "fresh device", "action": "review", "when": ":is_new_device:"},
    {"name": "tiny", "action": "allow", "when": ":amount: < 5"},
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("compare") / "compare.duckdb"
    with Engine.open(path, seed=7, backup_interval_s=0) as eng:
        eng.simulate({"rows": 30_000, "seed": 4, "days": 12, "fraud_rate": 0.03})
        yield eng


@pytest.mark.parametrize("n_rules", [1, 3, 70, 130])
def test_the_sql_action_is_the_action_decide_from_matches_gives(n_rules):
    rng = np.random.default_rng(n_rules)
    actions = rng.integers(1, 5, n_rules).astype(np.int8)  # allow, block, review, challenge
    matches = rng.random((n_rules, 400)) < 2.0 / n_rules
    words = pack_words(matches)  # rows x words
    names = [f"w{i}" for i in range(words.shape[1])]
    con = duckdb.connect()
    con.register("t", {name: words[:, i] for i, name in enumerate(names)})
    sql_action = con.execute(f"SELECT {action_from_words_sql(names, actions)} FROM t").fetchnumpy()
    expected = decide_from_matches(matches, actions, np.ones(400, dtype=bool)).action
    np.testing.assert_array_equal(next(iter(sql_action.values())), expected)


def test_a_policy_compared_with_itself_differs_by_nothing(engine):
    result = engine.compare(DEFAULT_POLICY, DEFAULT_POLICY)
    assert result.a == result.b
    for difference in result.differences:
        assert difference.difference == 0
        assert difference.low == difference.high == 0


def test_counts_and_costs_equal_independent_queries(engine):
    """The run was decided by the default policy, so its stored status is A's decision."""
    result = engine.compare(DEFAULT_POLICY, engine.draft_policy(RULES), run=1)
    (fraud_loss, approved_fraud, false_declines, cards, declined_pence) = engine.store.query(
        "SELECT sum(amount_in_gbp) FILTER (WHERE is_fraud AND status = 'Approved'), "
        "count(*) FILTER (WHERE is_fraud AND status = 'Approved'), "
        "count(*) FILTER (WHERE NOT is_fraud AND status = 'Declined'), "
        "count(DISTINCT card_hash) FILTER (WHERE NOT is_fraud AND status = 'Declined'), "
        "sum(amount_in_gbp) FILTER (WHERE NOT is_fraud AND status = 'Declined') "
        "FROM transactions WHERE run_id = 1"
    )[0]
    a = result.a
    model = CostModel()
    assert a.costs.fraud_loss == fraud_loss
    assert a.costs.approved_fraud == approved_fraud
    assert a.false_declines == a.costs.false_declines == false_declines
    assert a.costs.false_declined_cards == cards
    assert a.costs.chargeback_fees == model.chargeback_fee * approved_fraud
    margin = (declined_pence * model.false_decline_margin).quantize(Decimal("0.01"))
    assert a.costs.lost_margin == margin
    assert a.costs.false_decline_amount == declined_pence
    assert a.costs.churn == model.churn_cost_per_card * cards
    assert a.costs.total == (
        a.costs.fraud_loss
        + a.costs.chargeback_fees
        + a.costs.false_decline_cost
        + a.costs.friendly_fraud_loss
    )
    assert a.rows == 30_000 and result.unpriced == 0


def test_approved_friendly_fraud_costs_its_amount_and_a_chargeback_fee(engine):
    """Friendly fraud (a genuine payment its cardholder disputes) is not fraud: declined, it is
    a false decline; approved, it costs the amount plus the chargeback fee, in its own
    component. The run's stored status is the default policy's decision."""
    result = engine.compare(DEFAULT_POLICY, DEFAULT_POLICY, run=1)
    rows, approved, pence, declined = engine.store.query(
        "SELECT count(*), count(*) FILTER (WHERE status = 'Approved'), "
        "sum(amount_in_gbp) FILTER (WHERE status = 'Approved'), "
        "count(*) FILTER (WHERE status = 'Declined') "
        "FROM transactions WHERE run_id = 1 AND fraud_scenario = 'friendly_fraud'"
    )[0]
    fraud = engine.store.query("SELECT count(*) FROM transactions WHERE run_id = 1 AND is_fraud")
    a, model = result.a, CostModel()
    assert approved > 0 and declined > 0
    assert a.friendly_fraud == rows and a.fraud == fraud[0][0]
    assert a.costs.friendly_fraud == approved
    assert a.costs.friendly_fraud_loss == pence + model.chargeback_fee * approved
    genuine_declined = engine.store.query(
        "SELECT count(*) FROM transactions WHERE run_id = 1 AND NOT is_fraud "
        "AND status = 'Declined'"
    )[0][0]
    assert a.false_declines == genuine_declined  # friendly fraud declined among them
    friendly = {d.metric: d for d in result.differences}["friendly_fraud_loss"]
    assert friendly.a == float(a.costs.friendly_fraud_loss) and friendly.difference == 0


def test_friendly_fraud_costs_nothing_before_its_dispute_is_reported(engine):
    """With labels_as_of, a friendly-fraud payment costs once its dispute was reported by then
    and not filed as fraud (one filed as fraud is fraud, as the analyst saw it)."""
    model = CostModel()
    for as_of in (datetime(2026, 1, 20), datetime(2026, 3, 1), datetime(2026, 9, 1)):
        result = engine.compare(DEFAULT_POLICY, DEFAULT_POLICY, run=1, labels_as_of=as_of)
        known, pence = engine.store.query(
            "SELECT count(*), coalesce(sum(amount_in_gbp), 0) FROM transactions WHERE run_id = 1 "
            "AND fraud_scenario = 'friendly_fraud' AND status = 'Approved' "
            "AND label_available_at <= $as_of AND dispute_reason <> 'fraud'",
            {"as_of": as_of},
        )[0]
        assert result.a.costs.friendly_fraud == known
        assert result.a.costs.friendly_fraud_loss == pence + model.chargeback_fee * known
    early = engine.compare(DEFAULT_POLICY, DEFAULT_POLICY, run=1, labels_as_of=datetime(2026, 1, 5))
    late = engine.compare(DEFAULT_POLICY, DEFAULT_POLICY, run=1, labels_as_of=datetime(2026, 9, 1))
    assert early.a.costs.friendly_fraud < late.a.costs.friendly_fraud


def test_each_side_matches_the_backtest_of_the_same_policies(engine):
    candidate = engine.draft_policy(RULES)
    backtest = engine.backtest(candidate, run=1)
    result = engine.compare(engine.active_policy(), candidate, run=1)
    for side, metrics in ((result.a, backtest.active), (result.b, backtest.candidate)):
        assert side.approved == metrics.approved
        assert side.fraud_caught == metrics.fraud_caught
        assert side.false_declines == metrics.false_declines
    assert result.b.reviewed == sum(r.decided for r in backtest.rules if r.action == "review")
    assert result.b.reviewed > 0


def test_a_backtest_is_priced_as_the_comparison_of_the_same_two_policies(engine):
    """One pricing mechanism: a backtest's costs are POST /compare's of the active policy (A)
    and the candidate (B) over the same rows, with a review capacity, challenges and another
    reporting currency."""
    challenge = {"name": "online", "action": "challenge", "when": ":channel: = 'ecommerce'"}
    candidate = engine.draft_policy([*RULES, challenge])
    costs = CostModel(currency="EUR", review_capacity=40, challenge_cost=Decimal("0.20"))
    backtest = engine.backtest(candidate, run=1, costs=costs)
    compared = engine.compare(engine.active_policy(), candidate, run=1, costs=costs)
    assert backtest.cost_model == costs
    assert backtest.candidate.costs == compared.b.costs
    assert backtest.active.costs == compared.a.costs
    priced = backtest.candidate.costs
    assert priced.currency == "EUR" and 0 < priced.reviewed <= 40 * 12
    assert priced.challenged == backtest.candidate.challenged > 0
    assert priced.challenge_abandoned == backtest.candidate.challenge_abandoned > 0
    margin = costs.false_decline_margin
    assert priced.lost_margin == (priced.false_decline_amount * margin).quantize(Decimal("0.01"))
    assert priced.abandonment_cost == (priced.abandoned_amount * margin).quantize(Decimal("0.01"))
    total = next(d for d in compared.differences if d.metric == "total_cost")
    assert backtest.cost_difference.total == priced.total - backtest.active.costs.total
    assert float(backtest.cost_difference.total) == total.difference != 0
    assert engine.backtest(candidate, run=1).cost_model == CostModel()


def test_costs_convert_to_the_reporting_currency(engine):
    gbp = engine.compare(DEFAULT_POLICY, DEFAULT_POLICY, run=1)
    eur = engine.compare(DEFAULT_POLICY, DEFAULT_POLICY, run=1, costs=CostModel(currency="EUR"))
    per_gbp = RATES_PER_EUR["EUR"] / RATES_PER_EUR["GBP"]
    expected = (gbp.a.costs.fraud_loss * per_gbp).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    assert eur.a.costs.currency == "EUR"
    assert eur.a.costs.fraud_loss == expected
    assert eur.a.costs.chargeback_fees == gbp.a.costs.chargeback_fees  # fees are in EUR given


def test_intervals_are_reproducible_from_their_seed(engine):
    candidate = engine.draft_policy(RULES)
    first = engine.compare(DEFAULT_POLICY, candidate, seed=3)
    again = engine.compare(DEFAULT_POLICY, candidate, seed=3)
    other = engine.compare(DEFAULT_POLICY, candidate, seed=4)
    assert first.differences == again.differences
    assert first.differences != other.differences
    assert first.interval.blocks == 12 and first.interval.replicates == 2_000
    for d in first.differences:
        assert d.low <= d.difference <= d.high


def test_labels_as_of_counts_only_the_disputes_known_then(engine):
    early = engine.compare(DEFAULT_POLICY, DEFAULT_POLICY, run=1, labels_as_of=datetime(2026, 1, 5))
    truth = engine.compare(DEFAULT_POLICY, DEFAULT_POLICY, run=1)
    assert early.a.fraud < truth.a.fraud
    assert early.a.costs.fraud_loss < truth.a.costs.fraud_loss


def test_one_day_gives_no_interval(engine):
    result = engine.compare(
        DEFAULT_POLICY,
        Policy.from_knobs(score_threshold=0.5),
        since=datetime(2026, 1, 3),
        until=datetime(2026, 1, 4),
    )
    assert result.interval.blocks == 1
    assert all(d.low is None and d.high is None for d in result.differences)


@pytest.mark.parametrize(
    "bad",
    [
        {"currency": "XXX"},
        {"currency": "XAF"},  # an ISO code without a reference rate
        {"chargeback_fee": -1},
        {"chargeback_fee": True},
        {"review_cost": "3"},
        {"false_decline_margin": 1.5},
        {"churn_cost_per_card": 0.001},
        {"surprise": 1},
    ],
)
def test_cost_model_refuses_bad_values(bad):
    with pytest.raises(ValidationError):
        CostModel(**bad)


def _synthetic_days(rng: np.random.Generator, days: int, effect: float) -> tuple[DailyCounts, ...]:
    """Two policies over the same days: a shared day effect (busy days, fraud waves) that the
    pairing cancels, and B declining ``effect`` more of each day's rows."""
    rows = rng.poisson(1_000 * rng.lognormal(0, 0.5, days)).astype(np.int64)
    fraud = rng.binomial(rows, rng.uniform(0.005, 0.03, days))
    caught_a = rng.binomial(fraud, 0.5)
    caught_b = caught_a + rng.binomial(fraud - caught_a, 0.3)
    declined_a = rng.binomial(rows, 0.05)
    declined_b = declined_a + rng.binomial(rows - declined_a, effect)
    zeros = np.zeros(days, dtype=np.int64)

    def counts(caught: np.ndarray, declined: np.ndarray) -> DailyCounts:
        return DailyCounts(
            rows=rows, approved=rows - declined, labelled=rows, fraud=fraud,
            fraud_caught=caught, false_declines=declined - caught, review_marked=zeros,
            reviewed=zeros, fraud_stopped=zeros,
            approved_fraud_pence=(fraud - caught) * 5_000, false_decline_pence=zeros,
            false_declined_cards=zeros, challenged=zeros, challenge_passed=zeros,
            challenge_abandoned=zeros, challenge_failed=zeros, abandoned_pence=zeros,
            liability_shifted=zeros, friendly=zeros, friendly_approved=zeros,
            friendly_approved_pence=zeros, cp_cards=zeros, blocks=np.ones(days, np.int64),
        )  # fmt: skip

    return counts(caught_a, declined_a), counts(caught_b, declined_b)


def test_paired_intervals_cover_the_true_difference_at_their_rate():
    """Draw many synthetic comparisons whose expected approval-rate difference is known
    (-effect x 0.95) from the same population of days: a 95% interval must cover it about 95%
    of the time. Unpaired intervals would cover nearly always (too wide); intervals that ignored
    the day-to-day variation would cover far less often."""
    effect, trials, covered = 0.02, 300, 0
    truth = -effect * 0.95
    rng = np.random.default_rng(11)
    for trial in range(trials):
        a, b = _synthetic_days(rng, 60, effect)
        rate = {d.metric: d for d in paired_differences(a, b, CostModel(), 400, seed=trial)}
        covered += rate["approval_rate"].low <= truth <= rate["approval_rate"].high
    assert 0.90 <= covered / trials <= 0.99


def test_the_pairing_makes_intervals_narrower_than_separate_ones():
    rng = np.random.default_rng(5)
    a, b = _synthetic_days(rng, 60, 0.02)
    paired = {d.metric: d for d in paired_differences(a, b, CostModel(), 1_000)}["fraud_loss"]
    # the same two policies on independently resampled days: the width an unpaired test sees
    weights = np.random.default_rng(1).multinomial(60, np.full(60, 1 / 60), size=(2, 1_000))
    loss_a = weights[0] @ a.approved_fraud_pence / 100
    loss_b = weights[1] @ b.approved_fraud_pence / 100
    unpaired = np.quantile(loss_b - loss_a, [0.025, 0.975])
    assert paired.high - paired.low < (unpaired[1] - unpaired[0]) / 3


def test_actions_in_the_policy_order_do_not_change_the_sql_action():
    """Two block rules and a review rule: the action is block whichever block matched."""
    actions = np.array([Action.REVIEW, Action.BLOCK, Action.BLOCK], dtype=np.int8)
    con = duckdb.connect()
    sql = action_from_words_sql(["w"], actions)
    got = [con.execute(f"SELECT {sql} FROM (SELECT {w}::BIGINT AS w)").fetchone()[0]
           for w in (0, 1, 2, 4, 5, 7)]  # fmt: skip
    assert got == [Action.NONE, Action.REVIEW, Action.BLOCK, Action.BLOCK, Action.BLOCK,
                   Action.BLOCK]  # fmt: skip


def test_label_maturity_counts_more_fraud_the_longer_one_waits(engine):
    candidate = engine.draft_policy(RULES)
    result = engine.compare(DEFAULT_POLICY, candidate, run=1, maturity_days=(90, 0, 7, 30))
    points = result.maturity
    assert [p.days_after for p in points] == [0, 7, 30, 90]
    known = [p.fraud_known for p in points]
    assert known == sorted(known) and known[0] < known[-1] <= result.a.fraud
    end = engine.store.query("SELECT max(created_at) FROM transactions WHERE run_id = 1")[0][0]
    for point in points:
        again = engine.compare(DEFAULT_POLICY, candidate, run=1, labels_as_of=point.labels_as_of)
        assert point.labels_as_of.replace(tzinfo=None) - end == timedelta(days=point.days_after)
        assert point.fraud_known == again.a.fraud
        assert point.b_total_cost == again.b.costs.total
        assert point.total_cost == next(d for d in again.differences if d.metric == "total_cost")


REVIEW_ALL = [{"name": "everything", "action": "review", "when": ":amount: > 0"}]


def test_reviewed_fraud_is_stopped_and_costs_a_review(engine):
    """Reviewing every payment with unlimited capacity stops all fraud: no loss, no fees."""
    result = engine.compare(DEFAULT_POLICY, engine.draft_policy(REVIEW_ALL), run=1)
    b = result.b
    assert b.review_marked == b.reviewed == b.rows and b.review_backlog == 0
    assert b.fraud_stopped == b.fraud > 0 and b.recall == 1.0
    assert b.costs.fraud_loss == 0 and b.costs.chargeback_fees == 0
    assert b.costs.review_cost == CostModel().review_cost * b.rows
    assert b.review_hit_rate == b.fraud / b.rows


def test_the_review_team_works_the_riskiest_payments_first_up_to_its_capacity(engine):
    capacity = 50
    costs = CostModel(review_capacity=capacity)
    result = engine.compare(DEFAULT_POLICY, engine.draft_policy(REVIEW_ALL), run=1, costs=costs)
    b = result.b
    assert b.reviewed == capacity * 12 and b.review_backlog == b.rows - b.reviewed
    # the same figures from the stored rows: per day the 50 highest risk scores
    score = "0.4 * (1 - device_trust_score) + 0.3 * ip_risk_score"
    score += (
        " + 0.2 * least(CAST(amount * 100 AS BIGINT) / 100000.0, 1.0) + 0.1 * spending_velocity"
    )
    stopped, pence = engine.store.query(
        f"SELECT count(*) FILTER (WHERE is_fraud), sum(amount_in_gbp) FILTER (WHERE is_fraud) "
        f"FROM (SELECT *, row_number() OVER (PARTITION BY CAST(created_at AS DATE) "
        f"ORDER BY greatest(least({score}, 1.0), 0.0) DESC, is_fraud) AS rank "
        f"FROM transactions WHERE run_id = 1) WHERE rank <= {capacity}"
    )[0]
    assert b.fraud_stopped == stopped
    everything = engine.store.query(
        "SELECT sum(amount_in_gbp) FROM transactions WHERE run_id = 1 AND is_fraud"
    )[0][0]
    assert b.costs.fraud_loss == everything - pence
    assert 0 < b.fraud_stopped < b.fraud
    # the riskiest first: a hit rate well above the fraud share
    assert b.review_hit_rate > 2 * b.fraud / b.rows


@pytest.mark.parametrize("shard_rows", [None, 7_000])
def test_a_run_summary_prices_the_run_as_a_comparison_of_its_own_policy(
    tmp_path, monkeypatch, shard_rows
):
    """The summary's costs, counted chunk by chunk as the run is written, equal a comparison
    of the run's policy with itself over the run (ground truth, every review worked), in a run
    of one shard and of three (whose cards are counted by their run-wide codes)."""
    if shard_rows is not None:
        monkeypatch.setattr(shards, "SHARD_ROWS", shard_rows)
    with Engine.open(tmp_path / "summary.duckdb", seed=3, backup_interval_s=0) as eng:
        challenge = {"name": "online", "action": "challenge", "when": ":channel: = 'ecommerce'"}
        policy = eng.activate_policy(eng.draft_policy([*RULES, challenge]))
        run = eng.simulate(
            {"rows": 20_000, "seed": 9, "days": 6, "chunk_rows": 3_000, "friendly_fraud_rate": 0.01}
        )
        priced = eng.compare(policy, policy, run=run.id, replicates=100).a.costs
        stored = eng.get_run(run.id)
    assert stored.summary["costs"] == priced
    assert priced.reviewed > 0 and priced.false_declined_cards > 0 and priced.total > 0
    assert priced.challenged > 0 and priced.challenge_abandoned > 0 and priced.liability_shifted > 0
    assert priced.friendly_fraud > 0 and priced.friendly_fraud_loss > 0
    assert stored.summary["unpriced"] == 0
    as_json = stored.model_dump(mode="json")["summary"]["costs"]
    assert Decimal(str(as_json["total"])) == priced.total


def _cp_at_k_reference(rows: list[tuple], queued, k: int) -> tuple[int, float]:
    """CP@k row by row: per day, each card's highest score among its queued payments; the k
    highest cards (ties: cards without fraud first); compromised = a fraud payment that day."""
    top: dict[tuple, float] = {}
    compromised: set[tuple] = set()
    days = set()
    for day, card, score, is_fraud, channel in rows:
        days.add(day)
        if is_fraud:
            compromised.add((day, card))
        if queued(channel):
            top[(day, card)] = max(top.get((day, card), -1.0), score)
    found = 0
    for day in days:
        ranked = sorted(
            ((score, (day, card) in compromised) for (d, card), score in top.items() if d == day),
            key=lambda item: (-item[0], item[1]),
        )
        found += sum(hit for _, hit in ranked[:k])
    return found, found / (k * len(days))


def test_cp_at_k_equals_a_row_by_row_reference(engine):
    """Card precision at capacity for a policy reviewing everything (A) and one reviewing only
    e-commerce (B), against the Fraud Detection Handbook's definition computed in Python."""
    online = [{"name": "online", "action": "review", "when": ":channel: = 'ecommerce'"}]
    a, b = engine.draft_policy(REVIEW_ALL), engine.draft_policy(online)
    score = (
        "greatest(least(0.4 * (1 - device_trust_score) + 0.3 * ip_risk_score + 0.2 * "
        "least(CAST(amount * 100 AS BIGINT) / 100000.0, 1.0) + 0.1 * spending_velocity, 1.0), 0.0)"
    )
    rows = engine.store.query(
        f"SELECT CAST(created_at AS DATE), card_hash, {score}, is_fraud, CAST(channel AS VARCHAR) "
        "FROM transactions WHERE run_id = 1"
    )
    for k in (1, 40, 5_000):
        result = engine.compare(a, b, run=1, costs=CostModel(review_capacity=k), replicates=50)
        for side, queued in ((result.a, lambda c: True), (result.b, lambda c: c == "ecommerce")):
            found, cp = _cp_at_k_reference(rows, queued, k)
            assert side.cp_at_k_cards == found
            assert side.cp_at_k == pytest.approx(cp, rel=1e-12)
        assert result.a.cp_at_k_cards != result.b.cp_at_k_cards  # the two queues differ
        assert 0 < result.a.cp_at_k < 1 and 0 < result.b.cp_at_k < 1
        difference = {d.metric: d for d in result.differences}["cp_at_k"]
        assert difference.difference == pytest.approx(result.b.cp_at_k - result.a.cp_at_k)
        assert difference.low <= difference.difference <= difference.high


def test_cp_at_k_is_null_without_a_capacity(engine):
    result = engine.compare(DEFAULT_POLICY, engine.draft_policy(REVIEW_ALL), run=1)
    assert result.b.cp_at_k is None and result.b.cp_at_k_cards is None
    assert "cp_at_k" not in {d.metric for d in result.differences}
    zero = engine.compare(
        DEFAULT_POLICY, DEFAULT_POLICY, run=1, costs=CostModel(review_capacity=0), replicates=50
    )
    assert zero.a.cp_at_k is None and "cp_at_k" not in {d.metric for d in zero.differences}


def test_a_condition_both_policies_test_is_evaluated_once_and_decides_as_before(engine):
    """Shared conditions become one bit (one within A tested by a block and a review rule, two
    shared with B); each side still decides as its own backtest does."""
    a_rules = [
        {"name": "big", "action": "block", "when": ":amount: > 300"},
        {"name": "big again", "action": "review", "when": ":amount: > 300"},
        {"name": "tiny", "action": "allow", "when": ":amount: < 5"},
    ]
    b_rules = [
        {"name": "look at big", "action": "review", "when": ":amount: > 300"},
        {"name": "fresh device", "action": "block", "when": ":is_new_device:"},
        {"name": "small", "action": "allow", "when": ":amount: < 5"},
    ]
    a, b = engine.draft_policy(a_rules), engine.draft_policy(b_rules)
    shared = shared_rules(*sides(engine.policies.decider(a), engine.policies.decider(b),
                                 engine.lists))  # fmt: skip
    assert shared.conditions == 3
    assert list(shared.a_actions) == [Action.BLOCK, Action.ALLOW, Action.NONE]
    assert list(shared.b_actions) == [Action.REVIEW, Action.ALLOW, Action.BLOCK]
    result = engine.compare(a, b, run=1)
    for policy, side in ((a, result.a), (b, result.b)):
        alone = engine.backtest(policy, run=1)
        assert side.approved == alone.candidate.approved
        assert side.fraud_caught == alone.candidate.fraud_caught
        assert side.false_declines == alone.candidate.false_declines
        assert side.review_marked == sum(r.decided for r in alone.rules if r.action == "review")
    assert result.a.review_marked == 0 < result.b.review_marked


def test_a_run_summary_stored_before_the_priced_amounts_still_reads(tmp_path):
    """Run summaries stored by earlier versions lack the amounts costs gained since (and the
    friendly-fraud component): their runs still list, with those amounts unknown (null)."""
    import json

    with Engine.open(tmp_path / "old.duckdb", seed=5, card_key="", backup_interval_s=0) as eng:
        run = eng.simulate({"rows": 2_000, "days": 2, "seed": 3})
        (text,) = eng.store.query("SELECT summary FROM runs WHERE id = ?", [run.id])[0]
        summary = json.loads(text)
        for key in ("false_decline_amount", "abandoned_amount", "friendly_fraud",
                    "friendly_fraud_loss"):  # fmt: skip
            del summary["costs"][key]
        with eng.store.write() as tx:
            tx.execute("UPDATE runs SET summary = ? WHERE id = ?", [json.dumps(summary), run.id])
        (listed,) = [r for r in eng.list_runs() if r.id == run.id]
    costs = listed.summary["costs"]
    assert costs.false_decline_amount is None and costs.abandoned_amount is None
    assert costs.total == Decimal(str(summary["costs"]["total"]))
