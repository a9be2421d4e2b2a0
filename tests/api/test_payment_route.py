"""POST /payment has one implementation (api/routes/payments.py): plain and keyed payments, bad
bodies and engine errors all go through it, once, and a dependency override reaches all of them."""

from __future__ import annotations

import asyncio
import json

import pytest
from support import payment_body

from api.app import create_app


def _shape(body: dict) -> dict:
    """Field names with their JSON types (values differ between two payments)."""
    return {key: type(value).__name__ for key, value in body.items()}


def test_plain_and_keyed_payments_answer_the_same_shape(client) -> None:
    fast = client.post("/payment", json=payment_body())
    routed = client.post("/payment", json=payment_body(), headers={"Idempotency-Key": "k-1"})
    assert (fast.status_code, routed.status_code) == (201, 201)
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert fast.headers["request-id"]
    assert _shape(fast.json()) == _shape(routed.json())
    assert _shape(fast.json()["features"]) == _shape(routed.json()["features"])
    stored = client.get(f"/transaction/{fast.json()['transaction_id']}")
    assert stored.status_code == 200 and stored.json()["status"] == fast.json()["status"]


def test_invalid_bodies_get_the_error_envelope(client) -> None:
    bad = {**payment_body(), "amount": -1}
    response = client.post("/payment", json=bad)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "amount"
    assert client.get("/stats").json()["total"] == 0


def test_a_body_that_is_not_declared_json_is_refused(client) -> None:
    response = client.post(
        "/payment", content=json.dumps(payment_body()), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "body"
    assert "Content-Type: application/json" in response.json()["error"]["message"]
    assert client.get("/stats").json()["total"] == 0


def test_an_engine_that_cannot_write_gets_the_mapped_503_once(client, engine, monkeypatch) -> None:
    engine._live.stop()
    calls = []
    submit_async = engine.submit_async

    def counted(payment):
        calls.append(payment)
        return submit_async(payment)

    monkeypatch.setattr(engine, "submit_async", counted)
    monkeypatch.setattr(engine, "submit", lambda *_: pytest.fail("submitted a second time"))
    response = client.post("/payment", json=payment_body())
    assert response.status_code == 503
    assert len(calls) == 1  # no hidden resubmission
    assert response.json()["error"]["type"] == "store_unavailable"
    assert "Traceback" not in response.text


def test_a_body_sent_in_several_chunks_is_reassembled(engine) -> None:
    app = create_app(engine)
    raw = json.dumps(payment_body(merchant="Chunked Ltd")).encode()
    chunks = [raw[:7], raw[7:30], raw[30:]]
    sent: list[dict] = []

    async def receive() -> dict:
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(_scope(), receive, send))
    assert sent[0]["status"] == 201
    answer = json.loads(sent[1]["body"])
    assert (
        engine.get_transaction(answer["transaction_id"]).merchant
        == payment_body(merchant="Chunked Ltd")["merchant"]
    )


@pytest.mark.parametrize("override", ["takes-request", "takes-nothing"])
def test_a_dependency_override_reaches_every_valid_payment(engine, tmp_path, override) -> None:
    from fastapi.testclient import TestClient

    from api.deps import get_engine
    from engine.service import Engine

    with Engine.open(tmp_path / "other.duckdb", card_key="other-key") as other:
        app = create_app(engine)

        async def with_request(request) -> Engine:
            return other

        app.dependency_overrides[get_engine] = (
            with_request if override == "takes-request" else (lambda: other)
        )
        with TestClient(app) as client:
            plain = client.post("/payment", json=payment_body())
            keyed = client.post("/payment", json=payment_body(), headers={"Idempotency-Key": "o"})
        assert (plain.status_code, keyed.status_code) == (201, 201)
        assert other.stats().total == 2
        assert engine.stats().total == 0


def test_a_client_that_leaves_mid_body_gets_nothing_stored(engine) -> None:
    app = create_app(engine)
    raw = json.dumps(payment_body()).encode()
    messages = [
        {"type": "http.request", "body": raw, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(_scope(), receive, send))
    assert engine.stats().total == 0
    assert not any(m.get("status") == 201 for m in sent)


def _scope() -> dict:
    """An ASGI scope for POST /payment with a JSON body."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/payment",
        "raw_path": b"/payment",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
