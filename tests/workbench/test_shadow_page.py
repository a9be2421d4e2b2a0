"""AppTest of the Shadow policies page: start/stop a shadow and a route only with the admin
token, and the panel showing the engine's shadow comparison (GET /policies/shadow)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from support import UI_ADMIN_TOKEN, payment_body

from workbench import admin_gate

BLOCK_BIG = [{"name": "Block big", "action": "block", "when": ":amount: > 40"}]


def unlock(at) -> None:
    at.text_input(key="shadow_admin_token").set_value(UI_ADMIN_TOKEN)
    at.button(key="shadow_admin_unlock").click().run()


@pytest.mark.parametrize("admin_token", [None])
def test_without_a_configured_token_the_controls_are_disabled_and_say_how(shared, app):
    shared.create_policy(BLOCK_BIG)
    at = app("shadow")
    assert admin_gate.NOT_CONFIGURED in [i.value for i in at.info]
    for key in ("shadow_start", "shadow_stop", "route_start", "route_stop"):
        assert at.button(key=key).disabled, key
    assert shared.experiments.live.shadow is None


def test_the_token_starts_and_stops_a_shadow_and_the_panel_shows_its_comparison(shared, app):
    draft = shared.create_policy(BLOCK_BIG, note="block big")
    at = app("shadow")
    assert at.title[0].value == "Shadow policies"
    assert at.button(key="shadow_start").disabled  # asks for the token first
    unlock(at)
    assert at.selectbox(key="shadow_version").value == draft.version
    at.button(key="shadow_start").click().run()
    assert not at.exception
    assert shared.experiments.live.shadow.policy.version == draft.version
    assert "No live payment has arrived" in at.info[-1].value
    for i in range(12):
        shared.authorize(payment_body(amount=f"{10 + 7 * i}.00"))
    at.run()
    expected = shared.shadow_report().comparison
    table = at.table[0].value
    rate = next(d for d in expected.differences if d.metric == "approval_rate")
    shown = table[table["B − A"].str.endswith(" pp")].iloc[0]  # the approval rate row
    assert (shown["A"], shown["B"]) == (f"{rate.a:.2%}", f"{rate.b:.2%}")
    assert expected.a.rows == 12 and expected.b.approved < expected.a.approved
    assert "12 live payments decided by both" in at.caption[-1].value
    at.button(key="shadow_stop").click().run()
    assert shared.experiments.live.shadow is None


def test_the_token_routes_a_share_and_ends_it(shared, app):
    draft = shared.create_policy(BLOCK_BIG)
    at = app("shadow")
    unlock(at)
    at.number_input(key="route_share").set_value(0.3).run()
    at.button(key="route_start").click().run()
    route = shared.experiments.live.route
    assert (route.policy.version, route.share) == (draft.version, 0.3)
    at.button(key="route_stop").click().run()
    assert shared.experiments.live.route is None


def test_the_cost_inputs_price_the_shadow_panel(shared, app):
    """The panel prices with the page's cost model (GET /policies/shadow's query parameters):
    a chargeback fee and a review capacity typed in give what the engine computes with them."""
    from engine.costs import CostModel

    draft = shared.create_policy(BLOCK_BIG)
    shared.start_shadow(draft.version)
    paid = [shared.authorize(payment_body(amount=f"{10 + 7 * i}.00")) for i in range(12)]
    approved = [p for p in paid if p.status == "Approved"]
    shared.dispute(approved[0].transaction_id, {"reason": "fraud"})
    at = app("shadow")
    at.number_input(key="shadow_fee").set_value(40.0).run()
    at.number_input(key="shadow_capacity").set_value(2).run()
    assert not at.exception
    costs = CostModel(chargeback_fee=Decimal("40.00"), review_capacity=2)
    expected = shared.shadow_report(costs).comparison
    default = shared.shadow_report().comparison
    table = at.table[0].value.set_index(at.table[0].value.columns[0])
    total = next(d for d in expected.differences if d.metric == "total_cost")
    assert expected.a.costs.total != default.a.costs.total  # the fee counts
    assert table.loc["Total cost", "A"] == f"{total.a:,.2f}", table
    assert "Card precision at capacity (CP@k)" in table.index  # with a capacity only
    shared.stop_shadow()
