"""Compare policies: any two stored policy versions over the same payments, in money, with
paired confidence intervals (what POST /compare answers)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import streamlit as st

from engine.policy import Policy
from workbench import cache, money_charts
from workbench.comparison_view import tiles, verdict
from workbench.cost_inputs import cost_model_inputs
from workbench.ui import (
    TIME_RANGES,
    engine,
    kpi_row,
    offer_demo_seed,
    row_filter,
    run_choices,
    run_label,
)

st.title("Compare policies")
st.caption(
    "Two policies re-decide the same stored payments with the same stored random draws; each "
    "difference comes with a paired day-block bootstrap interval, so you can tell a real "
    "improvement from day-to-day noise."
)
eng = engine()
if offer_demo_seed("compare", eng):
    st.stop()


def policy_label(policy: Policy, active: int) -> str:
    note = f" — {policy.note}" if policy.note else ""
    return f"v{policy.version}{' (active)' if policy.version == active else ''}{note}"


def choose_policies() -> tuple[Policy, Policy] | None:
    policies = eng.policy_history()
    if len(policies) < 2:
        st.info(
            "There is only one policy version. Write a candidate on the Rule workbench page and "
            "save it as a draft, then compare it here with the active policy."
        )
        return None
    active = eng.active_policy().version
    by_version = {p.version: p for p in policies}
    versions = list(by_version)
    label = lambda v: policy_label(by_version[v], active)  # noqa: E731
    left, right = st.columns(2)
    a = left.selectbox(
        "Policy A", versions, index=versions.index(active), format_func=label, key="compare_a"
    )
    others = [v for v in versions if v != a]
    b = right.selectbox(
        "Policy B", versions, index=versions.index(others[0]), format_func=label, key="compare_b"
    )
    return by_version[a], by_version[b]


def selection():
    options = eng.filter_options()
    left, middle, right = st.columns(3)
    run = left.selectbox("Payments", run_choices(options), format_func=run_label, key="compare_run")
    time_range = middle.selectbox("Time range", list(TIME_RANGES), key="compare_range")
    as_of = right.date_input(
        "Labels known as of",
        value=None,
        key="compare_as_of",
        help="Count only the disputes known by the end of this day: what an analyst would have "
        "seen then. Empty: the ground truth.",
    )
    filters = row_filter(run, time_range)
    if as_of is not None:
        end_of_day = datetime.combine(as_of, time(23, 59, 59), tzinfo=UTC)
        filters = filters.model_copy(update={"labels_as_of": end_of_day})
    return filters


chosen = choose_policies()
if chosen is None:
    st.stop()
filters = selection()
costs = cost_model_inputs("compare")
result = cache.compare(eng, *chosen, filters, costs)
if result.a.rows == 0:
    st.info("No stored payments match this selection.")
    st.stop()
verdict(result)
kpi_row(tiles(result))
st.table(money_charts.differences_table(result), hide_index=True)
st.caption(
    f"{result.a.rows:,} payments re-decided under both policies in {result.elapsed_ms:,.0f} ms · "
    f"{result.interval.method}, {result.interval.replicates:,} replicates over "
    f"{result.interval.blocks} days (seed {result.interval.seed})"
    + (
        f" · {result.unpriced:,} payments without a reference rate add no amount"
        if result.unpriced
        else ""
    )
)
left, right = st.columns(2)
left.plotly_chart(money_charts.cost_components_chart(result), key="compare_chart_costs")
right.plotly_chart(money_charts.money_differences_chart(result), key="compare_chart_diffs")
