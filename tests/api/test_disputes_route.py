"""POST /transaction/{id}/dispute: 201 with the stored dispute, 200 on a replay, 404 for unknown
ids, 400 naming the field (nothing stored), 401/403 without the admin token; and POST /backtest
with ``labels_as_of``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from support import payment_body

from api.app import create_app
from engine.service import Engine


@pytest.fixture
def paid(client) -> dict:
    response = client.post("/payment", json=payment_body())
    assert response.status_code == 201
    return response.json()


def path(paid: dict) -> str:
    return f"/transaction/{paid['transaction_id']}/dispute"


def disputes(engine) -> int:
    return engine.store.query("SELECT count(*) FROM disputes")[0][0]


def test_a_dispute_answers_201_then_200_on_a_replay(client, engine, paid, admin_headers):
    body = {"reason": "fraud", "reported_at": paid["created_at"]}
    first = client.post(path(paid), json=body, headers=admin_headers)
    assert first.status_code == 201, first.text
    assert first.json()["transaction_id"] == paid["transaction_id"]
    assert first.json()["reason"] == "fraud"
    assert first.json()["reported_at"] == paid["created_at"]
    replay = client.post(path(paid), json=body, headers=admin_headers)
    assert replay.status_code == 200 and replay.json() == first.json()
    # another reason for the same payment is a second dispute
    other = client.post(path(paid), json={"reason": "not_received"}, headers=admin_headers)
    assert other.status_code == 201 and other.json()["reason"] == "not_received"
    assert disputes(engine) == 2
    trail = client.get(f"/audit/{paid['transaction_id']}").json()
    assert [e["event"] for e in trail] == [
        "payment.decided", "transaction.disputed", "transaction.disputed"
    ]  # fmt: skip
    assert trail[1]["dispute"] == first.json()
    assert trail[1]["transaction_id"] == paid["transaction_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": "chargeback"}, "reason"),
        ({"reason": "fraud", "amount": 5}, "amount"),
        ({"reason": "fraud", "reported_at": 1767225600}, "reported_at"),
        ({"reason": "fraud", "reported_at": "2026-12-01T10:00:00"}, "reported_at"),
        ({"reason": "fraud", "reported_at": "yesterday"}, "reported_at"),
        ({"reason": "fraud", "reported_at": "0001-01-01T00:00:00+01:00"}, "reported_at"),
        ({"reason": "fraud", "reported_at": "2000-01-01T00:00:00Z"}, "reported_at"),  # before it
        ("future", "reported_at"),
    ],
)
def test_bad_bodies_answer_400_naming_the_field(client, engine, paid, admin_headers, body, field):
    if body == "future":
        later = datetime.now(UTC) + timedelta(days=1)
        body = {"reason": "fraud", "reported_at": later.isoformat().replace("+00:00", "Z")}
    response = client.post(path(paid), json=body, headers=admin_headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error" and error["field"] == field
    assert disputes(engine) == 0
    assert len(client.get(f"/audit/{paid['transaction_id']}").json()) == 1


@pytest.mark.parametrize(
    "transaction_id", ["01a220b0-4760-7000-8000-000000000000", "4111111111111111", "x"]
)
def test_unknown_ids_answer_404(client, engine, admin_headers, transaction_id):
    response = client.post(
        f"/transaction/{transaction_id}/dispute", json={"reason": "fraud"}, headers=admin_headers
    )
    assert response.status_code == 404
    assert "4111111111111111" not in response.text
    assert disputes(engine) == 0


def test_disputes_need_the_admin_token(client, engine, paid):
    assert client.post(path(paid), json={"reason": "fraud"}).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert client.post(path(paid), json={"reason": "fraud"}, headers=wrong).status_code == 401
    assert disputes(engine) == 0


def test_disputes_are_refused_when_no_admin_token_is_configured(tmp_path):
    engine = Engine.open(tmp_path / "open.duckdb", card_key="k", backup_interval_s=0)
    with engine, TestClient(create_app(engine)) as client:
        paid = client.post("/payment", json=payment_body()).json()
        response = client.post(path(paid), json={"reason": "fraud"})
        assert response.status_code == 403
        assert response.json()["error"]["type"] == "forbidden"
        assert disputes(engine) == 0


def test_a_disputed_live_payment_is_fraud_in_a_backtest_from_its_report_on(
    client, paid, admin_headers
):
    reported = datetime.now(UTC) - timedelta(microseconds=1)
    stamp = reported.isoformat().replace("+00:00", "Z")
    response = client.post(
        path(paid), json={"reason": "friendly_fraud", "reported_at": stamp}, headers=admin_headers
    )
    assert response.status_code == 201, response.text

    def fraud(labels_as_of: str | None) -> int:
        filters = {"run": "live"} | ({"labels_as_of": labels_as_of} if labels_as_of else {})
        answer = client.post("/backtest", json={"candidate": {}, "filters": filters})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["filters"]["labels_as_of"] is None) == (labels_as_of is None)
        return answer.json()["active"]["fraud"]

    before = (reported - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    assert (fraud(None), fraud(stamp), fraud(before)) == (1, 1, 0)


@pytest.mark.parametrize("value", [5, "soon", "0001-01-01T00:00:00+01:00"])
def test_backtest_refuses_a_bad_labels_as_of(client, value):
    response = client.post("/backtest", json={"filters": {"labels_as_of": value}})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "filters.labels_as_of"
