"""POST /backtest: candidate rules or knobs over the active policy, per-rule figures and overlap,
filters, and 400s for bad input."""

from __future__ import annotations

from decimal import Decimal

import pytest
from synthetic_rows import insert_rows, random_columns

from engine.costs import CostModel


@pytest.fixture
def history(engine):
    insert_rows(engine.store, random_columns(3000, seed=21), run_id=1)
    insert_rows(engine.store, random_columns(1000, seed=22), run_id=2, first_index=10_000)
    return engine


def test_backtest_compares_candidate_with_active(client, history):
    response = client.post(
        "/backtest", json={"candidate": {"score_threshold": 0.55, "velocity_limit": 8}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["candidate"]["rows"] == body["active"]["rows"] == 4000
    assert body["candidate"]["fraud_caught"] > body["active"]["fraud_caught"]
    assert body["candidate_policy"]["knobs"]["score_threshold"] == 0.55
    # knobs left out keep the active policy's values
    assert body["candidate_policy"]["knobs"]["base_decline_prob"] == 0.10
    assert body["active_policy"]["knobs"]["score_threshold"] is None
    assert [r["name"] for r in body["rules"]] == [
        r["name"] for r in body["candidate_policy"]["rules"]
    ]
    assert len(body["curve"]) > 100
    assert isinstance(body["candidate"]["fraud_loss"], float)  # money is a JSON number
    assert {s["scenario"] for s in body["scenarios"]} <= {
        "stolen_card",
        "card_testing",
        "account_takeover",
        "compromised_merchant",
    }
    # the engine call gives the same numbers
    from engine.policy import Policy

    direct = history.backtest(Policy.from_knobs(score_threshold=0.55, velocity_limit=8))
    assert body["candidate"]["approved"] == direct.candidate.approved


def test_empty_candidate_equals_active_and_filters_select_a_run(client, history):
    body = client.post("/backtest", json={"filters": {"run": 2}}).json()
    assert body["candidate"] == body["active"]
    assert body["candidate"]["rows"] == 1000
    live = client.post("/backtest", json={"filters": {"run": "live"}}).json()
    assert live["candidate"]["rows"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"candidate": {"score_threshold": 1.5}}, "candidate.score_threshold"),
        ({"candidate": {"base_decline_prob": "lots"}}, "candidate.base_decline_prob"),
        ({"candidate": {"no_such_knob": 1}}, "candidate.no_such_knob"),
        ({"candidate": {"amount_threshold": -5}}, "candidate.amount_threshold"),
        ({"filters": {"run": "sometimes"}}, "filters.run"),
        (
            {"filters": {"since": "2026-02-01T00:00:00", "until": "2026-01-01T00:00:00"}},
            "filters",
        ),
        ({"unknown": 1}, "unknown"),
        # date-times with no UTC equivalent in years 1-9999 (were 500s) and a span that
        # overflows DuckDB's timestamps when subtracted (was a 503)
        ({"filters": {"since": "0001-01-01T00:00:00+01:00"}}, "filters.since"),
        ({"filters": {"until": "9999-12-31T23:59:59-01:00"}}, "filters.until"),
        ({"filters": {"latest": "P999999999D"}}, "filters.latest"),
        ({"filters": {"latest": "P3652501D"}}, "filters.latest"),
        ({"costs": {"currency": "XAF"}}, "costs.currency"),
        ({"costs": {"chargeback_fee": "15"}}, "costs.chargeback_fee"),
        ({"costs": {"false_decline_margin": 2}}, "costs.false_decline_margin"),
        ({"costs": {"review_capacity": 1.5}}, "costs.review_capacity"),
        ({"costs": {"review_cost": 0.001}}, "costs.review_cost"),
        ({"costs": {"surcharge": 1}}, "costs.surcharge"),
        ({"costs": []}, "costs"),
    ],
)
def test_bad_input_answers_400_naming_the_field(client, history, body, field):
    response = client.post("/backtest", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert error["field"].startswith(field)


def test_the_backtest_is_priced_with_the_cost_model_given(client, history):
    costs = {"currency": "EUR", "chargeback_fee": 20, "review_cost": 2, "review_capacity": 10}
    response = client.post(
        "/backtest",
        json={
            "candidate": {"rules": [{"name": "Big", "action": "review", "when": ":amount: > 200"}]},
            "costs": costs,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cost_model"] == CostModel(**costs).model_dump(mode="json")
    candidate, active = body["candidate"]["costs"], body["active"]["costs"]
    for priced in (candidate, active):
        assert priced["currency"] == "EUR"
        assert isinstance(priced["total"], float)  # money is a JSON number
        assert priced["chargeback_fees"] == 20 * priced["approved_fraud"]
    days = history.store.query("SELECT count(DISTINCT CAST(created_at AS DATE)) FROM transactions")
    assert 0 < candidate["reviewed"] <= 10 * days[0][0]  # the team's daily capacity
    assert candidate["review_cost"] == 2 * candidate["reviewed"]
    assert active["reviewed"] == 0  # the default policy has no review rule
    exact = lambda value: Decimal(str(value))  # noqa: E731
    for name, difference in body["cost_difference"].items():
        if name != "currency":
            assert exact(difference) == exact(candidate[name]) - exact(active[name]), name
    assert candidate["total"] != active["total"]


def test_without_costs_the_default_model_prices_the_backtest(client, history):
    body = client.post("/backtest", json={"filters": {"run": 2}}).json()
    assert body["cost_model"] == CostModel().model_dump(mode="json")
    assert body["candidate"]["costs"] == body["active"]["costs"]
    assert body["candidate"]["costs"]["currency"] == "GBP"
    assert body["candidate"]["costs"]["total"] > 0
    assert body["cost_difference"]["total"] == 0


def test_a_backtest_persists_nothing(client, history):
    """Refused or answered, a backtest writes no payment, audit entry, policy or run."""
    tables = ("transactions", "audit_log", "policies", "policy_activations", "runs")
    count = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)
    before = history.store.query(count)
    assert client.post("/backtest", json={"costs": {"currency": "XAF"}}).status_code == 400
    assert client.post("/backtest", json={"costs": {"review_cost": 2}}).status_code == 200
    assert history.store.query(count) == before


@pytest.mark.parametrize(
    "literal", ["500.000000000000000001", "0.009999999999999999999", "1000000.000000000000001"]
)
def test_amount_threshold_is_read_exactly(client, history, literal):
    """A JSON number with more than two decimals, or just over the maximum, is not rounded by a
    binary float into an accepted threshold."""
    body = '{"candidate": {"amount_threshold": ' + literal + "}}"
    response = client.post("/backtest", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "candidate.amount_threshold"


@pytest.mark.parametrize("text", ["1_000", "١٢٠٠"])
def test_amount_threshold_text_is_plain_ascii(text):
    from pydantic import ValidationError

    from engine.policy import Policy

    with pytest.raises(ValidationError):
        Policy.from_knobs(amount_threshold=text)


@pytest.mark.parametrize(
    "filters",
    [
        {"since": "0001-01-01T00:00:00-01:00", "until": "9999-12-31T23:59:59+01:00"},
        {"latest": "P3652500D"},  # the largest span: still inside DuckDB's timestamp range
    ],
)
def test_extreme_but_valid_filters_select_every_row(client, history, filters):
    response = client.post("/backtest", json={"filters": filters})
    assert response.status_code == 200, response.text
    assert response.json()["candidate"]["rows"] == 4000


RULES = [
    {"name": "fast", "action": "block", "when": ":payments_per_card_1h: >= 6"},
    {"name": "risky", "action": "review", "when": ":risk_score: >= 0.6"},
    {"name": "tiny", "action": "allow", "when": ":amount: < 2"},
]


def test_a_rules_candidate_reports_each_rule_and_their_overlap(client, history):
    """Per rule: matched, decided, fraud decided, unique fraud, false positives, amount (GBP);
    per pair of block/review rules: the fraud both match. Checked against the engine's own
    decisions of every stored row (the numpy decider over the same columns)."""
    from knob_reference import decide_as_engine
    from support import read_numpy

    from engine.policy import Policy, RuleSpec

    response = client.post("/backtest", json={"candidate": {"rules": RULES}})
    assert response.status_code == 200, response.text
    body = response.json()
    rows = read_numpy(
        history.store,
        "SELECT CAST(amount * 100 AS BIGINT) AS cents, spending_velocity, device_trust_score, "
        "ip_risk_score, velocity_count, draw, is_fraud, CAST(amount_in_gbp * 100 AS BIGINT) AS p "
        "FROM transactions ORDER BY id",
    )
    policy = Policy(rules=tuple(RuleSpec(**r) for r in RULES))
    d = decide_as_engine(
        policy,
        rows["cents"],
        rows["spending_velocity"],
        rows["device_trust_score"],
        rows["ip_risk_score"],
        rows["velocity_count"],
        rows["draw"],
    )
    from engine.decision import Decider

    decider = Decider(policy)
    score = d.score
    matches = decider.rules.matches(
        {
            "payments_per_card_1h": rows["velocity_count"].astype("int64"),
            "risk_score": score,
            "amount": rows["cents"],
        }
    )
    fraud = rows["is_fraud"].astype(bool)
    figures = {f["name"]: f for f in body["rules"]}
    for i, rule in enumerate(RULES):
        decided = d.rule_index == i
        f = figures[rule["name"]]
        assert f["matched"] == int(matches[i].sum())
        assert f["decided"] == int(decided.sum())
        assert f["fraud_decided"] == int((decided & fraud).sum())
        catching = matches[:2].sum(axis=0)
        unique = matches[i] & (catching == 1) & fraud if i < 2 else matches[i] & False
        assert f["unique_fraud"] == int(unique.sum())
        assert f["false_positives"] == (int((decided & ~fraud).sum()) if i < 2 else 0)
        assert f["amount_decided"] == pytest.approx(int(rows["p"][decided].sum()) / 100)
    assert body["overlap"] == [
        {"a": "fast", "b": "risky", "fraud_both": int((matches[0] & matches[1] & fraud).sum())}
    ]
    assert body["candidate"]["approved"] == int(d.approved.sum())
    assert body["candidate"]["declines_by_reason"]["BLOCKED_BY_RULE"] == int((~d.approved).sum())


@pytest.mark.parametrize(
    ("rules", "field", "line", "column", "message"),
    [
        ([{"name": "a", "action": "block", "when": ":amout: > 5"}], "candidate.rules[0].when",
         1, 1, "did you mean :amount:"),
        ([RULES[0], {"name": "b", "action": "block", "when": ":channel: > 300"}],
         "candidate.rules[1].when", 1, 13, "cannot compare :channel: (text) with 300 (number)"),
        ([{"name": "c", "action": "block", "when": ":merchant: in @vip"}],
         "candidate.rules[0].when", 1, 15, "unknown list @vip"),
        ([{"name": "d", "action": "stop", "when": "true"}], "candidate.rules[0].action",
         None, None, "allow, challenge, block or review"),
    ],
)  # fmt: skip
def test_bad_candidate_rules_answer_400_with_field_line_and_column(
    client, history, rules, field, line, column, message
):
    response = client.post("/backtest", json={"candidate": {"rules": rules}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["field"], error.get("line"), error.get("column")) == (field, line, column)
    assert message in error["message"]


def test_a_rules_candidate_takes_score_weights_and_refuses_other_fields(client, history):
    rules = [{"name": "s", "action": "block", "when": ":risk_score: >= 0.5"}]
    light = client.post("/backtest", json={"candidate": {"rules": rules}}).json()
    heavy = client.post(
        "/backtest",
        json={"candidate": {"rules": rules, "score_weights": {"device": 3, "ip": 3}}},
    ).json()
    assert heavy["candidate"]["declined"] > light["candidate"]["declined"]
    bad = client.post(
        "/backtest", json={"candidate": {"rules": rules, "score_weights": {"ip": -1}}}
    )
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "candidate.score_weights.ip"
    mixed = client.post("/backtest", json={"candidate": {"rules": rules, "velocity_limit": 3}})
    assert mixed.status_code == 400
    assert mixed.json()["error"]["field"] == "candidate.velocity_limit"
