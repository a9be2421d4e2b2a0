"""Live dashboard: KPIs and charts of the selected traffic, refreshing itself while open."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from workbench import charts
from workbench.ui import (
    TIME_RANGES,
    engine,
    ms,
    offer_demo_seed,
    pct,
    row_filter,
    run_choices,
    run_label,
)

st.title("Live dashboard")
eng = engine()
if offer_demo_seed("live", eng):
    st.stop()

options = eng.filter_options()
with st.container(border=True):
    cols = st.columns([2, 2, 3, 3, 2])
    run = cols[0].selectbox("Traffic", run_choices(options), format_func=run_label, key="live_run")
    time_range = cols[1].selectbox("Time range", list(TIME_RANGES), key="live_range")
    channels = cols[2].multiselect("Channels", options.channels, key="live_channels")
    currencies = cols[3].multiselect("Currencies", options.currencies, key="live_currencies")
    refresh = cols[4].selectbox(
        "Auto refresh",
        [2, 5, 10, 30, 0],
        index=1,
        format_func=lambda s: "off" if s == 0 else f"every {s} s",
        key="live_refresh",
    )
filters = row_filter(run, time_range, channels, currencies)
st.caption(
    "Time ranges end at the newest payment in the selection (simulation runs carry simulated "
    "time). Aggregated in the database; nothing but totals reaches the browser."
)


@st.fragment(run_every=timedelta(seconds=refresh) if refresh else None)
def live_panel() -> None:
    data = eng.dashboard(filters)
    k = data.kpis
    cols = st.columns(7)
    cols[0].metric("Payments", f"{k.total:,}")
    cols[1].metric("Approval rate", pct(k.approval_rate if k.total else None))
    cols[2].metric("Declined", f"{k.declined:,}")
    cols[3].metric("Average ticket", f"{k.avg_amount:,.2f}")
    cols[4].metric("p50 latency", ms(k.p50_latency))
    cols[5].metric("p95 latency", ms(k.p95_latency))
    cols[6].metric("p99 latency", ms(k.p99_latency))
    if k.total == 0:
        st.info("No payments match these filters.")
        return
    notes = [f"{k.first_at:%Y-%m-%d %H:%M} → {k.last_at:%Y-%m-%d %H:%M} UTC"]
    notes.append(f"buckets of {data.bucket}")
    if k.latency_kind:  # live latency is measured, a simulation's is modelled: say which
        notes.append(f"latency {k.latency_kind}")
    if data.series_sampled:
        notes.append("chart latency percentiles from a ~500k-row sample")
    st.caption(" · ".join(notes))
    left, right = st.columns(2)
    left.plotly_chart(charts.approval_rate_chart(data.series), key="live_chart_approval")
    right.plotly_chart(charts.latency_chart(data.series), key="live_chart_latency")
    left, right = st.columns(2)
    if data.reasons.empty:
        left.info("No declines in this selection.")
    else:
        left.plotly_chart(charts.decline_reasons_chart(data.reasons), key="live_chart_reasons")
    right.plotly_chart(charts.amount_histogram_chart(data.amounts), key="live_chart_amounts")


live_panel()
