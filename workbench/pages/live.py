"""Live dashboard: KPIs and charts of the selected traffic, refreshing itself while open."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from workbench import charts, formats
from workbench.formats import Tile
from workbench.ui import (
    TIME_RANGES,
    engine,
    kpi_row,
    offer_demo_seed,
    row_filter,
    run_choices,
    run_label,
)

LATENCY_HELP = (
    "Live payments: measured time to decide and commit. Simulation runs: modelled latency."
)

st.title("Live dashboard")
eng = engine()
if offer_demo_seed("live", eng):
    st.stop()

options = eng.filter_options()
# a row that wraps where the page is narrow (two lines at 1024 px, one from 1440 px), each
# filter wide enough for its value ("Simulation run 12"), not five columns squeezed to "Simu…"
with st.container(border=True, horizontal=True, gap="medium"):
    run = st.selectbox(
        "Traffic", run_choices(options), format_func=run_label, key="live_run", width=190
    )
    time_range = st.selectbox("Time range", list(TIME_RANGES), key="live_range", width=160)
    refresh = st.selectbox(
        "Auto refresh",
        [2, 5, 10, 30, 0],
        index=1,
        format_func=lambda s: "off" if s == 0 else f"every {s} s",
        key="live_refresh",
        width=130,
    )
    channels = st.multiselect("Channels", options.channels, key="live_channels", width=190)
    currencies = st.multiselect("Currencies", options.currencies, key="live_currencies", width=190)
filters = row_filter(run, time_range, channels, currencies)
st.caption(
    "Time ranges end at the newest payment in the selection (simulation runs carry simulated "
    "time). Aggregated in the database; nothing but totals reaches the browser."
)


def time_kind(run: object) -> tuple[bool, str]:
    """(whether the selection mixes kinds of time, the time axis label).

    Live payments carry wall-clock time and runs simulated time (January 2026 onwards): one
    axis over both would put months of nothing between them, so a mixed selection is not drawn
    over time, and every time axis names its kind of time."""
    if run == "live":
        return False, charts.WALL_CLOCK_TIME
    if run != "all":
        return False, charts.SIMULATED_TIME
    now = eng.filter_options()  # fresh on each refresh: live traffic may have arrived since
    label = charts.WALL_CLOCK_TIME if now.has_live else charts.SIMULATED_TIME
    return now.has_live and bool(now.runs), label


@st.fragment(run_every=timedelta(seconds=refresh) if refresh else None)
def live_panel() -> None:
    data = eng.dashboard(filters)
    mixed_time, time_label = time_kind(run)
    k = data.kpis
    rate = k.approval_rate if k.total else None
    kpi_row(
        [
            Tile("Payments", formats.count(k.total), formats.exact_count(k.total)),
            Tile("Approval rate", formats.percent(rate), formats.exact_percent(rate)),
            Tile("Declined", formats.count(k.declined), formats.exact_count(k.declined)),
            Tile(
                "Average ticket",
                formats.money(k.avg_amount if k.total else None),
                formats.exact_money(k.avg_amount if k.total else None),
            ),
            Tile("p50 latency", formats.milliseconds(k.p50_latency), LATENCY_HELP),
            Tile("p95 latency", formats.milliseconds(k.p95_latency), LATENCY_HELP),
            Tile("p99 latency", formats.milliseconds(k.p99_latency), LATENCY_HELP),
        ]
    )
    if k.total == 0:
        st.info("No payments match these filters.")
        return
    if mixed_time:
        st.caption(
            f"{k.first_at:%Y-%m-%d %H:%M} → {k.last_at:%Y-%m-%d %H:%M} UTC, simulated and "
            "wall-clock time mixed"
        )
        st.info(
            "All traffic mixes live payments (wall-clock time) with simulation runs (simulated "
            "time), so it is not drawn over time: choose Live traffic or a run for the time "
            "charts.",
            icon=":material/schedule:",
        )
    else:
        notes = [f"{k.first_at:%Y-%m-%d %H:%M} → {k.last_at:%Y-%m-%d %H:%M} UTC"]
        kind = time_label.removesuffix(" (UTC)")
        notes.append(f"{kind}, buckets of {formats.span(data.bucket)}")
        if k.latency_kind:  # live latency is measured, a simulation's is modelled: say which
            notes.append(f"latency {k.latency_kind}")
        if data.series_sampled:
            notes.append("chart latency percentiles from a ~500k-row sample")
        st.caption(" · ".join(notes))
        left, right = st.columns(2)
        left.plotly_chart(
            charts.approval_rate_chart(data.series, bucket=data.bucket, time_label=time_label),
            key="live_chart_approval",
        )
        right.plotly_chart(
            charts.latency_chart(data.series, bucket=data.bucket, time_label=time_label),
            key="live_chart_latency",
        )
    left, right = st.columns(2)
    if data.reasons.empty:
        left.info("No declines in this selection.")
    else:
        left.plotly_chart(charts.decline_reasons_chart(data.reasons), key="live_chart_reasons")
    right.plotly_chart(charts.amount_histogram_chart(data.amounts), key="live_chart_amounts")


live_panel()
