"""Every documented endpoint through FastAPI's TestClient over a real engine and DuckDB file."""

from __future__ import annotations

import uuid

import pytest
from support import ADMIN_TOKEN, README_PAYMENT, TEST_CARDS, payment_body

PAYMENT_KEYS = {"transaction_id", "status", "decision_reason", "score", "latency_ms", "features"}
FEATURE_KEYS = {"spending_velocity", "device_trust_score", "ip_risk_score"}
TRANSACTION_KEYS = {
    "id",
    "card_last4",
    "amount",
    "currency",
    "merchant",
    "channel",
    "device_id",
    "status",
    "risk_flag",
    "created_at",
}
STATS_KEYS = {"total", "approved", "declined", "approval_rate", "avg_amount", "p95_latency"}
REASONS = {
    None,  # approved
    "High amount flagged by risk heuristic.",
    "Randomized decline to simulate fraud checks.",
}


def _assert_envelope(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["message"], str) and error["message"]
    assert "field" in error
    if field is not None:
        assert error["field"] == field
    return error


def test_readme_example_payment_is_created(client) -> None:
    response = client.post("/payment", json=README_PAYMENT)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= PAYMENT_KEYS
    assert set(body["features"]) == FEATURE_KEYS
    assert body["status"] in {"Approved", "Declined"}
    assert body["decision_reason"] in REASONS
    assert 0.0 <= body["score"] <= 1.0
    assert body["latency_ms"] > 0
    assert all(0.0 <= v <= 1.0 for v in body["features"].values())
    uuid.UUID(body["transaction_id"])
    assert README_PAYMENT["card_number"] not in response.text


def test_payment_defaults_currency_and_channel(client) -> None:
    body = payment_body()
    del body["currency"], body["channel"], body["device_id"]
    response = client.post("/payment", json=body)
    assert response.status_code == 201, response.text
    stored = client.get(f"/transaction/{response.json()['transaction_id']}").json()
    assert (stored["currency"], stored["channel"], stored["device_id"]) == (
        "GBP",
        "ecommerce",
        None,
    )


def test_amount_is_exact_and_lowercase_currency_is_normalized(client) -> None:
    created = client.post("/payment", json=payment_body(amount="0.10", currency="eur")).json()
    stored = client.get(f"/transaction/{created['transaction_id']}").json()
    assert stored["amount"] == 0.1 and stored["currency"] == "EUR"
    top = client.post("/payment", json=payment_body(amount=1_000_000)).json()
    assert client.get(f"/transaction/{top['transaction_id']}").json()["amount"] == 1_000_000


def test_get_transaction_returns_the_documented_keys_with_the_card_masked(client) -> None:
    created = client.post("/payment", json=README_PAYMENT).json()
    response = client.get(f"/transaction/{created['transaction_id']}")
    assert response.status_code == 200
    stored = response.json()
    assert set(stored) >= TRANSACTION_KEYS
    assert stored["id"] == created["transaction_id"]
    assert stored["card_last4"] == "7890"
    assert stored["amount"] == 150.75
    assert (stored["currency"], stored["merchant"], stored["channel"]) == (
        "GBP",
        "Amazon",
        "ecommerce",
    )
    assert stored["device_id"] == "ios-demo-device"
    assert stored["status"] == created["status"]
    assert stored["risk_flag"] is None  # 150.75 is not a high amount: no risk rule flagged it
    assert stored["flagged_by_risk_rule"] is False
    assert stored.get("card_masked") == "400000******7890"
    assert README_PAYMENT["card_number"] not in response.text


@pytest.mark.parametrize(
    "tid",
    [
        pytest.param(str(uuid.uuid4()), id="unknown-uuid"),  # xdist workers must collect one name
        "not-a-uuid",
        "1234",
        "x" * 300,
        "%00",
        "'; DROP TABLE transactions; --",
    ],
)
def test_unknown_or_malformed_transaction_id_is_404(client, tid) -> None:
    _assert_envelope(client.get(f"/transaction/{tid}"), 404)
    _assert_envelope(client.get(f"/audit/{tid}"), 404)


def test_audit_trail_of_a_payment(client, engine) -> None:
    created = client.post("/payment", json=README_PAYMENT).json()
    response = client.get(f"/audit/{created['transaction_id']}")
    assert response.status_code == 200
    entries = response.json()
    assert len(entries) == 1
    entry = entries[0]
    assert entry["event"] == "payment.decided"
    assert entry["policy_version"] == engine.active_policy().version
    assert entry["request"]["card"] == "400000******7890"
    assert entry["request"]["amount"] == 150.75
    assert entry["transaction_id"] == created["transaction_id"]
    assert entry["decision"]["status"] == created["status"]
    assert 0.0 <= entry["decision"]["draw"] < 1.0
    assert entry["features"] == created["features"]
    assert entry["latency_ms"] == created["latency_ms"]
    assert README_PAYMENT["card_number"] not in response.text


AMOUNTS = ["10.00", "20.00", "30.00", "40.00", "50.00", "60.00"]


def test_stats_keys_and_values(client) -> None:
    empty = client.get("/stats")
    assert empty.status_code == 200
    assert set(empty.json()) >= STATS_KEYS
    assert empty.json()["total"] == 0 and empty.json()["approval_rate"] == 0
    statuses = [
        client.post("/payment", json=payment_body(card, amount)).json()["status"]
        for card, amount in zip(TEST_CARDS, AMOUNTS, strict=True)
    ]
    stats = client.get("/stats").json()
    assert {"p50_latency", "p99_latency"} <= set(stats)
    assert stats["total"] == 6
    assert stats["approved"] == statuses.count("Approved")
    assert stats["approved"] + stats["declined"] == stats["total"]
    assert stats["approval_rate"] == round(stats["approved"] / 6, 4)
    assert stats["avg_amount"] == 35.0
    assert stats["p95_latency"] > 0


def test_admin_reset_is_denied_without_a_configured_token(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from engine.service import Engine

    eng = Engine.open(tmp_path / "noadmin.duckdb", seed=1, admin_token="", card_key="")
    with eng, TestClient(create_app(eng)) as c:
        c.post("/payment", json=payment_body())
        error = _assert_envelope(
            c.delete("/admin/reset", headers={"Authorization": "Bearer anything"}), 403
        )
        assert "PTSIM_ADMIN_TOKEN" in error["message"]
        assert c.get("/stats").json()["total"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    ],
)
def test_admin_reset_with_a_missing_or_wrong_token_is_401(client, headers) -> None:
    client.post("/payment", json=payment_body())
    response = client.delete("/admin/reset", headers=headers)
    assert response.status_code in {401, 403}
    if headers.get("Authorization", "").startswith("Bearer"):
        assert response.status_code == 401
    _assert_envelope(response, response.status_code)
    assert ADMIN_TOKEN not in response.text
    assert client.get("/stats").json()["total"] == 1


def test_admin_reset_with_the_token_zeroes_everything(client, admin_headers) -> None:
    ids = [client.post("/payment", json=payment_body()).json()["transaction_id"] for _ in range(5)]
    response = client.delete("/admin/reset", headers=admin_headers)
    assert response.status_code == 200
    zeroed = response.json()
    assert set(zeroed) >= STATS_KEYS
    assert (zeroed["total"], zeroed["approved"], zeroed["declined"]) == (0, 0, 0)
    assert client.get("/stats").json()["total"] == 0
    assert client.get(f"/transaction/{ids[0]}").status_code == 404
    assert client.get(f"/audit/{ids[0]}").status_code == 404


def test_health(client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "reachable"


def test_landing_page_and_docs(client) -> None:
    landing = client.get("/")
    assert landing.status_code == 200
    assert landing.headers["content-type"].startswith("text/html")
    assert "/docs" in landing.text
    for path in ("/docs", "/redoc"):
        response = client.get(path)
        assert response.status_code == 200 and "html" in response.headers["content-type"]
    assert client.get("/openapi.json").status_code == 200


def test_openapi_documents_400_not_422(client) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
    post = schema["paths"]["/payment"]["post"]
    assert "400" in post["responses"] and "201" in post["responses"]
    ref = post["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ErrorResponse")
    request_schema = schema["components"]["schemas"]["PaymentRequest"]
    assert request_schema.get("additionalProperties") is False
    assert set(request_schema["required"]) == {"card_number", "amount", "merchant"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_unknown_path_and_wrong_method_use_the_envelope(client) -> None:
    _assert_envelope(client.get("/no-such-endpoint"), 404)
    _assert_envelope(client.get("/payment"), 405)


def test_features_come_from_history_not_from_the_card_digits(client) -> None:
    first = [client.post("/payment", json=README_PAYMENT).json()["features"] for _ in range(4)]
    assert [f["spending_velocity"] for f in first] == [0.0, 0.1, 0.2, 0.3]
    # seconds of history on a device earn no trust: only approved payments a day old do
    assert [f["device_trust_score"] for f in first] == [0.3, 0.3, 0.3, 0.3]
    # A new card on the now-familiar device: unknown pairing, and the device serves 2 cards.
    other = client.post("/payment", json={**README_PAYMENT, "card_number": TEST_CARDS[1]}).json()
    assert other["features"]["spending_velocity"] == 0.0
    assert other["features"]["device_trust_score"] == pytest.approx(0.3 / 1.5)
    # ecommerce base 0.30; a card's first currency is its home, another one is cross-border.
    assert first[0]["ip_risk_score"] == pytest.approx(0.30)
    abroad = client.post("/payment", json={**README_PAYMENT, "currency": "USD"}).json()
    assert abroad["features"]["ip_risk_score"] == pytest.approx(0.55)


def test_transaction_ids_grow_with_insertion(client) -> None:
    ids = [
        uuid.UUID(client.post("/payment", json=payment_body()).json()["transaction_id"])
        for _ in range(10)
    ]
    assert ids == sorted(ids) and len(set(ids)) == 10
