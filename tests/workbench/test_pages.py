"""AppTest for every dashboard page: submit, inspect, live dashboard, tuning, simulations, admin."""

from __future__ import annotations

import json
import time
from datetime import datetime
from decimal import Decimal

import pytest
from streamlit.proto.Metric_pb2 import Metric as MetricProto
from streamlit.proto.TextInput_pb2 import TextInput as TextInputProto
from streamlit.testing.v1 import AppTest
from support import UI_ADMIN_TOKEN

from engine.costs import CostModel
from engine.filters import RowFilter
from engine.policy import DEFAULT_POLICY
from engine.service import Engine
from engine.simulation.params import SimulationParams
from workbench import admin_gate, formats
from workbench.runtime import close_shared_engine, install_shared_engine

TEST_CARDS = ["4000001234567890", "4111111111111111"]


def payment_body(card: str = TEST_CARDS[1]) -> dict:
    return {"card_number": card, "amount": "42.50", "currency": "GBP", "merchant": "Shop"}


def texts(at) -> str:
    """Everything the page rendered as text (to scan for card numbers)."""
    parts = []
    for kind in ("markdown", "caption", "error", "success", "info", "warning", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label}={m.value}" for m in at.metric]
    parts += [str(e.value) for e in at.json]
    return "\n".join(parts)


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def button(at, label: str):
    return next(b for b in at.button if b.label == label)


def colour(tile) -> str:
    """The colour st.metric gives a tile's delta (GREEN, RED, GRAY)."""
    return MetricProto.MetricColor.Name(tile.proto.color)


def unlock(at, prefix: str, token: str = UI_ADMIN_TOKEN) -> None:
    """Enter the admin token in the page's prompt (``prefix``: "admin" or "tune")."""
    at.text_input(key=f"{prefix}_admin_token").set_value(token)
    at.button(key=f"{prefix}_admin_unlock").click().run()


def test_app_opens_on_the_live_dashboard(shared, app):
    at = app()
    assert at.title[0].value == "Live dashboard"


def test_submit_page_authorizes_a_payment_and_never_shows_the_card(shared, app):
    at = app("submit")
    at.text_input(key="submit_card_number").set_value(TEST_CARDS[1])
    at.text_input(key="submit_amount").set_value("42.50")
    at.text_input(key="submit_merchant").set_value("Corner Cafe")
    at.selectbox(key="submit_channel").set_value("pos")
    button(at, "Authorize payment").click().run()
    assert not at.exception
    assert shared.stats().total == 1
    stored = shared.get_transaction(shared.latest_transaction_id())
    assert stored.merchant == "Corner Cafe" and stored.channel == "pos"
    assert stored.status in at.subheader[0].value
    assert float(metric(at, "Risk score")) == round(stored.score, 3)
    assert TEST_CARDS[1] not in texts(at)
    assert at.session_state["inspect_pending_id"] == str(stored.id)
    assert not at.json  # the JSON answer is drawn only once its expander is opened
    at.session_state["submit_json"] = True
    at.run()
    assert json.loads(at.json[0].value)["transaction_id"] == str(stored.id)
    assert TEST_CARDS[1] not in texts(at) and shared.stats().total == 1  # opening re-sent nothing


def test_submit_page_shows_the_engines_validation_messages(shared, app):
    at = app("submit")
    at.text_input(key="submit_card_number").set_value("4111x")
    at.text_input(key="submit_amount").set_value("12.345")
    button(at, "Authorize payment").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "card_number" in errors and "amount" in errors
    assert "4111x" not in errors and "12.345" not in errors
    assert shared.stats().total == 0


def test_inspect_is_prefilled_with_the_latest_and_looks_up_any_id(seeded, app):
    result = seeded.authorize(payment_body(card=TEST_CARDS[0]))
    at = app("inspect")
    assert at.text_input(key="inspect_id").value == str(result.transaction_id)
    assert metric(at, "Card") == "400000******7890"
    assert metric(at, "Source") == "live"
    assert any("payment.decided" in e.label for e in at.expander)
    assert TEST_CARDS[0] not in texts(at)
    shown = dict(at.table[0].value[["attribute", "value"]].itertuples(index=False))
    assert shown["payments_per_card_24h"] == "0" and shown["amount_in_gbp"] == "42.50"

    run_row = seeded.store.query("SELECT min(id) FROM transactions WHERE run_id = 1")[0][0]
    at.text_input(key="inspect_id").set_value(str(run_row))
    button(at, "Look up").click().run()
    assert metric(at, "Source") == "run 1"
    assert any("simulation.decided" in e.label for e in at.expander)

    at.text_input(key="inspect_id").set_value("not-a-transaction")
    button(at, "Look up").click().run()
    assert "not found" in at.error[0].value


def test_live_dashboard_shows_kpis_charts_and_filters(seeded, app):
    seeded.authorize(payment_body())
    at = app()
    assert metric(at, "Payments") == "6,001"
    # live (wall-clock) and simulated time are not drawn on one axis
    assert len(at.get("plotly_chart")) == 2
    assert "not drawn over time" in at.info[0].value
    at.selectbox(key="live_run").set_value("live").run()
    assert metric(at, "Payments") == "1"
    keys = {c.key for c in at.get("plotly_chart")}
    assert {"live_chart_approval", "live_chart_latency"} <= keys
    assert any("wall-clock time" in c.value for c in at.caption)
    at.selectbox(key="live_run").set_value(1).run()
    assert metric(at, "Payments") == "6,000"
    assert len(at.get("plotly_chart")) == 4
    assert any("simulated time, buckets of 1 hour" in c.value for c in at.caption)
    at.multiselect(key="live_channels").set_value(["pos"]).run()
    pos = seeded.store.query(
        "SELECT count(*) FROM transactions WHERE run_id = 1 AND channel = 'pos'"
    )
    assert metric(at, "Payments") == f"{pos[0][0]:,}"
    at.selectbox(key="live_range").set_value("Latest 24 hours").run()
    assert int(metric(at, "Payments").replace(",", "")) < pos[0][0]
    assert not at.exception


def test_empty_database_offers_a_one_click_demo_seed(shared, app):
    at = app()
    assert at.info and "empty" in at.info[0].value
    at.button(key="live_demo_seed").click().run()
    assert not at.exception
    assert len(shared.list_runs()) == 1
    assert metric(at, "Payments") == "20,000"


def test_tuning_slider_changes_the_backtest_and_apply_reset_work(seeded, app):
    at = app("tuning")
    before = at.table[0].value.set_index("metric")
    assert (before["active"] == before["candidate"]).all()

    at.toggle(key="tune_score_enabled").set_value(True).run()
    at.slider(key="tune_score_threshold").set_value(0.45).run()
    after = at.table[0].value.set_index("metric")
    assert after.loc["Approval rate", "active"] == before.loc["Approval rate", "active"]
    assert after.loc["Approval rate", "candidate"] != before.loc["Approval rate", "candidate"]
    assert (
        after.loc["Fraud caught (recall)", "candidate"]
        != after.loc["Fraud caught (recall)", "active"]
    )
    # the cost waterfall, the curve, recall per scenario and the overlap of the block rules
    assert len(at.get("plotly_chart")) == 4

    at.slider(key="tune_score_threshold").set_value(0.7).run()
    looser = at.table[0].value.set_index("metric")
    assert looser.loc["Approval rate", "candidate"] != after.loc["Approval rate", "candidate"]

    # leaving the page and coming back keeps the candidate being edited
    at.switch_page("workbench/pages/admin.py").run()
    at.switch_page("workbench/pages/tuning.py").run()
    assert at.slider(key="tune_score_threshold").value == 0.7
    assert at.table[0].value.set_index("metric").equals(looser)

    version = seeded.active_policy().version
    unlock(at, "tune")
    assert at.button(key="tune_apply").disabled  # not before the confirmation
    at.checkbox(key="tune_confirm").check().run()
    at.button(key="tune_apply").click().run()
    active = seeded.active_policy()
    assert active.version == version + 1 and active.knobs.score_threshold == 0.7
    assert "now active" in at.success[0].value
    applied = at.table[0].value.set_index("metric")
    assert (applied["active"] == applied["candidate"]).all()

    at.button(key="tune_reset").click().run()
    assert seeded.active_policy().same_rules_as(DEFAULT_POLICY)
    assert at.toggle(key="tune_score_enabled").value is False
    assert not at.exception


def test_tuning_counts_the_labels_known_as_of_a_date(seeded, app):
    at = app("tuning")
    assert at.datetime_input(key="tune_labels_as_of").value is None  # default: every label
    assert len(at.table) == 2 and "Known then vs every label" not in texts(at)  # counts, money
    every = seeded.backtest(seeded.active_policy(), RowFilter()).candidate
    shown = at.table[0].value.set_index("metric")
    assert shown.loc["Fraud caught (recall)", "candidate"] == f"{every.recall:.2%}"

    # a 5-day run from Jan 1; disputes come 2 days + a median 40 days later: some are in by then
    as_of = datetime(2026, 2, 5)
    at.datetime_input(key="tune_labels_as_of").set_value(as_of).run()
    assert not at.exception
    known = seeded.backtest(seeded.active_policy(), RowFilter(labels_as_of=as_of)).candidate
    assert 0 < known.fraud < every.fraud
    # the backtest counts the labels known then...
    shown = at.table[0].value.set_index("metric")
    assert shown.loc["Fraud caught (recall)", "candidate"] == f"{known.recall:.2%}"
    assert shown.loc["False declines", "candidate"] == f"{known.false_declines:,}"
    # ...and says what they hide, beside every label
    gap = at.table[1].value.set_index("metric")
    assert gap.loc["Fraud rows"].tolist() == [
        f"{known.fraud:,}",
        f"{every.fraud:,}",
        f"{known.fraud - every.fraud:+,}",
    ]
    assert gap.loc["Fraud caught", "known then"] == f"{known.fraud_caught:,}"
    assert gap.loc["Fraud caught", "all labels"] == f"{every.fraud_caught:,}"
    assert "2026-02-05 00:00 UTC" in texts(at)

    at.datetime_input(key="tune_labels_as_of").set_value(None).run()
    assert len(at.table) == 2
    shown = at.table[0].value.set_index("metric")
    assert shown.loc["Fraud caught (recall)", "candidate"] == f"{every.recall:.2%}"


def wait_for_run(engine, run_id: int) -> None:
    """Wait until a background run leaves 'running' (bounded; not a timing assertion)."""
    for _ in range(600):
        if engine.get_run(run_id).status != "running":
            return
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def test_simulations_page_starts_runs_and_compares_two(shared, app):
    at = app("simulations")
    defaults = SimulationParams.model_fields  # the same defaults as the API and the CLI
    assert at.slider(key="sim_fraud_rate").value == defaults["fraud_rate"].default
    assert at.number_input(key="sim_days").value == defaults["days"].default
    at.number_input(key="sim_rows").set_value(3000)
    at.number_input(key="sim_days").set_value(2)
    at.number_input(key="sim_seed").set_value(5)
    button(at, "Start run").click().run()
    assert not at.exception
    run_id = at.session_state["sim_watch"]
    wait_for_run(shared, run_id)
    at.run()
    assert shared.get_run(run_id).status == "completed"
    assert shared.get_run(run_id).params["rows"] == 3000
    assert any("completed" in s.value for s in at.success)
    assert len(at.dataframe[0].value) == 1

    assert shared.get_run(run_id).params["difficulty"] == defaults["difficulty"].default
    assert at.selectbox(key="sim_difficulty").options == ["easy", "realistic", "hard"]

    at.number_input(key="sim_rows").set_value(2000)
    at.slider(key="sim_fraud_rate").set_value(0.1)
    at.selectbox(key="sim_difficulty").set_value("hard")
    at.number_input(key="sim_cards").set_value(80)
    button(at, "Start run").click().run()
    second = at.session_state["sim_watch"]
    wait_for_run(shared, second)
    params = shared.get_run(second).params
    assert (params["difficulty"], params["cards"], params["merchants"]) == ("hard", 80, None)
    at.run()
    runs = at.dataframe[0].value
    assert len(runs) == 2
    compare = at.table[0].value
    assert list(compare.columns) == ["parameter / result", "run 1", "run 2"]
    assert {"2,000", "3,000"} <= set(compare.loc[compare["parameter / result"] == "rows"].iloc[0])
    assert len(at.get("plotly_chart")) == 1


def test_admin_reset_needs_confirmation(seeded, app):
    at = app("admin")
    assert metric(at, "Payments stored") == "6,000"
    assert str(seeded.store.path) in " ".join(m.value for m in at.markdown)
    unlock(at, "admin")
    assert at.button(key="admin_reset").disabled  # nothing to click before confirming

    at.checkbox(key="admin_confirm").check().run()
    at.button(key="admin_reset").click().run()
    assert seeded.stats().total == 0 and seeded.list_runs() == []
    assert "deleted" in at.success[0].value
    assert metric(at, "Payments stored") == "0"
    assert at.checkbox(key="admin_confirm").value is False


def test_tuning_on_unlabelled_live_traffic_offers_labelled_data(shared, app):
    shared.authorize(payment_body())
    at = app("tuning")
    assert "no ground truth" in at.warning[0].value
    assert len(at.get("plotly_chart")) == 0
    at.button(key="tune_demo_seed_labels").click().run()
    assert len(shared.list_runs()) == 1
    # the cost waterfall, the curve, recall per scenario, the overlap of the block rules
    assert not at.warning and len(at.get("plotly_chart")) == 4


def test_tuning_rejects_an_invalid_candidate_without_crashing(seeded, app):
    at = app("tuning")
    for name in ("device", "ip", "amount", "velocity"):
        at.number_input(key=f"tune_weight_{name}").set_value(0.0)
    at.run()
    assert not at.exception
    assert "weight" in at.error[0].value
    version = seeded.active_policy().version
    unlock(at, "tune")
    # nothing invalid can be confirmed, applied or saved
    assert at.checkbox(key="tune_confirm").disabled and at.button(key="tune_apply").disabled
    assert at.button(key="tune_save").disabled
    assert seeded.active_policy().version == version


def test_tiles_are_compact_with_the_exact_value_on_hover(seeded, app):
    seeded.simulate(seeded.list_runs()[0].params | {"rows": 100_000, "seed": 12})
    at = app()
    payments = next(m for m in at.metric if m.label == "Payments")
    assert payments.value == "106K"
    assert payments.proto.help == "Exactly 106,000."
    assert metric(at, "Approval rate").endswith("%") and len(metric(at, "Approval rate")) <= 6


def test_tuning_tiles_show_no_signed_zero_for_an_unchanged_metric(seeded, app):
    at = app("tuning")
    tiles = {m.label: m for m in at.metric}
    compared = {"Approval rate", "Fraud caught", "Fraud loss", "False declines"}
    assert set(tiles) == compared | {"Total cost, candidate", "Total cost, active"}
    for tile in (tiles[label] for label in [*compared, "Total cost, candidate"]):
        # candidate == active: a grey 0, no "+0.00" arrow
        assert (tile.proto.delta, colour(tile)) == ("0", "GRAY"), tile.label
    at.number_input(key="tune_amount_threshold").set_value(50.0).run()
    tiles = {m.label: m for m in at.metric}
    # lower is better for fraud loss and false declines: their fall is green, their rise red
    assert tiles["Fraud loss"].proto.delta.startswith("-")
    assert colour(tiles["Fraud loss"]) == "GREEN"
    assert tiles["False declines"].proto.delta.startswith("+")
    assert colour(tiles["False declines"]) == "RED"
    assert tiles["Approval rate"].proto.delta.startswith("-")
    assert colour(tiles["Approval rate"]) == "RED"


def test_tuning_prices_the_backtest_with_the_cost_model_it_shows(seeded, app):
    """The money section is Engine.backtest priced with the page's cost model: its inputs
    re-price both policies, and the tiles and the table show the engine's exact totals."""
    at = app("tuning")
    assert "In money (GBP)" in texts(at)
    at.number_input(key="tune_amount_threshold").set_value(50.0).run()
    at.selectbox(key="tune_currency").set_value("EUR")
    at.number_input(key="tune_capacity").set_value(20)
    at.number_input(key="tune_fee").set_value(25.0).run()
    assert not at.exception
    costs = CostModel(currency="EUR", chargeback_fee=Decimal("25.00"), review_capacity=20)
    expected = seeded.backtest(at.session_state["tune_candidate"], RowFilter(), costs)
    candidate, active = expected.candidate.costs, expected.active.costs
    assert "In money (EUR)" in texts(at)
    tile = next(m for m in at.metric if m.label == "Total cost, candidate")
    assert tile.value == formats.money(candidate.total)
    assert tile.proto.delta == formats.delta_money(candidate.total, active.total)
    assert metric(at, "Total cost, active") == formats.money(active.total)
    priced = at.table[1].value.set_index("cost")
    assert priced.loc["Total cost"].tolist() == [
        f"{active.total:,.2f}",
        f"{candidate.total:,.2f}",
        f"{expected.cost_difference.total:+,.2f}",
    ]
    assert priced.loc["Chargeback fees", "candidate"] == f"{25 * candidate.approved_fraud:,.2f}"
    assert "tune_chart_costs" in {c.key for c in at.get("plotly_chart")}


# --- admin acts need PTSIM_ADMIN_TOKEN, entered once per browser session (issue 11) ---


@pytest.mark.parametrize("admin_token", [None])
def test_without_a_configured_token_admin_controls_are_disabled_and_say_how(seeded, app):
    version = seeded.active_policy().version
    at = app("admin")
    assert admin_gate.NOT_CONFIGURED in [i.value for i in at.info]
    assert "set PTSIM_ADMIN_TOKEN and restart" in admin_gate.NOT_CONFIGURED
    assert at.button(key="admin_reset").disabled and at.button(key="admin_backup").disabled
    assert at.checkbox(key="admin_confirm").disabled
    assert not [t for t in at.text_input if t.key and t.key.endswith("_admin_token")]
    at.switch_page("workbench/pages/tuning.py").run()
    assert admin_gate.NOT_CONFIGURED in [i.value for i in at.info]
    assert at.button(key="tune_apply").disabled and at.button(key="tune_reset").disabled
    assert at.checkbox(key="tune_confirm").disabled
    assert not at.button(key="tune_revert").disabled  # local to the page: no admin act
    assert seeded.stats().total == 6000 and seeded.active_policy().version == version


def test_a_configured_token_not_yet_entered_keeps_controls_disabled_and_asks(seeded, app):
    at = app("admin")
    assert at.text_input(key="admin_admin_token").proto.type == TextInputProto.PASSWORD
    assert admin_gate.ASK in [c.value for c in at.caption]
    assert at.button(key="admin_reset").disabled and at.button(key="admin_backup").disabled
    at.switch_page("workbench/pages/tuning.py").run()
    assert at.button(key="tune_apply").disabled and at.button(key="tune_reset").disabled
    assert at.text_input(key="tune_admin_token").proto.type == TextInputProto.PASSWORD


def test_a_wrong_token_is_refused_and_nothing_happens(seeded, app):
    version = seeded.active_policy().version
    at = app("admin")
    unlock(at, "admin", token=UI_ADMIN_TOKEN + "x")
    assert admin_gate.WRONG in [e.value for e in at.error]
    assert at.button(key="admin_reset").disabled and at.checkbox(key="admin_confirm").disabled
    assert at.text_input(key="admin_admin_token").value == ""  # not kept in the session
    at.switch_page("workbench/pages/tuning.py").run()
    unlock(at, "tune", token="")
    assert admin_gate.WRONG in [e.value for e in at.error]
    assert at.button(key="tune_apply").disabled
    assert seeded.stats().total == 6000 and seeded.active_policy().version == version
    assert UI_ADMIN_TOKEN not in texts(at)


def test_repeated_wrong_tokens_are_throttled_even_before_a_right_one(tmp_path, app):
    """The dashboard's prompt draws on the engine's per-client budget of wrong tokens (shared
    with the API's admin routes): past it, even the right token is refused unchecked."""
    engine = Engine.open(
        tmp_path / "throttle.duckdb", card_key="", admin_token=UI_ADMIN_TOKEN,
        admin_failure_limit="2/min",
    )  # fmt: skip
    install_shared_engine(engine)
    try:
        at = app("admin")
        for _ in range(2):  # the budget: a minute's worth, two wrong tokens
            unlock(at, "admin", token="wrong")
            assert admin_gate.WRONG in [e.value for e in at.error]
        unlock(at, "admin", token="wrong")
        unlock(at, "admin")  # the right token, while throttled
        refusals = [e.value for e in at.error]
        assert any("Too many wrong admin tokens" in text for text in refusals), refusals
        assert at.button(key="admin_reset").disabled
        assert engine.admin_failures.wait("dashboard") > 0  # the API's routes see the same budget
    finally:
        close_shared_engine()


def test_the_right_token_unlocks_admin_acts_for_the_whole_session(seeded, app):
    at = app("tuning")
    unlock(at, "tune")
    assert not at.error and not at.button(key="tune_reset").disabled
    assert not at.checkbox(key="tune_confirm").disabled
    at.checkbox(key="tune_confirm").check().run()
    assert not at.button(key="tune_apply").disabled
    assert UI_ADMIN_TOKEN not in texts(at)
    assert UI_ADMIN_TOKEN not in [str(v) for v in at.session_state.values()]
    version = seeded.active_policy().version
    at.button(key="tune_reset").click().run()
    assert seeded.active_policy().version == version + 1
    # entered once: the Admin page is unlocked too
    at.switch_page("workbench/pages/admin.py").run()
    assert not at.button(key="admin_backup").disabled
    at.button(key="admin_backup").click().run()
    assert "Backup written" in at.success[0].value
    at.checkbox(key="admin_confirm").check().run()
    at.button(key="admin_reset").click().run()
    assert seeded.stats().total == 0
    # locking again disables the controls
    at.button(key="admin_admin_lock").click().run()
    assert at.button(key="admin_reset").disabled


def _guarded_button_page() -> None:
    """A page whose admin button is enabled even when locked (as a crafted client would
    trigger it): the act must still not run."""
    import streamlit as st

    from workbench import admin_gate
    from workbench.ui import engine

    eng = engine()

    def act() -> None:
        st.session_state["acted"] = True

    admin_gate.admin_access(eng, "probe")
    st.button("Act", key="probe_act", on_click=admin_gate.admin_only(eng, act))


@pytest.mark.parametrize("admin_token", [UI_ADMIN_TOKEN, None])
def test_admin_acts_are_checked_on_the_server_not_only_by_disabled_buttons(shared, admin_token):
    at = AppTest.from_function(_guarded_button_page, default_timeout=30).run()
    at.button(key="probe_act").click().run()
    assert "acted" not in at.session_state
    expected = admin_gate.REFUSED if admin_token else admin_gate.NOT_CONFIGURED
    assert expected in [e.value for e in at.error]
    if admin_token:
        at.text_input(key="probe_admin_token").set_value(admin_token)
        at.button(key="probe_admin_unlock").click().run()
        at.button(key="probe_act").click().run()
        assert at.session_state["acted"] is True


# --- lists: see them, upload or replace one behind the admin gate (issue 12) ---


def test_lists_are_uploaded_behind_the_admin_gate_and_shown(shared, app):
    at = app("admin")
    assert "No lists yet" in texts(at)
    assert at.button(key="lists_save").disabled  # locked until the token is entered

    unlock(at, "admin")
    at.text_input(key="lists_name").set_value("risky_bins")
    at.selectbox(key="lists_kind").set_value("bin")
    at.text_area(key="lists_items").set_value("412345\n\n498765\n412345\n")
    at.button(key="lists_save").click().run()
    assert not at.exception, at.exception
    assert "List risky_bins saved as version 1 (2 items)." in [s.value for s in at.success]
    assert shared.lists.page("risky_bins")[1] == ["412345", "498765"]
    table = at.dataframe[0].value
    assert table.to_dict("records")[0]["list"] == "@risky_bins"
    assert (table.iloc[0]["kind"], table.iloc[0]["items"], table.iloc[0]["version"]) == (
        "bin",
        2,
        1,
    )
    assert "412345\n498765" in at.code[0].value

    at.text_input(key="lists_name").set_value("risky_bins")
    at.selectbox(key="lists_kind").set_value("bin")
    at.text_area(key="lists_items").set_value("498765\n412345")
    at.button(key="lists_save").click().run()
    assert "unchanged" in at.success[0].value and len(shared.lists.versions("risky_bins")) == 1


def test_a_refused_list_names_the_line_and_stores_nothing(shared, app):
    at = app("admin")
    unlock(at, "admin")
    at.text_input(key="lists_name").set_value("stolen")
    at.selectbox(key="lists_kind").set_value("card")
    at.text_area(key="lists_items").set_value(f"{TEST_CARDS[1]}\n\n12")
    at.button(key="lists_save").click().run()
    assert [e.value for e in at.error] == [
        "Line 3 of the items must be a card number of 12–19 digits."
    ]
    assert shared.lists.summaries() == []


def test_a_card_list_shows_fingerprints_never_numbers(shared, app):
    shared.lists.put("stolen", "card", TEST_CARDS)
    at = app("admin")
    shown = at.code[0].value
    assert len(shown.splitlines()) == 2 and all(len(line) == 32 for line in shown.splitlines())
    everything = texts(at) + shown + at.dataframe[0].value.to_string()
    assert not any(card in everything for card in TEST_CARDS)
    assert "card fingerprints" in texts(at)


def _lists_drawn_enabled() -> None:
    """The lists section with its button enabled in a locked session (a crafted client)."""
    from workbench.lists_section import lists_section
    from workbench.ui import engine

    lists_section(engine(), unlocked=True)


def test_a_locked_session_cannot_save_a_list_by_sending_the_click(shared):
    at = AppTest.from_function(_lists_drawn_enabled, default_timeout=30).run()
    at.text_input(key="lists_name").set_value("vip")
    at.text_area(key="lists_items").set_value("Amazon")
    at.button(key="lists_save").click().run()
    assert shared.lists.summaries() == []
    assert admin_gate.REFUSED in at.session_state["admin_gate_notice"]


# --- the rule workbench: rules as text, drafts, per-rule figures, activation (issue 12) ---

VALID_RULES = """name: Big spender
action: block
when: :amount: > 400
  and :risk_score: >= 0.5

name: Risky device
action: review
when: :device_trust_score: < 0.2
"""


def rules_mode(at) -> None:
    at.radio(key="tune_mode").set_value("Rules").run()


def rule_table(at):
    return next(d.value for d in at.dataframe if "unique fraud" in d.value.columns)


def test_switching_to_rules_prefills_the_active_policy_and_shows_the_catalogue(seeded, app):
    at = app("tuning")
    assert at.title[0].value == "Rule workbench"
    rules_mode(at)
    text = at.text_area(key="tune_rules_text").value
    assert "name: High amount flagged by risk heuristic." in text and "action: block" in text
    catalogue = next(d.value for d in at.dataframe if "definition" in d.value.columns)
    assert {":amount:", ":payments_per_card_24h:", ":random:"} <= set(catalogue["name"])
    # the candidate is the knob candidate written out: nothing differs from the active policy
    compared = at.table[0].value.set_index("metric")
    assert (compared["active"] == compared["candidate"]).all()


def test_invalid_rule_text_shows_the_error_at_its_line_and_stores_nothing(seeded, app):
    at = app("tuning")
    rules_mode(at)
    versions = len(seeded.policy_history())
    at.text_area(key="tune_rules_text").set_value(
        VALID_RULES.replace(
            ":device_trust_score: < 0.2", ":device_trust_score: < 0.2\n  or :nope: = 1"
        )
    ).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors == ["Line 9, column 6 (rules[1].when): unknown attribute :nope:"], errors
    assert "   9 |   or :nope: = 1\n     |      ^" in [c.value for c in at.code]
    assert not at.table and not at.get("plotly_chart")  # nothing backtested
    assert at.button(key="tune_save").disabled
    unlock(at, "tune")
    assert at.checkbox(key="tune_confirm").disabled and at.button(key="tune_apply").disabled
    assert len(seeded.policy_history()) == versions and seeded.active_policy().version == 1

    at.text_area(key="tune_rules_text").set_value("name: only a name\nactoin: block").run()
    assert [e.value for e in at.error] == [
        "Line 2: expected 'name:', 'action:', 'when:' or 'flags_risk:' (only a condition "
        "continues on the next lines; a blank line ends a rule)"
    ]


def test_a_valid_draft_is_saved_as_a_new_version_not_active_and_backtested(seeded, app):
    at = app("tuning")
    rules_mode(at)
    at.text_area(key="tune_rules_text").set_value(VALID_RULES).run()
    assert not at.error, [e.value for e in at.error]
    table = rule_table(at)
    assert list(table["rule"]) == ["Big spender", "Risky device"]
    assert list(table.columns) == [
        "#", "rule", "action", "matched", "decided", "fraud caught", "unique fraud",
        "false positives", "amount decided (GBP)",
    ]  # fmt: skip
    result = seeded.backtest(
        seeded.draft_policy(
            __import__("workbench.rule_text").rule_text.rules(
                __import__("workbench.rule_text").rule_text.parse(VALID_RULES)
            )
        )
    )
    for shown, figures in zip(table.to_dict("records"), result.rules, strict=True):
        assert (shown["matched"], shown["fraud caught"], shown["unique fraud"]) == (
            figures.matched, figures.fraud_decided, figures.unique_fraud,
        )  # fmt: skip
        assert shown["false positives"] == figures.false_positives and figures.matched > 0
    assert "tune_chart_overlap" in {c.key for c in at.get("plotly_chart")}

    at.text_input(key="tune_note").set_value("big spenders").run()
    at.button(key="tune_save").click().run()
    stored = seeded.policy_history()[0]
    assert stored.version == 2 and stored.note == "big spenders"
    assert [r.name for r in stored.rules] == ["Big spender", "Risky device"]
    assert seeded.active_policy().version == 1  # saved, not active
    assert "Draft saved as policy version 2 (not active)" in at.success[0].value
    history = next(d.value for d in at.dataframe if "created_at" in d.value.columns)
    assert history.to_dict("records")[0] | {"created_at": None} == {
        "version": 2, "created_at": None, "note": "big spenders", "rules": 2, "active": "",
    }  # fmt: skip
    assert history.set_index("version").loc[1, "active"] == "● active"


CHALLENGE_RULES = """name: Step up big
action: challenge
when: :amount: > 200"""


def test_the_challenge_model_is_edited_saved_with_the_draft_and_backtested(seeded, app):
    from engine.challenge import ChallengeModel
    from workbench import rule_text

    at = app("tuning")
    rules_mode(at)
    at.text_area(key="tune_rules_text").set_value(CHALLENGE_RULES).run()
    for name, value in (("ecommerce_pass_rate", 0.5), ("other_pass_rate", 0.6),
                        ("fraud_pass_rate", 0.2)):  # fmt: skip
        at.number_input(key=f"tune_challenge_{name}").set_value(value).run()
    assert not at.error, [e.value for e in at.error]
    model = ChallengeModel(ecommerce_pass_rate=0.5, other_pass_rate=0.6, fraud_pass_rate=0.2)
    expected = seeded.backtest(
        seeded.draft_policy(rule_text.rules(rule_text.parse(CHALLENGE_RULES)), challenge=model)
    )
    default = seeded.backtest(
        seeded.draft_policy(rule_text.rules(rule_text.parse(CHALLENGE_RULES)))
    )
    assert expected.candidate.challenge_abandoned != default.candidate.challenge_abandoned
    shown = {m.label: m.value for m in at.metric}
    assert shown["Approval rate"] == f"{expected.candidate.approval_rate:.1%}", shown
    assert f"{expected.candidate.approval_rate:.1%}" != f"{default.candidate.approval_rate:.1%}"
    at.button(key="tune_save").click().run()
    assert seeded.policy_history()[0].challenge == model  # stored with the version


def test_activating_a_saved_draft_needs_the_token_and_the_confirmation(seeded, app):
    at = app("tuning")
    rules_mode(at)
    at.text_area(key="tune_rules_text").set_value(VALID_RULES).run()
    at.button(key="tune_save").click().run()
    assert at.button(key="tune_apply").disabled and at.checkbox(key="tune_confirm").disabled
    unlock(at, "tune")
    assert at.button(key="tune_apply").disabled  # unlocked, not yet confirmed
    assert seeded.active_policy().version == 1
    at.checkbox(key="tune_confirm").check().run()
    at.button(key="tune_apply").click().run()
    active = seeded.active_policy()
    assert active.version == 2  # the saved draft itself, no copy
    assert len(seeded.policy_history()) == 2
    assert "Policy version 2 is now active." in at.success[0].value
    assert at.checkbox(key="tune_confirm").value is False
    applied = at.table[0].value.set_index("metric")
    assert (applied["active"] == applied["candidate"]).all()
    assert at.radio(key="tune_mode").value == "Rules"  # a rules policy has no knobs


def test_a_stored_version_loads_into_the_editor(seeded, app):
    seeded.create_policy([{"name": "Night", "action": "review", "when": ":hour_of_day: < 5"}])
    at = app("tuning")
    at.selectbox(key="tune_load_version").set_value(2)
    at.button(key="tune_load").click().run()
    assert at.radio(key="tune_mode").value == "Rules"
    assert at.text_area(key="tune_rules_text").value == (
        "name: Night\naction: review\nwhen: :hour_of_day: < 5\n"
    )
    assert list(rule_table(at)["rule"]) == ["Night"]
