"""The documented contract, checked against what the README's API reference says (each test quotes
the sentence it checks): decision_reason and risk_flag as the original documents them, audit
entries naming their transaction, money as JSON numbers, backtest filters that name the field,
and GET /stats over the dashboard's selection with measured and modelled latency kept apart."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import TEST_CARDS, payment_body

from api.app import create_app
from engine.service import Engine
from engine.simulation.params import SimulationParams

HIGH = "High amount flagged by risk heuristic."
RANDOM = "Randomized decline to simulate fraud checks."


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Any:
    """One engine with a small simulation run and live payments: ordinary amounts (approved and
    randomly declined) and high amounts (flagged, declined or approved by the draw)."""
    path = tmp_path_factory.mktemp("contract") / "c.duckdb"
    engine = Engine.open(path, seed=11, card_key="", backup_interval_s=0)
    run = engine.simulate(SimulationParams(rows=4000, seed=5, days=3))
    client = TestClient(create_app(engine))
    client.__enter__()
    answers = [
        client.post("/payment", json=payment_body(card=TEST_CARDS[i % 5], amount=amount)).json()
        for i, amount in enumerate(["42.50"] * 60 + ["750.00"] * 60)
    ]
    _wait_for_latency_write_back(engine)
    yield engine, client, run, answers
    client.__exit__(None, None, None)
    engine.close()


def _wait_for_latency_write_back(engine: Engine) -> None:
    """Live latencies reach their rows once traffic pauses (README: within 50 ms)."""
    for _ in range(200):
        pending = engine.store.query("SELECT count(*) FROM transactions WHERE latency_ms IS NULL")
        if pending == [(0,)]:
            return
        time.sleep(0.05)
    raise AssertionError("live latencies were not written back")


def _views(client: TestClient, answer: dict) -> list[dict]:
    """The same decision as POST /payment answered it, GET /transaction, the audit decision."""
    tid = answer["transaction_id"]
    return [
        answer,
        client.get(f"/transaction/{tid}").json(),
        client.get(f"/audit/{tid}").json()[0]["decision"],
    ]


def test_decision_reason_is_null_for_approvals_and_the_decline_text_otherwise(world) -> None:
    """README: "`decision_reason` is `null` for an approved payment and the decline text for a
    declined one"; "`reason_code` always names the rule that decided"."""
    _, client, _, answers = world
    assert {a["status"] for a in answers} == {"Approved", "Declined"}
    for answer in answers:
        for view in _views(client, answer):
            if view["status"] == "Approved":
                assert view["decision_reason"] is None and view["reason_code"] == "APPROVED"
            else:
                assert view["decision_reason"] in {HIGH, RANDOM}
                assert view["reason_code"] in {"HIGH_AMOUNT", "RANDOM_DECLINE"}


def test_risk_flag_names_the_rule_that_flagged_whatever_the_draw_said(world) -> None:
    """README: "a payment of 750 reads "High amount flagged by risk heuristic." whether it was
    declined (30%) or approved (70%)"; "a randomized decline of an ordinary amount is not a flag
    (`null`)"; "`flagged_by_risk_rule` is the same fact as a boolean"."""
    _, client, _, answers = world
    for i, answer in enumerate(answers):
        expected = HIGH if i >= 60 else None
        for view in _views(client, answer):
            assert view["risk_flag"] == expected
            assert view["flagged_by_risk_rule"] is (expected is not None)
    statuses = {a["status"] for a in answers[60:]}
    assert statuses == {"Approved", "Declined"}  # flagged either way
    assert any(a["decision_reason"] == RANDOM for a in answers[:60])  # declined, not flagged


def test_an_idempotent_replay_answers_the_documented_fields_alike(world) -> None:
    """README: "the same key with the same body returns the first answer"."""
    _, client, _, _ = world
    body = payment_body(card=TEST_CARDS[5], amount="12.00")
    headers = {"Idempotency-Key": "contract-replay-1"}
    first = client.post("/payment", json=body, headers=headers)
    again = client.post("/payment", json=body, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    fields = ("status", "decision_reason", "reason_code", "risk_flag", "flagged_by_risk_rule")
    assert {k: again.json()[k] for k in fields} == {k: first.json()[k] for k in fields}
    if first.json()["status"] == "Approved":
        assert again.json()["decision_reason"] is None


def test_every_audit_entry_names_its_transaction(world) -> None:
    """README: "every entry names its `transaction_id`", live and simulated alike."""
    engine, client, run, answers = world
    simulated = engine.store.query(
        "SELECT id FROM transactions WHERE run_id = ? LIMIT 1", [run.id]
    )[0][0]
    for tid in (answers[0]["transaction_id"], str(simulated)):
        entries = client.get(f"/audit/{tid}").json()
        assert entries and all(entry["transaction_id"] == tid for entry in entries)


def test_money_is_a_json_number_everywhere(world) -> None:
    """README: "Money is a JSON number everywhere (`"amount": 150.75` ...)"."""
    _, client, run, answers = world
    tid = answers[60]["transaction_id"]
    backtest = client.post("/backtest", json={"filters": {"run": run.id}}).json()
    summary = client.get(f"/simulations/{run.id}").json()["summary"]
    amounts = {
        "transaction": client.get(f"/transaction/{tid}").json()["amount"],
        "audit": client.get(f"/audit/{tid}").json()[0]["request"]["amount"],
        "stats": client.get("/stats").json()["avg_amount"],
        "backtest fraud_loss": backtest["candidate"]["fraud_loss"],
        "backtest false_decline_amount": backtest["active"]["false_decline_amount"],
        **{f"run summary {key}": summary[key] for key in ("amount", "fraud_amount", "fraud_loss")},
    }
    for where, value in amounts.items():
        assert isinstance(value, int | float) and not isinstance(value, bool), where
        assert round(value, 2) == value, where  # at most two decimals
    assert amounts["transaction"] == amounts["audit"] == 750.0


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"run": 999}, "filters.run"),
        ({"channels": ["web"]}, "filters.channels"),
        ({"currencies": ["XYZ"]}, "filters.currencies"),
    ],
)
def test_backtest_filters_that_name_nothing_valid_are_400(world, filters, field) -> None:
    """README: "A run id that names no run, a channel that is not one of the five, or a currency
    that is not an ISO 4217 code answers **400** naming `filters.run`, `filters.channels` or
    `filters.currencies`"."""
    _, client, _, _ = world
    response = client.post("/backtest", json={"filters": filters})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == field


def test_backtest_valid_values_absent_from_the_data_select_no_rows(world) -> None:
    """README: "A valid channel or currency that the selected rows do not hold ... answers 200"."""
    _, client, run, _ = world
    response = client.post(
        "/backtest", json={"filters": {"run": run.id, "currencies": ["JPY"], "channels": ["moto"]}}
    )
    assert response.status_code == 200 and response.json()["candidate"]["rows"] == 0


def _selections(run_id: int, engine: Engine) -> list[dict[str, Any]]:
    first, last = engine.store.query(
        "SELECT min(created_at), max(created_at) FROM transactions WHERE run_id = ?", [run_id]
    )[0]
    middle = first + (last - first) / 2
    return [
        {},
        {"source": "live"},
        {"source": run_id},
        {"source": run_id, "since": first + timedelta(hours=6), "until": middle},
        {"since": first},  # every row, through the scan rather than the running totals
        {"source": "all", "until": middle},
    ]


def test_stats_and_the_dashboard_show_the_same_numbers_for_the_same_selection(world) -> None:
    """README: "`GET /stats` and the live dashboard show the same p50/p95/p99 for the same
    selection"."""
    engine, client, run, _ = world
    for selection in _selections(run.id, engine):
        params = {
            k: v.isoformat() + "Z" if hasattr(v, "isoformat") else v for k, v in selection.items()
        }
        stats = client.get("/stats", params=params).json()
        filters = {("run" if k == "source" else k): v for k, v in selection.items()}
        kpis = engine.dashboard(**filters).kpis
        assert stats["total"] == kpis.total > 0, selection
        assert stats["approved"] == kpis.approved, selection
        assert stats["avg_amount"] == float(kpis.avg_amount), selection
        assert stats["latency_kind"] == kpis.latency_kind, selection
        documented = (stats["p50_latency"], stats["p95_latency"], stats["p99_latency"])
        assert documented == (kpis.p50_latency, kpis.p95_latency, kpis.p99_latency), selection


def test_running_totals_and_a_scan_of_the_rows_agree(world) -> None:
    """README: a whole source is read from running totals, a time range "is aggregated over its
    rows in one query": a range holding every row gives the same answer."""
    engine, client, run, _ = world
    first = engine.store.query("SELECT min(created_at) FROM transactions")[0][0]
    for source in ("all", "live", run.id):
        whole = client.get("/stats", params={"source": source}).json()
        scanned = client.get(
            "/stats", params={"source": source, "since": first.isoformat() + "Z"}
        ).json()
        for doc in (whole, scanned):
            doc.pop("selection")
        assert whole == scanned, source


def test_stats_keep_measured_and_modelled_latency_apart(world) -> None:
    """README: "`latency_measured` and `latency_modelled` hold each kind's percentiles alone
    (`null` when the selection has none), and `latency_kind` says what the documented
    `p50_latency`/`p95_latency`/`p99_latency` ... describe"."""
    engine, client, run, _ = world
    live = client.get("/stats", params={"source": "live"}).json()
    simulated = client.get("/stats", params={"source": run.id}).json()
    everything = client.get("/stats").json()
    assert live["latency_kind"] == "measured" and live["latency_modelled"] is None
    assert simulated["latency_kind"] == "modelled" and simulated["latency_measured"] is None
    assert everything["latency_kind"] == "mixed"
    assert everything["latency_measured"] == live["latency_measured"]
    assert everything["latency_modelled"] == simulated["latency_modelled"]
    # every live payment so far (the fixture's and those earlier tests of this module posted)
    (payments,) = engine.store.query("SELECT count(*) FROM transactions WHERE run_id IS NULL")[0]
    assert live["latency_measured"]["count"] == payments >= 120
    for doc in (live, simulated):
        kind = doc["latency_measured"] or doc["latency_modelled"]
        assert (kind["p50"], kind["p95"], kind["p99"]) == (
            doc["p50_latency"],
            doc["p95_latency"],
            doc["p99_latency"],
        )


def test_stats_say_what_they_cover(world) -> None:
    """README: "`selection` echoes what the numbers cover and how many rows that is"."""
    _, client, run, _ = world
    body = client.get(
        "/stats", params={"source": run.id, "since": "2026-01-01T00:00:00+01:00"}
    ).json()
    assert body["selection"] == {
        "source": run.id,
        "since": "2025-12-31T23:00:00Z",
        "until": None,
        "rows": body["total"],
    }
    assert client.get("/stats").json()["selection"]["source"] == "all"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("colour=red", "colour"),
        ("source=sometimes", "source"),
        ("source=0", "source"),
        ("source=424242", "source"),  # a well-formed run id that names no run
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
        # valid RFC 3339 whose UTC time is outside years 1-9999 (was a 500)
        ("since=0001-01-01T00:00:00%2B01:00", "since"),
        ("until=9999-12-31T23:59:59-01:00", "until"),
    ],
)
def test_stats_refuse_unknown_parameters_and_bad_values_naming_them(world, query, field) -> None:
    """README: "An unknown parameter, a malformed value or a run id that names no run answers
    **400** naming the parameter"."""
    _, client, _, _ = world
    response = client.get(f"/stats?{query}")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field and error["type"] == "validation_error"
    assert field in error["message"]
