"""Hardening of the REST API: idempotency, request ids, admin auth and limits (TestClient, real
DuckDB file under ``tmp_path``)."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import ADMIN_TOKEN, SEED, TEST_CARDS, payment_body

from api.app import create_app
from engine.service import Engine

CLIENT_REQUEST_ID = "client-req-0042"


def _rows(engine: Engine) -> int:
    return engine.store.query("SELECT count(*) FROM transactions")[0][0]


def _assert_envelope(response: Any, status: int, type_: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == type_
    assert error["request_id"] == response.headers["Request-Id"]
    if field is not None:
        assert error["field"] == field
    return error


@pytest.fixture
def open_client(tmp_path: Path) -> Iterator[Any]:
    """A factory of (engine, client) pairs with settings overrides; all closed afterwards."""
    opened: list[tuple[Engine, TestClient]] = []

    def make(**settings: Any) -> tuple[Engine, TestClient]:
        settings = {"seed": SEED, "card_key": "", "backup_interval_s": 0, **settings}
        engine = Engine.open(tmp_path / "h.duckdb", **settings)
        client = TestClient(create_app(engine))
        client.__enter__()
        opened.append((engine, client))
        return engine, client

    try:
        yield make
    finally:
        for engine, client in reversed(opened):
            client.__exit__(None, None, None)
            engine.close()


# -- idempotency ---------------------------------------------------------------------------------


def test_same_key_same_body_replays_the_first_result(client: TestClient, engine: Engine) -> None:
    headers = {"Idempotency-Key": "order-1"}
    first = client.post("/payment", json=payment_body(), headers=headers)
    second = client.post("/payment", json=payment_body(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json()["transaction_id"] == first.json()["transaction_id"]
    assert second.json()["status"] == first.json()["status"]
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert _rows(engine) == 1


def test_same_key_other_body_is_a_409_idempotency_error(client: TestClient, engine: Engine) -> None:
    headers = {"Idempotency-Key": "order-2"}
    assert client.post("/payment", json=payment_body(), headers=headers).status_code == 201
    other = client.post("/payment", json=payment_body(amount=99.99), headers=headers)
    error = _assert_envelope(other, 409, "idempotency_error", "Idempotency-Key")
    assert "different request" in error["message"]
    assert TEST_CARDS[1] not in other.text
    assert _rows(engine) == 1


def test_concurrent_requests_with_one_key_make_one_transaction(
    client: TestClient, engine: Engine
) -> None:
    barrier = threading.Barrier(16)
    answers: list[Any] = []
    lock = threading.Lock()

    def post() -> None:
        barrier.wait()
        response = client.post(
            "/payment", json=payment_body(), headers={"Idempotency-Key": "same-key-16"}
        )
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=post) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 16
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["transaction_id"] for r in answers}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in answers) == 1
    assert _rows(engine) == 1


def test_replay_after_engine_restart(open_client: Any) -> None:
    engine, client = open_client()
    headers = {"Idempotency-Key": "survives-restart"}
    first = client.post("/payment", json=payment_body(), headers=headers).json()
    client.__exit__(None, None, None)
    engine.close()
    engine, client = open_client()
    again = client.post("/payment", json=payment_body(), headers=headers)
    assert again.status_code == 201
    assert again.json()["transaction_id"] == first["transaction_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    conflict = client.post("/payment", json=payment_body(amount=1), headers=headers)
    _assert_envelope(conflict, 409, "idempotency_error")
    assert _rows(engine) == 1


# -- request ids ---------------------------------------------------------------------------------


def test_request_id_on_success_and_every_error(open_client: Any) -> None:
    _, client = open_client(rate_limit="5/s", max_body_bytes=4096)
    ok = client.post("/payment", json=payment_body())
    assert ok.status_code == 201 and re.fullmatch(r"[0-9a-f]{16,64}", ok.headers["Request-Id"])
    _assert_envelope(client.post("/payment", json={"amount": 1}), 400, "validation_error")
    _assert_envelope(client.get("/no/such/route"), 404, "not_found")
    _assert_envelope(client.get("/transaction/nope"), 404, "not_found")
    card_as_id = client.get(f"/audit/{TEST_CARDS[0]}")
    _assert_envelope(card_as_id, 404, "not_found")
    assert TEST_CARDS[0] not in card_as_id.text
    _assert_envelope(client.delete("/admin/reset"), 403, "forbidden")
    big = client.post(
        "/payment", content=b"{" + b" " * 8192 + b"}", headers={"Content-Type": "application/json"}
    )
    _assert_envelope(big, 413, "payload_too_large", "body")
    statuses = [client.post("/payment", json=payment_body()) for _ in range(12)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    _assert_envelope(limited[0], 429, "rate_limited")


def test_client_request_id_is_echoed_and_a_malformed_one_replaced(client: TestClient) -> None:
    sent = {"Request-Id": CLIENT_REQUEST_ID}
    ok = client.post("/payment", json=payment_body(), headers=sent)
    assert ok.headers["Request-Id"] == CLIENT_REQUEST_ID
    bad = client.post("/payment", json={"amount": 1}, headers=sent)
    assert bad.json()["error"]["request_id"] == CLIENT_REQUEST_ID
    missing = client.get("/transaction/00000000-0000-0000-0000-000000000000", headers=sent)
    assert missing.json()["error"]["request_id"] == CLIENT_REQUEST_ID
    denied = client.delete("/admin/reset", headers=sent)
    assert denied.json()["error"]["request_id"] == CLIENT_REQUEST_ID
    for malformed in ("spaces are not allowed", "x" * 65, "semi;colon"):
        odd = client.get("/health", headers={"Request-Id": malformed})
        assert odd.headers["Request-Id"] != malformed
        assert re.fullmatch(r"[0-9a-f]{16,64}", odd.headers["Request-Id"])


def test_one_access_log_line_per_request_without_card_numbers(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ptsim.access")
    card = TEST_CARDS[2]
    sent_ids = [f"log-check-{i}" for i in range(4)]
    client.post("/payment", json=payment_body(card=card), headers={"Request-Id": sent_ids[0]})
    client.post(
        "/payment", json=payment_body(card=card, amount=-1), headers={"Request-Id": sent_ids[1]}
    )
    client.get("/stats", headers={"Request-Id": sent_ids[2]})
    client.get(f"/transaction/{card}", headers={"Request-Id": sent_ids[3]})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ptsim.access"]
    assert [line["request_id"] for line in lines] == sent_ids
    assert [line["status"] for line in lines] == [201, 400, 200, 404]
    assert {"method", "path", "status", "duration_ms"} <= set(lines[0])
    assert all(card not in record.getMessage() for record in caplog.records)
    assert card not in caplog.text
    assert lines[3]["path"] == "/transaction/555555…4444"  # a card sent as an id is masked


def test_access_log_lines_stay_json_whatever_the_path_holds(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ptsim.access")
    client.get('/transaction/a"b\\c%0Aé', headers={"Request-Id": "quote-check"})
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ptsim.access"]
    assert line["request_id"] == "quote-check"
    assert line["path"] == '/transaction/a"b\\c\né'
    assert line["method"] == "GET"
    assert line["status"] == 404


# -- admin ---------------------------------------------------------------------------------------


def test_admin_routes_refused_when_no_token_is_configured(open_client: Any) -> None:
    _, client = open_client()
    for method, path in (("DELETE", "/admin/reset"), ("POST", "/admin/backup")):
        refused = client.request(method, path, headers={"Authorization": "Bearer anything"})
        error = _assert_envelope(refused, 403, "forbidden")
        assert "PTSIM_ADMIN_TOKEN" in error["message"]
        assert "Authorization: Bearer" in error["message"]


def test_admin_token_wrong_missing_and_right(
    client: TestClient, engine: Engine, admin_headers: dict[str, str]
) -> None:
    client.post("/payment", json=payment_body())
    wrong = client.delete("/admin/reset", headers={"Authorization": "Bearer not-the-token"})
    _assert_envelope(wrong, 401, "unauthorized")
    assert wrong.headers["WWW-Authenticate"] == "Bearer"
    _assert_envelope(client.delete("/admin/reset"), 401, "unauthorized")
    prefix = ADMIN_TOKEN[:-1]
    near = client.delete("/admin/reset", headers={"Authorization": f"Bearer {prefix}"})
    _assert_envelope(near, 401, "unauthorized")
    assert _rows(engine) == 1
    ok = client.delete("/admin/reset", headers=admin_headers)
    assert ok.status_code == 200 and ok.json()["total"] == 0
    assert _rows(engine) == 0


def test_admin_backup_writes_a_file_that_opens(
    client: TestClient, admin_headers: dict[str, str], engine: Engine
) -> None:
    import duckdb

    client.post("/payment", json=payment_body())
    answer = client.post("/admin/backup", headers=admin_headers)
    assert answer.status_code == 200
    name = answer.json()["backup"]  # relative to the database's folder, never an absolute path
    assert not Path(name).is_absolute() and str(engine.store.path.parent) not in answer.text
    backup = engine.store.path.parent / name
    assert backup.exists() and backup.stat().st_size > 0
    con = duckdb.connect(str(backup), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM transactions").fetchone()[0] == 1
    finally:
        con.close()


# -- limits --------------------------------------------------------------------------------------


def test_two_megabyte_body_is_a_413_envelope(client: TestClient, engine: Engine) -> None:
    body = json.dumps(payment_body(merchant="x" * (2 * 1024 * 1024))).encode()
    answer = client.post("/payment", content=body, headers={"Content-Type": "application/json"})
    error = _assert_envelope(answer, 413, "payload_too_large", "body")
    assert "1048576" in error["message"]
    assert _rows(engine) == 0


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        (payment_body(merchant="m" * 101), {}, "merchant"),
        (payment_body(device_id="d" * 65), {}, "device_id"),
        (payment_body(), {"Idempotency-Key": "k" * 256}, "Idempotency-Key"),
        (payment_body(currency="GBPX"), {}, "currency"),
    ],
    ids=["merchant", "device_id", "idempotency-key", "currency"],
)
def test_over_long_strings_are_400_naming_the_field(
    client: TestClient, engine: Engine, body: dict, headers: dict, field: str
) -> None:
    answer = client.post("/payment", json=body, headers=headers)
    _assert_envelope(answer, 400, "validation_error", field)
    assert body["card_number"] not in answer.text
    assert _rows(engine) == 0


def test_rate_limit_answers_429_with_retry_after_never_500(open_client: Any) -> None:
    engine, client = open_client(rate_limit="5/s")
    answers = [client.post("/payment", json=payment_body()) for _ in range(20)]
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {201, 429}
    assert statuses.count(201) >= 5 and statuses.count(429) >= 1
    for limited in (r for r in answers if r.status_code == 429):
        assert int(limited.headers["Retry-After"]) >= 1
        _assert_envelope(limited, 429, "rate_limited")
    assert _rows(engine) == statuses.count(201)
    assert client.get("/stats").status_code == 200  # other routes are not limited


@pytest.mark.parametrize("headers", [{}, {"Idempotency-Key": "big-1"}], ids=["plain", "keyed"])
def test_an_oversized_chunked_body_is_a_413_on_every_path(
    client: TestClient, engine: Engine, headers: dict
) -> None:
    body = json.dumps(payment_body(merchant="x" * (2 * 1024 * 1024))).encode()
    pieces = (body[i : i + 65536] for i in range(0, len(body), 65536))  # no Content-Length
    answer = client.post(
        "/payment", content=pieces, headers={"Content-Type": "application/json", **headers}
    )
    _assert_envelope(answer, 413, "payload_too_large", "body")
    assert _rows(engine) == 0
