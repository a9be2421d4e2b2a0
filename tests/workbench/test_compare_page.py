"""AppTest of the compare page: two stored versions side by side in money, with intervals."""

from __future__ import annotations

from decimal import Decimal

from engine.costs import CostModel

BIG = [{"name": "Big", "action": "block", "when": ":amount: > 300"}]


def test_compare_page_prices_two_versions_like_the_engine(seeded, app):
    draft = seeded.create_policy(BIG, note="block big payments")
    at = app("compare")
    assert at.title[0].value == "Compare policies"
    assert at.selectbox(key="compare_a").value == 1  # the active policy
    assert at.selectbox(key="compare_b").value == draft.version
    expected = seeded.compare(seeded.policy(1), draft, costs=CostModel())
    table = at.table[0].value
    total = table[table["metric"] == "Total cost"].iloc[0]
    assert total["B"] == f"{float(expected.b.costs.total):,.2f}"
    assert total["A"] == f"{float(expected.a.costs.total):,.2f}"
    assert len(at.success) + len(at.error) + len(at.warning) == 1  # one verdict on total cost
    assert "replicates over 5 days" in at.caption[-1].value
    # another currency re-prices the same decisions
    at.selectbox(key="compare_currency").set_value("EUR").run()
    assert not at.exception
    eur = seeded.compare(seeded.policy(1), draft, costs=CostModel(currency="EUR"))
    table = at.table[0].value
    assert table[table["metric"] == "Total cost"].iloc[0]["B"] == f"{float(eur.b.costs.total):,.2f}"


def test_compare_page_asks_for_a_second_version_first(seeded, app):
    at = app("compare")
    assert not at.exception
    assert "only one policy version" in at.info[0].value


STEP_UP = [{"name": "Step up", "action": "challenge", "when": ":amount: > 100"}]


def test_compare_page_prices_challenges_and_shows_their_outcomes(seeded, app):
    draft = seeded.create_policy(STEP_UP, note="step up big payments")
    at = app("compare")
    at.number_input(key="compare_challenge").set_value(0.2).run()
    assert not at.exception
    costs = CostModel(challenge_cost=Decimal("0.20"))
    expected = seeded.compare(seeded.policy(1), draft, costs=costs)
    assert expected.b.challenged > 0
    table = at.table[0].value
    row = table[table["metric"] == "Challenge cost"].iloc[0]
    assert row["B"] == f"{float(expected.b.costs.challenge_cost):,.2f}" != "0.00"
    total = table[table["metric"] == "Total cost"].iloc[0]
    assert total["B"] == f"{float(expected.b.costs.total):,.2f}"
    tile = next(m for m in at.metric if m.label == "Challenges B")
    assert tile.value == f"{expected.b.challenged:,}" or tile.value.endswith(("k", "M"))
