"""engine/experiments.py: the shadow and route survive a restart, the routing hash splits cards
at the share, and the shadow comparison (stored decisions) equals a comparison re-deciding the
same rows, review capacity included."""

from __future__ import annotations

import hashlib

import numpy as np
from support import luhn_card, payment_body

from engine.costs import CostModel
from engine.experiments import route_bucket, routed
from engine.service import Engine

REVIEW = [
    {"name": "Review mid", "action": "review", "when": ":amount: > 30"},
    {"name": "Block big", "action": "block", "when": ":amount: > 90 and :random: < 0.6"},
]


def test_shadow_and_route_survive_a_restart(tmp_path) -> None:
    path = tmp_path / "restart.duckdb"
    with Engine.open(path, card_key="restart-test-card-key") as eng:
        shadow = eng.create_policy(REVIEW).version
        challenger = eng.create_policy(REVIEW[1:]).version
        started = eng.start_shadow(shadow).started_at
        eng.route(challenger, 0.5)
    with Engine.open(path, card_key="restart-test-card-key") as eng:
        live = eng.experiments.live
        assert live.shadow is not None and live.route is not None
        assert (live.shadow.policy.version, live.shadow.started_at) == (shadow, started)
        assert (live.route.policy.version, live.route.share) == (challenger, 0.5)
        paid = eng.authorize(payment_body(amount="40.00"))
        ((version,),) = eng.store.query(
            "SELECT shadow_version FROM transactions WHERE id = ?", [paid.transaction_id]
        )
        assert version == shadow
        assert eng.shadow_report().comparison.a.rows == 1
        eng.stop_shadow()
        eng.route(challenger, 0)
    with Engine.open(path, card_key="restart-test-card-key") as eng:
        assert eng.experiments.live.shadow is None and eng.experiments.live.route is None


def test_the_routing_hash_splits_cards_at_the_share() -> None:
    digests = [hashlib.sha256(i.to_bytes(4, "big")).digest()[:16] for i in range(20_000)]
    buckets = np.array([route_bucket(d) for d in digests])
    assert buckets.min() >= 0.0 and buckets.max() < 1.0
    for share in (0.0, 0.1, 0.5, 1.0):
        assert abs(routed(digests, share).mean() - share) < 0.015  # ±5 binomial sd at 20,000
    assert not (routed(digests, 0.1) & ~routed(digests, 0.5)).any()  # a wider share keeps them


def test_the_shadow_comparison_equals_re_deciding_with_review_capacity(engine) -> None:
    shadow = engine.create_policy(REVIEW)
    engine.start_shadow(shadow.version)
    for i in range(80):
        engine.authorize(payment_body(card=luhn_card(i % 17), amount=f"{5 + (i * 29) % 110}.00"))
    report = engine.shadow_report(CostModel(review_capacity=4))
    compared = engine.compare(
        engine.active_policy(),
        shadow,
        costs=CostModel(review_capacity=4),
        run="live",
        since=report.shadow.since,
    )
    got, expected = report.comparison, compared
    assert got.b.review_marked > 4 and got.b.reviewed == 4
    assert got.model_dump(exclude={"elapsed_ms"}) == expected.model_dump(exclude={"elapsed_ms"})


def test_the_shadow_comparison_equals_re_deciding_with_challenges_on_both_sides(engine) -> None:
    """Enforced challenges are read from the stored reason codes, the shadow's re-derived from
    each row's challenge_draw: both must be what re-deciding the rows gives."""
    engine.activate_policy(
        engine.draft_policy([{"name": "Step up", "action": "challenge", "when": ":amount: > 60"}])
    )
    shadow = engine.create_policy(
        [
            {"name": "Step up early", "action": "challenge", "when": ":amount: > 20"},
            {"name": "Block big", "action": "block", "when": ":amount: > 100"},
        ]
    )
    engine.start_shadow(shadow.version)
    amounts = [5 + (i * 29) % 110 for i in range(120)]
    answers = [
        engine.authorize(payment_body(card=luhn_card(i % 23), amount=f"{amount}.00"))
        for i, amount in enumerate(amounts)
    ]
    shadowed = [
        engine.get_audit(answer.transaction_id)[0].shadow
        for answer, amount in zip(answers, amounts, strict=True)
        if 20 < amount <= 100
    ]
    assert {s.action for s in shadowed} == {"challenge"}
    assert {s.challenge for s in shadowed} == {"passed", "abandoned"}
    assert all((s.status == "Approved") == (s.challenge == "passed") for s in shadowed)
    report = engine.shadow_report(CostModel())
    compared = engine.compare(engine.active_policy(), shadow, run="live", since=report.shadow.since)
    got = report.comparison
    assert got.a.challenged > 0 and got.b.challenged > got.a.challenged
    assert got.a.challenge_abandoned > 0 and got.b.challenge_abandoned > 0
    assert got.model_dump(exclude={"elapsed_ms"}) == compared.model_dump(exclude={"elapsed_ms"})
