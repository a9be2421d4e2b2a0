"""The ASGI fast path for POST /payment answers exactly like the route and defers the rest."""

from __future__ import annotations

import asyncio
import json

from support import payment_body

from api.app import create_app


def _shape(body: dict) -> dict:
    """Field names with their JSON types (values differ between two payments)."""
    return {key: type(value).__name__ for key, value in body.items()}


def test_fast_path_answers_with_the_routes_shape(client) -> None:
    fast = client.post("/payment", json=payment_body())
    # An Idempotency-Key sends the request through the FastAPI route.
    routed = client.post("/payment", json=payment_body(), headers={"Idempotency-Key": "k-1"})
    assert (fast.status_code, routed.status_code) == (201, 201)
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert fast.headers["request-id"]
    assert _shape(fast.json()) == _shape(routed.json())
    assert _shape(fast.json()["features"]) == _shape(routed.json()["features"])
    stored = client.get(f"/transaction/{fast.json()['transaction_id']}")
    assert stored.status_code == 200 and stored.json()["status"] == fast.json()["status"]


def test_invalid_bodies_fall_through_to_the_routes_errors(client) -> None:
    bad = {**payment_body(), "amount": -1}
    response = client.post("/payment", json=bad)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "amount"
    assert client.get("/stats").json()["total"] == 0


def test_a_body_that_is_not_declared_json_goes_to_the_route(client) -> None:
    response = client.post(
        "/payment", content=json.dumps(payment_body()), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 400
    assert client.get("/stats").json()["total"] == 0


def test_an_engine_that_cannot_write_gets_the_mapped_503(client, engine) -> None:
    engine._live.stop()
    response = client.post("/payment", json=payment_body())
    assert response.status_code == 503
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


def test_the_fast_path_serves_valid_payments_without_the_route(client, engine, monkeypatch) -> None:
    def route_reached(*_: object) -> None:
        raise AssertionError("the FastAPI route handled a plain valid payment")

    monkeypatch.setattr(engine, "submit", route_reached)
    assert client.post("/payment", json=payment_body()).status_code == 201


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
