"""Shadow policies: a stored version decides every live payment too, never enforced, and is
watched against what was enforced as payments arrive (what GET /policies/shadow answers); or a
share of cards is routed to a challenger. Starting, stopping and routing are admin acts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import streamlit as st

from engine.costs import CostModel
from engine.policy import Policy
from workbench import admin_gate, money_charts
from workbench.comparison_view import tiles, verdict
from workbench.cost_inputs import cost_model_inputs
from workbench.ui import engine, kpi_row

st.title("Shadow policies")
st.caption(
    "A policy in shadow decides every live payment with the same attributes and the same random "
    "draw as the active one; its decision is stored, never enforced. Below, A is what was "
    "enforced and B the shadow, over the live payments since it started, with the metrics and "
    "paired intervals of Compare policies. A route instead lets a challenger decide a fixed "
    "share of cards (by a hash of the card fingerprint, so a card stays on one side)."
)
eng = engine()
unlocked = admin_gate.admin_access(eng, "shadow")
policies = eng.policy_history()
active = eng.active_policy().version
by_version = {p.version: p for p in policies}
versions = list(by_version)
live = eng.experiments.live


def label(version: int) -> str:
    policy: Policy = by_version[version]
    note = f" — {policy.note}" if policy.note else ""
    return f"v{version}{' (active)' if version == active else ''}{note}"


def start_shadow() -> None:
    eng.start_shadow(st.session_state["shadow_version"])


def stop_shadow() -> None:
    eng.stop_shadow()


def start_route() -> None:
    eng.route(st.session_state["route_version"], float(st.session_state["route_share"]))


def end_route() -> None:
    if live.route is not None:
        eng.route(live.route.policy.version, 0.0)


def start_and_stop(
    prefix: str,
    start: tuple[str, Callable[[], None]],
    stop: tuple[str, Callable[[], None]],
    running: bool,
) -> None:
    """The admin-only start and stop buttons of one experiment (keys ``<prefix>_start`` and
    ``<prefix>_stop``); stop only while it runs."""
    row = st.container(horizontal=True)
    for (label, act), suffix, enabled in ((start, "start", True), (stop, "stop", running)):
        row.button(
            label,
            key=f"{prefix}_{suffix}",
            disabled=not unlocked or not enabled,
            on_click=admin_gate.admin_only(eng, act),
        )


candidates = [v for v in versions if v != active] or versions
left, right = st.columns(2)
with left.container(border=True):
    st.subheader("Shadow")
    if live.shadow is None:
        st.caption("Nothing shadows live traffic.")
    else:
        st.caption(
            f"{label(live.shadow.policy.version)} shadows since "
            f"{live.shadow.started_at:%Y-%m-%d %H:%M:%S} UTC."
        )
    st.selectbox("Policy to shadow", candidates, format_func=label, key="shadow_version")
    start_and_stop("shadow", ("Start shadow", start_shadow), ("Stop shadow", stop_shadow),
                   running=live.shadow is not None)  # fmt: skip
with right.container(border=True):
    st.subheader("Champion / challenger")
    if live.route is None:
        st.caption("No route: the active policy decides every payment.")
    else:
        st.caption(
            f"{live.route.share:.0%} of cards go to {label(live.route.policy.version)} since "
            f"{live.route.started_at:%Y-%m-%d %H:%M:%S} UTC."
        )
    st.selectbox("Challenger", candidates, format_func=label, key="route_version")
    st.number_input("Share of cards", 0.0, 1.0, 0.1, 0.05, key="route_share")
    start_and_stop("route", ("Route", start_route), ("End route", end_route),
                   running=live.route is not None)  # fmt: skip

ONE_DAY = (
    "The shadow has seen payments of a single day so far: no interval yet (the intervals "
    "resample whole days)."
)
costs = cost_model_inputs("shadow")  # what GET /policies/shadow takes as query parameters
refresh = st.selectbox(
    "Auto refresh",
    [2, 5, 10, 30, 0],
    index=1,
    format_func=lambda s: "off" if s == 0 else f"every {s} s",
    key="shadow_refresh",
    width=130,
)


@st.fragment(run_every=timedelta(seconds=refresh) if refresh else None)
def shadow_panel(costs: CostModel) -> None:
    report = eng.shadow_report(costs)
    result = report.comparison
    if report.shadow is None or result is None:
        st.info("Start a shadow to compare it with the enforced decisions as payments arrive.")
        return
    if result.a.rows == 0:
        st.info("No live payment has arrived since the shadow started.")
        return
    verdict(result, ONE_DAY)
    kpi_row(tiles(result))
    st.table(money_charts.differences_table(result), hide_index=True)
    st.caption(
        f"{result.a.rows:,} live payments decided by both (A enforced, B shadow v"
        f"{report.shadow.version}) since {report.shadow.since:%Y-%m-%d %H:%M:%S} UTC, read from "
        f"the stored decisions in {result.elapsed_ms:,.0f} ms · {result.interval.method}, "
        f"{result.interval.replicates:,} replicates over {result.interval.blocks} days"
    )


shadow_panel(costs)
