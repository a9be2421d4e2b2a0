"""GET /lists, GET /lists/{name}, PUT /lists/{name}: shapes, paging, admin token, errors, limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import ADMIN_TOKEN, SEED, TEST_CARDS

from api.app import create_app
from engine.service import Engine

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SUMMARY_KEYS = {"name", "kind", "version", "created_at", "item_count", "content_hash", "note"}


def test_put_creates_a_version_and_get_reads_it(client: TestClient) -> None:
    put = client.put(
        "/lists/risky_bins",
        json={"kind": "bin", "items": ["498765", "412345", "412345"], "note": "attack"},
        headers=AUTH,
    )
    assert put.status_code == 200, put.text
    body = put.json()
    assert set(body) == SUMMARY_KEYS | {"changed"}
    assert (body["version"], body["item_count"], body["changed"]) == (1, 2, True)
    assert body["created_at"].endswith("Z")

    listed = client.get("/lists").json()
    assert [(s["name"], s["kind"], s["version"]) for s in listed] == [("risky_bins", "bin", 1)]
    page = client.get("/lists/risky_bins").json()
    assert page["items"] == ["412345", "498765"]
    assert (page["offset"], page["limit"], page["note"]) == (0, 100, "attack")


def test_an_unchanged_list_says_so_and_makes_no_version(client: TestClient) -> None:
    body = {"kind": "currency", "items": ["GBP", "eur"]}
    assert client.put("/lists/ccy", json=body, headers=AUTH).json()["changed"] is True
    again = client.put("/lists/ccy", json={**body, "items": ["EUR", "GBP"]}, headers=AUTH).json()
    assert (again["changed"], again["version"]) == (False, 1)
    changed = client.put("/lists/ccy", json={"kind": "currency", "items": []}, headers=AUTH)
    assert (changed.json()["changed"], changed.json()["version"]) == (True, 2)
    old = client.get("/lists/ccy", params={"version": 1}).json()
    assert (old["version"], old["items"]) == (1, ["EUR", "GBP"])
    assert client.get("/lists/ccy").json()["items"] == []


def test_items_are_paged_in_sorted_order(client: TestClient) -> None:
    items = [f"m{i:03d}" for i in range(250)]
    client.put("/lists/shops", json={"kind": "merchant", "items": items[::-1]}, headers=AUTH)
    first = client.get("/lists/shops").json()
    assert first["items"] == items[:100]
    last = client.get("/lists/shops", params={"offset": 200, "limit": 100}).json()
    assert last["items"] == items[200:]
    assert client.get("/lists/shops", params={"offset": 300}).json()["items"] == []


def test_card_lists_show_fingerprints_only(client: TestClient) -> None:
    put = client.put("/lists/stolen", json={"kind": "card", "items": TEST_CARDS}, headers=AUTH)
    assert put.json()["item_count"] == len(TEST_CARDS)
    page = client.get("/lists/stolen")
    assert all(len(item) == 32 for item in page.json()["items"])
    for response in (put, page, client.get("/lists")):
        assert not any(card in response.text for card in TEST_CARDS)
        assert not any(card[:6] in response.text for card in TEST_CARDS[1:2])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "bin", "items": ["412345", "41234", "4123456"]}, "items[1]"),
        ({"kind": "card", "items": ["4111111111111111", 4111111111111111]}, "items[1]"),
        ({"kind": "merchant", "items": ["Shop 4111 1111 1111 1111"]}, "items[0]"),
        ({"kind": "device", "items": [{"id": "x"}]}, "items[0]"),
        ({"kind": "colour", "items": []}, "kind"),
        ({"items": []}, "kind"),
        ({"kind": "bin"}, "items"),
        ({"kind": "bin", "items": "412345"}, "items"),
        ({"kind": "bin", "items": [], "extra": 1}, "extra"),
        ({"kind": "bin", "items": [], "note": "n" * 501}, "note"),
    ],
)
def test_bad_bodies_answer_400_naming_the_field_and_store_nothing(
    client: TestClient, engine: Engine, body: dict[str, Any], field: str
) -> None:
    answer = client.put("/lists/l", json=body, headers=AUTH)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["field"]) == ("validation_error", field)
    assert "4111" not in answer.text
    assert client.get("/lists").json() == []
    assert engine.store.query("SELECT count(*) FROM list_items") == [(0,)]


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/lists/nope", 404, None),
        ("/lists/9lives", 400, "name"),
        ("/lists/a4111111111111111", 400, "name"),
        ("/lists/l?limit=0", 400, "limit"),
        ("/lists/l?limit=10001", 400, "limit"),
        ("/lists/l?offset=-1", 400, "offset"),
        ("/lists/l?version=0", 400, "version"),
        ("/lists/l?version=2", 404, None),
    ],
)
def test_get_errors(client: TestClient, path: str, status: int, field: str | None) -> None:
    client.put("/lists/l", json={"kind": "text", "items": ["a"]}, headers=AUTH)
    answer = client.get(path)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["field"] == field
    assert "4111111111111111" not in answer.text


def test_put_needs_the_admin_token(client: TestClient) -> None:
    body = {"kind": "text", "items": ["a"]}
    assert client.put("/lists/l", json=body).status_code == 401
    wrong = client.put("/lists/l", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "unauthorized"
    assert client.get("/lists").json() == []


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[TestClient]:
    engine = Engine.open(
        tmp_path / "limits.duckdb",
        seed=SEED,
        admin_token=ADMIN_TOKEN,
        card_key="",
        backup_interval_s=0,
        max_body_bytes=4096,
        max_list_body_bytes=65_536,
    )
    try:
        with TestClient(create_app(engine)) as test_client:
            yield test_client
    finally:
        engine.close()


def test_put_lists_has_its_own_body_limit(limited: TestClient) -> None:
    items = [f"{i:06d}" for i in range(5_000)]  # ~50 KB: over the general 4 KiB limit
    ok = limited.put("/lists/bins", json={"kind": "bin", "items": items}, headers=AUTH)
    assert ok.status_code == 200 and ok.json()["item_count"] == 5_000

    over = limited.put("/lists/bins", json={"kind": "bin", "items": items * 2}, headers=AUTH)
    assert over.status_code == 413
    assert over.json()["error"] == {
        "type": "payload_too_large",
        "message": "The request body exceeds 65536 bytes.",
        "field": "body",
        "request_id": over.headers["request-id"],
    }
    # without the admin token the route has the general limit: no 64 MiB parse before the 401
    anonymous = limited.put("/lists/bins", json={"kind": "bin", "items": items})
    assert anonymous.status_code == 413
    assert anonymous.json()["error"]["message"] == "The request body exceeds 4096 bytes."
    wrong = limited.put(
        "/lists/bins", json={"kind": "bin", "items": items}, headers={"Authorization": "Bearer x"}
    )
    assert wrong.status_code == 413
    # every other route keeps the general limit, lists' other methods included
    assert limited.post("/simulations", content=b"{" + b" " * 5000 + b"}").status_code == 413
    assert limited.get("/lists/bins", params={"pad": "x"}).status_code == 200
    assert limited.get("/lists/bins").json()["version"] == 1


def test_openapi_documents_the_list_routes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"get"} <= set(paths["/lists"]) and {"get", "put"} <= set(paths["/lists/{name}"])
    put = paths["/lists/{name}"]["put"]
    assert {"200", "400", "401", "413"} <= set(put["responses"])
    upload = schema["components"]["schemas"]["ListUpload"]
    items = upload["properties"]["items"]
    assert (items["type"], items["items"], items["maxItems"]) == (
        "array",
        {"type": "string"},
        1_000_000,
    )
    (name,) = [p for p in paths["/lists/{name}"]["get"]["parameters"] if p["name"] == "name"]
    assert name["schema"]["pattern"] == "^[A-Za-z_][A-Za-z0-9_]{0,63}$"
