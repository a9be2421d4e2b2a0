"""Shadow and routed policies on live traffic (issue 14): the four routes (admin, 400/404,
idempotent stop), a shadowed payment storing both decisions with only the active one enforced,
the audit trail naming both, routing's share and stickiness, and GET /policies/shadow answering
exactly what POST /compare answers over the same rows."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support import luhn_card, payment_body

BLOCK_ALL = {"name": "Block everything", "action": "block", "when": ":amount: > 0"}
SHADOW_RULES = [
    {"name": "Big and unlucky", "action": "block", "when": ":amount: > 60 and :random: < 0.5"},
    {"name": "Watch risky", "action": "review", "when": ":risk_score: > 0.2"},
]


def _store(client: TestClient, rules: list[dict], **extra) -> int:
    response = client.post("/policies", json={"rules": rules, **extra})
    assert response.status_code == 201, response.text
    return response.json()["version"]


def test_the_admin_routes_need_the_token(client: TestClient) -> None:
    version = _store(client, [BLOCK_ALL])
    wrong = {"Authorization": "Bearer nope"}
    for method, path, body in (
        ("POST", f"/policies/{version}/shadow", None),
        ("DELETE", "/policies/shadow", None),
        ("POST", f"/policies/{version}/route", {"share": 0.1}),
    ):
        for headers in ({}, wrong):
            answer = client.request(method, path, json=body, headers=headers)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"]["type"]
    report = client.get("/policies/shadow")  # reading the comparison is not an admin act
    assert report.status_code == 200
    assert report.json() == {"shadow": None, "route": None, "comparison": None}


def test_unknown_versions_are_404_and_bad_route_bodies_400_naming_share(
    client: TestClient, admin_headers: dict, engine
) -> None:
    assert client.post("/policies/99/shadow", headers=admin_headers).status_code == 404
    missing = client.post("/policies/99/route", headers=admin_headers, json={"share": 0.1})
    assert missing.status_code == 404 and missing.json()["error"]["type"]
    version = _store(client, [BLOCK_ALL])
    for body in (
        {},
        {"share": 1.5},
        {"share": -0.1},
        {"share": "0.1"},
        {"share": True},
        {"share": None},
        {"share": 0.1, "extra": 1},
    ):
        answer = client.post(f"/policies/{version}/route", headers=admin_headers, json=body)
        assert answer.status_code == 400, (body, answer.text)
        error = answer.json()["error"]
        assert error["field"] == ("extra" if "extra" in body else "share"), (body, error)
    assert engine.experiments.live.route is None  # nothing was stored
    events = engine.store.query("SELECT count(*) FROM audit_log WHERE event LIKE 'policy.route%'")
    assert events == [(0,)]


def test_stop_is_idempotent_and_every_change_is_audited(
    client: TestClient, admin_headers: dict, engine
) -> None:
    version = _store(client, [BLOCK_ALL])
    started = client.post(f"/policies/{version}/shadow", headers=admin_headers)
    assert started.status_code == 200, started.text
    assert started.json()["shadow"]["version"] == version and started.json()["route"] is None
    for _ in range(2):
        stopped = client.delete("/policies/shadow", headers=admin_headers)
        assert stopped.status_code == 200 and stopped.json() == {"shadow": None, "route": None}
    routed = client.post(f"/policies/{version}/route", headers=admin_headers, json={"share": 0.25})
    assert routed.json()["route"]["share"] == 0.25
    ended = client.post(f"/policies/{version}/route", headers=admin_headers, json={"share": 0})
    assert ended.status_code == 200 and ended.json()["route"] is None
    events = engine.store.query(
        "SELECT event, policy_version FROM audit_log WHERE event LIKE 'policy.%' "
        "AND event NOT IN ('policy.created', 'policy.activated') ORDER BY created_at, rowid"
    )
    assert events == [
        ("policy.shadow_started", version),
        ("policy.shadow_stopped", version),  # once: the second stop changed nothing
        ("policy.route_started", version),
        ("policy.route_stopped", version),
    ]
    assert engine.store.query("SELECT count(*) FROM policy_experiments") == [(0,)]


def test_a_shadowed_payment_stores_both_decisions_and_only_the_active_one_is_enforced(
    client: TestClient, admin_headers: dict, engine
) -> None:
    version = _store(client, [BLOCK_ALL])
    client.post(f"/policies/{version}/shadow", headers=admin_headers)
    answers = [
        client.post("/payment", json=payment_body(card=luhn_card(i), amount="20.00")).json()
        for i in range(20)
    ]
    assert {a["policy_version"] for a in answers} == {1}  # the active policy decided
    assert any(a["status"] == "Approved" for a in answers)  # the shadow blocks all: not enforced
    rows = engine.store.query(
        "SELECT status, policy_version, shadow_version, shadow_action, shadow_rule_index "
        "FROM transactions ORDER BY id"
    )
    assert [r[0] for r in rows] == [a["status"] for a in answers]
    assert {r[1:] for r in rows} == {(1, version, 2, 0)}  # Action.BLOCK by rule 0
    approved = next(a for a in answers if a["status"] == "Approved")
    decided = client.get(f"/audit/{approved['transaction_id']}").json()[0]
    assert decided["policy_version"] == 1 and decided["decision"]["status"] == "Approved"
    assert decided["shadow"] == {
        "policy_version": version,
        "status": "Declined",
        "action": "block",
        "rule": BLOCK_ALL["name"],
        "decision_reason": BLOCK_ALL["name"],
        "risk_flag": BLOCK_ALL["name"],
        "score": decided["shadow"]["score"],
        "challenge": None,
    }
    client.delete("/policies/shadow", headers=admin_headers)
    after = client.post("/payment", json=payment_body(amount="20.00")).json()
    assert client.get(f"/audit/{after['transaction_id']}").json()[0]["shadow"] is None


def test_routing_sends_a_sticky_share_of_cards_to_the_challenger(
    client: TestClient, admin_headers: dict
) -> None:
    challenger = _store(client, [BLOCK_ALL], note="challenger")
    answer = client.post(
        f"/policies/{challenger}/route", headers=admin_headers, json={"share": 0.3}
    )
    assert answer.status_code == 200, answer.text

    def side(i: int) -> int:
        paid = client.post("/payment", json=payment_body(card=luhn_card(i), amount="5.00")).json()
        if paid["policy_version"] == challenger:
            assert paid["status"] == "Declined" and paid["rule"] == BLOCK_ALL["name"]
        return paid["policy_version"]

    cards = 400
    first = [side(i) for i in range(cards)]
    share = first.count(challenger) / cards
    assert abs(share - 0.3) < 0.08  # 0.3 ± 3.5 binomial standard deviations
    assert [side(i) for i in range(0, cards, 4)] == first[::4]  # a card stays on its side
    client.post(f"/policies/{challenger}/route", headers=admin_headers, json={"share": 0.6})
    wider = [side(i) for i in range(0, cards, 4)]
    assert all(w == challenger for w, f in zip(wider, first[::4], strict=True) if f == challenger)
    client.post(f"/policies/{challenger}/route", headers=admin_headers, json={"share": 0})
    assert {side(i) for i in range(0, cards, 8)} == {1}


def test_the_shadow_comparison_equals_post_compare_over_the_same_rows(
    client: TestClient, admin_headers: dict
) -> None:
    weights = {"device": 0.5, "ip": 0.1, "amount": 0.3, "velocity": 0.1, "amount_scale": 200}
    shadow = _store(client, SHADOW_RULES, score_weights=weights)
    client.post(f"/policies/{shadow}/shadow", headers=admin_headers)
    amounts = [f"{7 + (i * 37) % 120}.00" for i in range(60)]
    paid = [
        client.post("/payment", json=payment_body(card=luhn_card(i % 13), amount=amount)).json()
        | {"amount": amount}
        for i, amount in enumerate(amounts)
    ]
    approved = [p for p in paid if p["status"] == "Approved"]
    for p in approved[:5]:  # labels: fraud disputes on a few approved payments
        disputed = client.post(
            f"/transaction/{p['transaction_id']}/dispute",
            headers=admin_headers,
            json={"reason": "fraud"},
        )
        assert disputed.status_code in (200, 201), disputed.text
    for p in approved[5:7]:  # friendly fraud: the cardholder's own payments, disputed
        disputed = client.post(
            f"/transaction/{p['transaction_id']}/dispute",
            headers=admin_headers,
            json={"reason": "friendly_fraud"},
        )
        assert disputed.status_code in (200, 201), disputed.text
    report = client.get("/policies/shadow").json()
    assert report["shadow"]["version"] == shadow
    since = report["shadow"]["since"]
    compared = client.post(
        "/compare",
        json={"a": 1, "b": shadow, "filters": {"run": "live", "since": since}},
    )
    assert compared.status_code == 200, compared.text
    expected, got = compared.json(), report["comparison"]
    for answer in (expected, got):
        answer.pop("elapsed_ms")
    assert got["a"]["rows"] == 60 and got["a"]["fraud"] == 5
    assert got["a"]["friendly_fraud"] == got["a"]["costs"]["friendly_fraud"] == 2
    friendly_amounts = sum(float(p["amount"]) for p in approved[5:7])
    assert got["a"]["costs"]["friendly_fraud_loss"] == pytest.approx(friendly_amounts + 2 * 15.0)
    live = {"run": "live", "since": since}
    before = client.post(  # labels as they were before any dispute was reported
        "/compare", json={"a": 1, "b": shadow, "filters": live, "labels_as_of": since}
    ).json()
    assert before["a"]["fraud"] == before["a"]["friendly_fraud"] == 0
    assert before["a"]["costs"]["friendly_fraud_loss"] == 0
    assert got["b"]["review_marked"] > 0 and got["b"]["fraud_caught"] + got["b"]["fraud_stopped"]
    assert got == expected


def test_a_reset_ends_the_shadow_and_the_route_with_their_windows(
    client: TestClient, admin_headers: dict, engine, db_path
) -> None:
    """A reset deletes the rows a shadow compares and the audit entries that started it: the
    shadow and route end with them, in memory and on disk (a restart does not revive them)."""
    version = _store(client, [BLOCK_ALL])
    client.post(f"/policies/{version}/shadow", headers=admin_headers)
    client.post(f"/policies/{version}/route", headers=admin_headers, json={"share": 0.5})
    assert client.delete("/admin/reset", headers=admin_headers).status_code == 200
    assert client.get("/policies/shadow").json() == {"shadow": None, "route": None,
                                                     "comparison": None}  # fmt: skip
    answers = [
        client.post("/payment", json=payment_body(card=luhn_card(i), amount="20.00")).json()
        for i in range(10)
    ]
    assert {a["policy_version"] for a in answers} == {1}  # no card routed any more
    assert engine.store.query("SELECT count(*) FROM transactions WHERE shadow_version IS NOT NULL")[
        0
    ] == (0,)
    from engine.service import Engine

    engine.close()
    with Engine.open(db_path, card_key="") as reopened:
        assert reopened.experiments.live.shadow is None and reopened.experiments.live.route is None


def test_the_shadow_report_prices_with_the_cost_model_its_query_gives(
    client: TestClient, admin_headers: dict
) -> None:
    """?review_capacity=... and the other cost fields price the shadow comparison as the same
    model prices POST /compare (CP@k appears with a capacity); absent fields keep defaults."""
    shadow = _store(client, SHADOW_RULES)
    client.post(f"/policies/{shadow}/shadow", headers=admin_headers)
    for i in range(40):
        client.post("/payment", json=payment_body(card=luhn_card(i % 9), amount=f"{20 + i}.00"))
    costs = {"currency": "EUR", "chargeback_fee": "20", "review_capacity": "3"}
    report = client.get("/policies/shadow", params=costs)
    assert report.status_code == 200, report.text
    got = report.json()["comparison"]
    since = report.json()["shadow"]["since"]
    body_costs = {"currency": "EUR", "chargeback_fee": 20, "review_capacity": 3}
    expected = client.post(
        "/compare",
        json={"a": 1, "b": shadow, "filters": {"run": "live", "since": since}, "costs": body_costs},
    ).json()
    for answer in (expected, got):
        answer.pop("elapsed_ms")
    assert got["costs"]["currency"] == "EUR" and got["costs"]["review_capacity"] == 3
    assert got["costs"]["review_cost"] == 3.0  # absent: the default
    assert got["b"]["cp_at_k"] is not None and got["b"]["reviewed"] <= got["b"]["review_marked"]
    assert got == expected
    default = client.get("/policies/shadow").json()["comparison"]
    assert default["costs"]["currency"] == "GBP" and default["b"]["cp_at_k"] is None


@pytest.mark.parametrize(
    ("params", "field", "phrase"),
    [
        ({"chargeback_fee": "abc"}, "chargeback_fee", "must be a number"),
        ({"chargeback_fee": "nan"}, "chargeback_fee", "must be a finite number"),
        ({"chargeback_fee": "-1"}, "chargeback_fee", "at least 0"),
        ({"false_decline_margin": "1.5"}, "false_decline_margin", "at most 1"),
        ({"review_capacity": "2.5"}, "review_capacity", "whole number"),
        ({"currency": "XXX"}, "currency", "ECB reference rate"),
        ({"capacity": "200"}, "capacity", "unknown"),
    ],
)
def test_bad_or_unknown_cost_parameters_answer_400_naming_them(
    client: TestClient, params: dict, field: str, phrase: str
) -> None:
    response = client.get("/policies/shadow", params=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field and phrase in error["message"], error


def test_a_huge_review_capacity_is_refused_at_once(client: TestClient) -> None:
    response = client.get("/policies/shadow", params={"review_capacity": "1E+999999999"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "review_capacity"
