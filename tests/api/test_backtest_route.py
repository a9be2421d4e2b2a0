"""POST /backtest: candidate knobs over the active policy, filters, and 400s for bad input."""

from __future__ import annotations

import pytest
from synthetic_rows import insert_rows, random_columns


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
    assert body["candidate_policy"]["score_threshold"] == 0.55
    # knobs left out keep the active policy's values
    assert body["candidate_policy"]["base_decline_prob"] == 0.10
    assert body["active_policy"]["score_threshold"] is None
    assert len(body["curve"]) > 100
    assert isinstance(body["candidate"]["fraud_loss"], float)  # money is a JSON number
    assert {s["scenario"] for s in body["scenarios"]} <= {
        "stolen_card",
        "card_testing",
        "account_takeover",
        "compromised_merchant",
    }
    # the engine call gives the same numbers
    direct = history.backtest(
        history.active_policy().model_copy(update={"score_threshold": 0.55, "velocity_limit": 8})
    )
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
    ],
)
def test_bad_input_answers_400_naming_the_field(client, history, body, field):
    response = client.post("/backtest", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert error["field"].startswith(field)


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
        Policy(amount_threshold=text)


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
