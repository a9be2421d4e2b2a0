"""POST /payment's optional world fields (issue 13): merchant_category, merchant_country and
ip_address are validated, stored, shown by GET /transaction and GET /audit; the card's issuing
country and the IP's country are derived; absent fields change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import TEST_CARDS, payment_body

from api.app import create_app
from engine.service import Engine

WORLD = {"merchant_category": "5732", "merchant_country": "de", "ip_address": "81.2.69.160"}


def test_world_fields_are_stored_and_answered(client) -> None:
    paid = client.post("/payment", json=payment_body(card="4000001234567899", **WORLD))
    assert paid.status_code == 201, paid.text
    tx = client.get(f"/transaction/{paid.json()['transaction_id']}").json()
    assert {k: tx[k] for k in ("merchant_category", "merchant_country", "ip_address")} == {
        "merchant_category": "5732", "merchant_country": "DE", "ip_address": "81.2.69.160",
    }  # fmt: skip
    assert tx["card_country"] == "GB"  # BIN 400000 in the simulated test BIN table
    assert tx["ip_country"] == "GB"  # GeoLite2, as geoip2fast ships it
    request = client.get(f"/audit/{tx['id']}").json()[0]["request"]
    assert request["merchant_country"] == "DE" and request["ip_address"] == "81.2.69.160"
    assert request["merchant_category"] == "5732"


def test_without_world_fields_they_read_null(client) -> None:
    paid = client.post("/payment", json=payment_body(card="4000001234567899"))
    tx = client.get(f"/transaction/{paid.json()['transaction_id']}").json()
    assert [tx[k] for k in ("merchant_category", "merchant_country", "ip_address")] == [None] * 3
    assert tx["ip_country"] is None and tx["card_country"] == "GB"


@pytest.mark.parametrize(
    ("ip", "canonical", "country"),
    [
        ("10.1.2.3", "10.1.2.3", None),  # private: no country
        ("2001:DB8:0:0::1", "2001:db8::1", None),  # IPv6: stored canonical, no country (IPv4 data)
        ("8.8.8.8", "8.8.8.8", "US"),
    ],
)
def test_ip_addresses_are_canonical_and_placed_where_the_data_can(client, ip, canonical, country):
    paid = client.post("/payment", json=payment_body(ip_address=ip))
    tx = client.get(f"/transaction/{paid.json()['transaction_id']}").json()
    assert (tx["ip_address"], tx["ip_country"]) == (canonical, country)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("merchant_category", "541"),
        ("merchant_category", "54a1"),
        ("merchant_category", 5411),  # a number: leading zeros would be lost
        ("merchant_category", ""),
        ("merchant_country", "UK"),  # not ISO 3166-1 (GB is)
        ("merchant_country", "XX"),
        ("merchant_country", "GBR"),
        ("merchant_country", "EU"),  # a GeoIP region, not a country
        ("ip_address", "999.1.1.1"),
        ("ip_address", "81.2.69"),
        ("ip_address", "localhost"),
        ("ip_address", 17),
    ],
)
def test_bad_world_values_are_refused_naming_the_field(client, field, value) -> None:
    response = client.post("/payment", json=payment_body(**{field: value}))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert f"'{value}'" not in error["message"]  # the value is never echoed
    assert client.get("/stats").json()["total"] == 0  # nothing stored


def _decided(tmp_path: Path, name: str, extra: dict) -> list[dict]:
    with (
        Engine.open(tmp_path / f"{name}.duckdb", seed=7, card_key="k") as engine,
        TestClient(create_app(engine)) as client,
    ):
        answers = []
        for i in range(12):
            body = payment_body(card=TEST_CARDS[i % 4], amount=f"{100 * i + 7}.00", **extra)
            answer = client.post("/payment", json=body).json()
            answers.append({k: answer[k] for k in ("status", "score", "features", "risk_flag")})
        return answers


def test_the_fields_change_no_decision_of_a_policy_that_does_not_read_them(tmp_path) -> None:
    assert _decided(tmp_path, "plain", {}) == _decided(tmp_path, "world", WORLD)
