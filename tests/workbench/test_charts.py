"""Chart builders: figures from engine results, and no streamlit import (notebooks reuse them)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pandas as pd
import pytest

from engine.config import PROJECT_ROOT
from engine.policy import Policy
from engine.service import Engine
from engine.simulation.params import SimulationParams
from workbench import charts, money_charts


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with Engine.open(tmp_path_factory.mktemp("charts") / "c.duckdb", seed=3) as eng:
        eng.simulate(SimulationParams(rows=4000, seed=3, days=3, fraud_rate=0.05))
        yield eng


def test_dashboard_figures_plot_the_engines_aggregates(engine):
    data = engine.dashboard()
    approval = charts.approval_rate_chart(data.series)
    assert list(approval.data[0].y) == list(data.series["approval_rate"])
    latency = charts.latency_chart(data.series)
    assert [t.name for t in latency.data] == ["p50", "p95", "p99"]
    reasons = charts.decline_reasons_chart(data.reasons)
    assert sum(reasons.data[0].x) == data.kpis.declined
    amounts = charts.amount_histogram_chart(data.amounts)
    assert sum(amounts.data[0].y) == data.kpis.total
    assert amounts.layout.xaxis.type == "log"


def test_the_cost_waterfall_walks_from_one_total_to_the_other(engine):
    result = engine.backtest(Policy.from_knobs(amount_threshold=50))
    a, c = result.active.costs, result.candidate.costs
    fig = money_charts.cost_waterfall(a, c, ("active", "candidate"))
    steps = fig.data[0]
    assert steps.x[0] == "active" and steps.x[-1] == "candidate"
    assert steps.measure[0] == "absolute" and steps.measure[-1] == "total"
    # the component steps add up to the change in total cost (to rounding in floats)
    assert sum(steps.y[1:-1]) == pytest.approx(float(c.total - a.total))
    assert steps.y[0] == float(a.total) and float(c.total) != float(a.total)
    table = money_charts.costs_table(a, c, ("active", "candidate")).set_index("cost")
    assert table.loc["Total cost", "change"] == f"{result.cost_difference.total:+,.2f}"
    assert table.loc["↳ cards falsely declined", "candidate"] == f"{c.false_declined_cards:,}"
    # every cost is a row: the rows above the total add up to it (what each multiplies aside)
    costs = [name for name in table.index if not name.startswith("↳") and name != "Total cost"]
    for side, breakdown in (("active", a), ("candidate", c)):
        listed = sum(Decimal(table.loc[name, side].replace(",", "")) for name in costs)
        assert listed == breakdown.total, side


def test_backtest_figures_mark_active_and_candidate(engine):
    result = engine.backtest(Policy.from_knobs(score_threshold=0.5))
    curve = charts.tradeoff_curve_chart(result)
    names = [t.name for t in curve.data]
    assert names == ["candidate, score threshold swept", "active", "candidate"]
    assert curve.data[2].x[0] == result.candidate.approval_rate
    assert curve.data[1].y[0] == result.active.recall
    scenarios = charts.scenario_recall_chart(result)
    assert list(scenarios.data[1].y) == [s.recall_candidate for s in result.scenarios]
    table = charts.comparison_table(result)
    assert list(table.columns) == ["metric", "active", "candidate", "change"]
    row = table.set_index("metric").loc["Approval rate"]
    assert row["candidate"] == f"{result.candidate.approval_rate:.2%}"


def test_the_backtest_table_shows_challenge_outcomes_when_a_policy_challenges(engine):
    plain = charts.comparison_table(engine.backtest(Policy.from_knobs(score_threshold=0.5)))
    assert "Challenged (3-D Secure)" not in set(plain["metric"])
    step_up = [{"name": "step up", "action": "challenge", "when": ":amount: > 100"}]
    result = engine.backtest(engine.draft_policy(step_up))
    table = charts.comparison_table(result).set_index("metric")
    assert table.loc["Challenged (3-D Secure)", "candidate"] == f"{result.candidate.challenged:,}"
    assert table.loc["Challenges failed", "active"] == "0"
    assert result.candidate.challenged > 0


def test_unlabelled_backtest_has_no_curve_markers(engine):
    result = engine.backtest(Policy.from_knobs(score_threshold=0.5), run="live")
    assert charts.tradeoff_curve_chart(result).data == ()
    assert charts.comparison_table(result).set_index("metric").loc["Precision", "change"] == "–"


def test_labels_known_table_puts_known_then_beside_every_label(engine):
    policy = Policy.from_knobs(score_threshold=0.5)
    every = engine.backtest(policy).candidate
    known = engine.backtest(policy, labels_as_of="2026-01-01T00:00:00").candidate  # none yet
    table = charts.labels_known_table(known, every).set_index("metric")
    assert list(table.columns) == ["known then", "all labels", "known − all"]
    assert table.loc["Fraud rows"].tolist() == ["0", f"{every.fraud:,}", f"{-every.fraud:+,}"]
    assert table.loc["Fraud caught (recall)", "known then"] == "–"  # no fraud known: no recall
    assert table.loc["Fraud caught (recall)", "known − all"] == "–"
    # fraud declined before its chargeback looked like a false decline then
    assert known.false_declines - every.false_declines == every.fraud_caught > 0
    assert table.loc["False declines", "known − all"] == f"{every.fraud_caught:+,}"


def test_run_comparison_chart_has_one_bar_group_per_run(engine):
    run = engine.list_runs()[0]
    fig = charts.run_comparison_chart({"a": run.summary, "b": run.summary})
    assert [t.name for t in fig.data] == ["a", "b"]


def test_charts_and_engine_do_not_import_front_ends():
    # One fresh interpreter for both checks (each costs an interpreter start): the engine alone
    # first, then the chart builders on top of it.
    code = (
        "import sys, engine.backtest, engine.analytics, engine.filters, engine.service\n"
        "bad = [m for m in ('streamlit', 'fastapi', 'plotly') if m in sys.modules]\n"
        "assert not bad, ('engine', bad)\n"
        "import workbench.charts\n"
        "bad = [m for m in ('streamlit', 'fastapi') if m in sys.modules]\n"
        "assert not bad, ('workbench.charts', bad)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT)


def test_a_single_payment_gets_a_time_axis_of_whole_seconds_named_by_its_kind(tmp_path):
    with Engine.open(tmp_path / "one.duckdb", seed=3, card_key="") as eng:
        eng.authorize(
            {
                "card_number": "4111111111111111",
                "amount": "9.99",
                "currency": "GBP",
                "merchant": "Shop",
            }
        )
        data = eng.dashboard(run="live")
    assert len(data.series) == 1
    for fig in (
        charts.approval_rate_chart(
            data.series, bucket=data.bucket, time_label=charts.WALL_CLOCK_TIME
        ),
        charts.latency_chart(data.series, bucket=data.bucket, time_label=charts.WALL_CLOCK_TIME),
    ):
        axis = fig.layout.xaxis
        assert axis.title.text == "wall-clock time (UTC)"
        low, high = (pd.Timestamp(v) for v in axis.range)
        assert high - low == data.bucket  # one bucket wide, not a zoom onto one instant
        # no tick format shows fractions of a second ("%L" is milliseconds)
        assert axis.tickformatstops and not any("%L" in s.value for s in axis.tickformatstops)


def test_legends_sit_under_the_plot_never_on_the_title(engine):
    result = engine.backtest(Policy.from_knobs(score_threshold=0.5))
    for fig in (
        charts.latency_chart(engine.dashboard().series),
        charts.tradeoff_curve_chart(result),
        charts.scenario_recall_chart(result),
    ):
        title, legend = fig.layout.title, fig.layout.legend
        # the title hangs from the top of the figure, the legend stands on its bottom, both in
        # figure (container) coordinates, so however many rows the legend wraps onto in a
        # narrow column, plotly grows the bottom margin instead of covering the title
        assert (title.yref, title.y, title.yanchor) == ("container", 1, "top")
        assert (legend.yref, legend.y, legend.yanchor) == ("container", 0, "bottom")


def test_point_labels_of_active_and_candidate_go_opposite_ways(engine):
    same = engine.backtest(engine.active_policy())  # candidate == active: the markers coincide
    curve = charts.tradeoff_curve_chart(same)
    positions = {t.name: t.textposition for t in curve.data if t.mode == "markers+text"}
    assert positions == {"active": "bottom center", "candidate": "top center"}


def test_decline_counts_sit_outside_their_bars_and_fit(engine):
    data = engine.dashboard()
    bars = charts.decline_reasons_chart(data.reasons)
    assert bars.data[0].textposition == "outside" and bars.data[0].cliponaxis is False
    assert bars.layout.xaxis.range[1] > data.reasons["n"].max()
