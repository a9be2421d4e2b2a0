"""The bad-input table: every class of bad request gets a 4xx envelope naming the field, the
card number is never echoed, and nothing is persisted."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from support import payment_body

CARD = "4111111111111111"  # the valid card in every otherwise-bad body
VALID = payment_body(CARD, "12.34")


def _with(**changes) -> dict:
    body = dict(VALID)
    for key, value in changes.items():
        if value is _DROP:
            body.pop(key)
        else:
            body[key] = value
    return body


_DROP = object()


def _raw(text: str, content_type: str = "application/json") -> dict:
    return {"content": text.encode(), "headers": {"Content-Type": content_type}}


def _json(body: object) -> dict:
    return {"json": body}


def _amount_literal(literal: str) -> dict:
    text = json.dumps(VALID).replace('"12.34"', literal)
    assert literal in text
    return _raw(text)


DEEP = 100_000
CASES: list[tuple[str, dict, str, set[int]]] = [
    # id, request, field named in the envelope, accepted statuses
    ("malformed-json", _raw('{"card_number": "4111111111111111", "amount": '), "body", {400}),
    ("trailing-garbage", _raw(json.dumps(VALID) + "}"), "body", {400}),
    ("not-utf8", {"content": b'{"merchant": "\xff\xfe"}', "headers": {}}, "body", {400}),
    ("empty-body", _raw(""), "body", {400}),
    ("text-plain", _raw(json.dumps(VALID), "text/plain"), "body", {400, 415}),
    ("form-encoded", {"data": {"card_number": CARD, "amount": "1"}}, "body", {400, 415}),
    ("missing-card", _json(_with(card_number=_DROP)), "card_number", {400}),
    ("missing-amount", _json(_with(amount=_DROP)), "amount", {400}),
    ("missing-merchant", _json(_with(merchant=_DROP)), "merchant", {400}),
    ("unknown-field", _json(_with(cvv="123")), "cvv", {400}),
    ("amount-nan", _amount_literal("NaN"), "amount", {400}),
    ("amount-infinity", _amount_literal("Infinity"), "amount", {400}),
    ("amount-minus-infinity", _amount_literal("-Infinity"), "amount", {400}),
    ("amount-1e400", _amount_literal("1e400"), "amount", {400}),
    ("amount-true", _json(_with(amount=True)), "amount", {400}),
    ("amount-abc", _json(_with(amount="abc")), "amount", {400}),
    ("amount-nan-string", _json(_with(amount="NaN")), "amount", {400}),
    ("amount-null", _json(_with(amount=None)), "amount", {400}),
    ("amount-list", _json(_with(amount=[1])), "amount", {400}),
    ("amount-zero", _json(_with(amount=0)), "amount", {400}),
    ("amount-negative", _json(_with(amount=-5)), "amount", {400}),
    ("amount-3-decimals", _json(_with(amount="10.001")), "amount", {400}),
    ("amount-3-decimals-number", _amount_literal("10.001"), "amount", {400}),
    ("amount-too-tiny", _amount_literal("1e-7"), "amount", {400}),
    ("amount-over-a-million", _json(_with(amount="1000000.01")), "amount", {400}),
    # JSON numbers are read exactly, never through a binary float (api/exact_json.py)
    ("amount-just-over-a-million", _amount_literal("1000000.000000000000001"), "amount", {400}),
    (
        "amount-many-decimals-near-a-cent",
        _amount_literal("0.009999999999999999999"),
        "amount",
        {400},
    ),
    ("amount-many-decimals-exponent", _amount_literal("1.0000000000000000001e1"), "amount", {400}),
    ("amount-underscores", _json(_with(amount="1_000")), "amount", {400}),
    ("amount-arabic-indic-digits", _json(_with(amount="١٢")), "amount", {400}),
    ("amount-fullwidth-digits", _json(_with(amount="１２")), "amount", {400}),
    ("amount-huge-integer", _amount_literal("9" * 5000), "body", {400}),  # no Python int
    ("card-non-digit", _json(_with(card_number="4111-1111-1111-1111")), "card_number", {400}),
    ("card-letters", _json(_with(card_number="4111111111111abc")), "card_number", {400}),
    ("card-short", _json(_with(card_number="41111111111")), "card_number", {400}),
    ("card-long", _json(_with(card_number="41111111111111111111")), "card_number", {400}),
    ("card-empty", _json(_with(card_number="")), "card_number", {400}),
    ("card-number-type", _json(_with(card_number=4111111111111111)), "card_number", {400}),
    ("card-unicode-digits", _json(_with(card_number="٤١١١١١١١١١١١١١١١")), "card_number", {400}),
    ("currency-unknown", _json(_with(currency="ABC")), "currency", {400}),
    ("currency-short", _json(_with(currency="GB")), "currency", {400}),
    ("currency-long", _json(_with(currency="GBPX")), "currency", {400}),
    ("currency-digits", _json(_with(currency="123")), "currency", {400}),
    ("currency-empty", _json(_with(currency="")), "currency", {400}),
    ("currency-number", _json(_with(currency=826)), "currency", {400}),
    ("channel-unknown", _json(_with(channel="atm")), "channel", {400}),
    ("merchant-empty", _json(_with(merchant="")), "merchant", {400}),
    (
        "merchant-lone-surrogate",
        _raw(json.dumps(VALID).replace("Test Merchant", "a\\ud800b")),
        "merchant",
        {400},
    ),
    ("merchant-too-long", _json(_with(merchant="m" * 101)), "merchant", {400}),
    ("device-with-space", _json(_with(device_id="my device")), "device_id", {400}),
    ("body-list", _json([VALID]), "body", {400}),
    ("body-string", _json("card_number"), "body", {400}),
    ("body-number", _json(42), "body", {400}),
    ("body-null", _raw("null"), "body", {400}),
    ("deep-list", _raw("[" * DEEP + "]" * DEEP), "body", {400, 413}),
    ("deep-object", _raw('{"a":' * DEEP + "1" + "}" * DEEP), "body", {400, 413}),
    (
        "deep-in-field",
        _raw(json.dumps(VALID)[:-1] + ', "x": ' + "[" * DEEP + "]" * DEEP + "}"),
        "body",
        {400, 413},
    ),
    ("ten-megabytes", _json(_with(merchant="m" * 10_000_000)), "body", {413}),
    ("ten-megabytes-of-card", _json(_with(card_number=CARD * 625_000)), "body", {413}),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One engine and client for the whole table: nothing may be persisted, so rows stay 0."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from engine.service import Engine

    path = tmp_path_factory.mktemp("bad-input") / "t.duckdb"
    with Engine.open(path, seed=7, card_key="") as eng, TestClient(create_app(eng)) as c:
        yield eng, c


@pytest.mark.parametrize(
    ("request_kwargs", "field", "statuses"),
    [pytest.param(kw, field, statuses, id=case_id) for case_id, kw, field, statuses in CASES],
)
def test_bad_input_gets_a_4xx_envelope_and_persists_nothing(
    shared, request_kwargs, field, statuses
) -> None:
    engine, client = shared
    response = client.post("/payment", **request_kwargs)
    assert response.status_code in statuses, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["field"] == field, error
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["message"], str) and 0 < len(error["message"]) < 500
    assert CARD not in response.text
    assert "4111-1111" not in response.text and "41111111111" not in response.text
    assert "Traceback" not in response.text
    assert engine.store.query("SELECT count(*) FROM transactions") == [(0,)]
    assert client.get("/stats").json()["total"] == 0


def test_a_valid_body_in_the_same_shape_is_accepted(client) -> None:
    """The table's bodies differ from a valid request only by the bad part."""
    assert client.post("/payment", json=VALID).status_code == 201
    assert client.post("/payment", **_amount_literal("12.34")).status_code == 201
    assert client.get("/stats").json()["total"] == 2


@pytest.mark.parametrize(
    ("literal", "stored"),
    [("12.340000000000000000", "12.34"), ("999999.990000000000000", "999999.99"), ("1E+1", "10")],
)
def test_long_but_exact_amounts_are_stored_exactly(client, engine, literal, stored) -> None:
    """Numbers too long for a float take the exact path and keep their value."""
    response = client.post("/payment", **_amount_literal(literal))
    assert response.status_code == 201, response.text
    row = engine.store.query("SELECT amount FROM transactions")
    assert [str(value) for (value,) in row] == [f"{Decimal(stored):.2f}"]


@pytest.mark.parametrize("card_field_name", ["4111111111111111", "card 4111111111111111"])
def test_an_unknown_field_named_like_a_card_is_not_echoed(client, card_field_name) -> None:
    response = client.post("/payment", json=_with(**{card_field_name: 1}))
    assert response.status_code == 400
    assert "4111111111111111" not in response.text
