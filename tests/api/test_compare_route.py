"""POST /compare: any two policies (versions or drafts) in money with intervals, and 400s that
name the field for bad input."""

from __future__ import annotations

import pytest
from synthetic_rows import insert_rows, random_columns

RULES = [{"name": "Big", "action": "block", "when": ":amount: > 300"}]


@pytest.fixture
def history(engine):
    insert_rows(engine.store, random_columns(3000, seed=21), run_id=1)
    return engine


def test_compare_two_versions_and_a_draft(client, history, admin_headers):
    stored = client.post("/policies", json={"rules": RULES, "note": "big"})
    assert stored.status_code == 201, stored.text
    version = stored.json()["version"]
    response = client.post(
        "/compare", json={"a": 1, "b": version, "costs": {"currency": "EUR", "review_cost": 1}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["a_policy"]["version"] == 1 and body["b_policy"]["version"] == version
    assert body["a"]["rows"] == body["b"]["rows"] == 3000
    assert body["b"]["costs"]["currency"] == "EUR"
    assert isinstance(body["b"]["costs"]["total"], float)  # money is a JSON number
    assert body["interval"]["method"].startswith("paired day-block bootstrap")
    metrics = {d["metric"]: d for d in body["differences"]}
    assert {"total_cost", "approval_rate", "recall", "fraud_caught"} <= set(metrics)
    rate = metrics["approval_rate"]
    assert rate["low"] <= rate["difference"] <= rate["high"] < 0  # blocking more approves less
    draft = client.post("/compare", json={"a": 1, "b": {"rules": RULES}}).json()
    assert draft["b"] == body["b"] | {"costs": draft["b"]["costs"]}
    assert draft["b_policy"]["version"] == 0  # a draft is not stored (version 0)


def test_knob_drafts_and_labels_as_of(client, history):
    body = client.post(
        "/compare",
        json={"a": {}, "b": {"score_threshold": 0.5}, "labels_as_of": "2026-01-03T00:00:00Z"},
    ).json()
    assert body["filters"]["labels_as_of"] == "2026-01-03T00:00:00Z"
    later = client.post("/compare", json={"a": {}, "b": {"score_threshold": 0.5}}).json()
    assert body["a"]["fraud"] < later["a"]["fraud"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"a": 99, "b": 1}, "a"),
        ({"a": 1, "b": True}, "b"),
        ({"a": 1, "b": "1"}, "b"),
        ({"a": 1.5, "b": 1}, "a"),
        ({"b": 1}, "a"),
        ({"a": 1, "b": {"rules": RULES, "colour": "red"}}, "b.colour"),
        ({"a": 1, "b": {"amount_threshold": -5}}, "b.amount_threshold"),
        ({"a": 1, "b": 1, "costs": {"currency": "XAF"}}, "costs.currency"),
        ({"a": 1, "b": 1, "costs": {"chargeback_fee": "15"}}, "costs.chargeback_fee"),
        ({"a": 1, "b": 1, "costs": {"false_decline_margin": 2}}, "costs.false_decline_margin"),
        ({"a": 1, "b": 1, "replicates": 5}, "replicates"),
        ({"a": 1, "b": 1, "seed": False}, "seed"),
        ({"a": 1, "b": 1, "labels_as_of": "2026-01-03T00:00:00"}, "labels_as_of"),
        (
            {
                "a": 1,
                "b": 1,
                "labels_as_of": "2026-01-03T00:00:00Z",
                "filters": {"labels_as_of": "2026-01-04T00:00:00Z"},
            },
            "labels_as_of",
        ),
        ({"a": 1, "b": 1, "filters": {"run": 42}}, "filters.run"),
    ],
)
def test_bad_input_answers_400_naming_the_field(client, history, body, field):
    response = client.post("/compare", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == field


def test_a_bad_rule_names_its_line_and_column(client, history):
    rules = [{"name": "typo", "action": "block", "when": ":amout: > 5"}]
    response = client.post("/compare", json={"a": 1, "b": {"rules": rules}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["field"], error["line"], error["column"]) == ("b.rules[0].when", 1, 1)
    assert ":amount:" in error["message"]


def test_a_whole_number_written_with_a_point_names_a_version(client, history):
    """JSON Schema's integer: 1.0 is the integer 1."""
    response = client.post("/compare", content='{"a": 1.0, "b": 1}',
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["a_policy"]["version"] == 1


def test_maturity_days_answer_the_comparison_as_it_would_have_looked(client, history):
    body = client.post("/compare", json={"a": 1, "b": {"rules": RULES}, "maturity_days": [30, 7]})
    assert body.status_code == 200, body.text
    points = body.json()["maturity"]
    assert [p["days_after"] for p in points] == [7, 30]
    assert points[0]["fraud_known"] <= points[1]["fraud_known"]
    assert client.post("/compare", json={"a": 1, "b": 1}).json()["maturity"] == []
    bad = client.post("/compare", json={"a": 1, "b": 1, "maturity_days": [-1]})
    assert bad.status_code == 400 and bad.json()["error"]["field"].startswith("maturity_days")
