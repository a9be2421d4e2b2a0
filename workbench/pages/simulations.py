"""Simulations: start a bulk run with a live progress bar, list runs, compare two side by side."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import streamlit as st
from pydantic import ValidationError

from engine.errors import BusyError
from engine.simulation.params import PRESETS, SCENARIOS, RunRecord, SimulationParams
from engine.validation import describe
from workbench import charts, formats
from workbench.ui import engine

DEFAULTS = SimulationParams.model_fields  # one source of truth for the API, the CLI and here

st.title("Simulations")
st.caption(
    "Bulk synthetic runs: customers, cards and merchants with Poisson arrivals, history-based "
    "features, the active policy's decisions and labelled fraud scenarios, seeded end to end."
)
eng = engine()
max_rows = eng.settings.max_simulation_rows

with st.form("sim_form"):
    cols = st.columns(4)
    rows = cols[0].number_input(
        "Rows", min_value=1, max_value=max_rows, value=50_000, step=10_000, key="sim_rows"
    )
    days = cols[1].number_input(
        "Days", min_value=1, max_value=3650, value=DEFAULTS["days"].default, key="sim_days"
    )
    fraud_rate = cols[2].slider(
        "Fraud rate",
        0.0,
        0.2,
        value=DEFAULTS["fraud_rate"].default,
        step=0.005,
        format="%.3f",
        key="sim_fraud_rate",
    )
    seed = cols[3].number_input(
        "Seed", min_value=0, value=DEFAULTS["seed"].default, step=1, key="sim_seed"
    )
    st.markdown("**Scenario mix** (relative weights)")
    mix_cols = st.columns(len(SCENARIOS))
    mix = {
        name: mix_cols[i].number_input(
            name.replace("_", " "), 0.0, 10.0, value=1.0, step=0.5, key=f"sim_mix_{name}"
        )
        for i, name in enumerate(SCENARIOS)
    }
    world = st.columns(4)
    difficulty = world[0].selectbox(
        "Difficulty",
        list(PRESETS),
        index=list(PRESETS).index(DEFAULTS["difficulty"].default),
        help=DEFAULTS["difficulty"].description,
        key="sim_difficulty",
    )
    sizes = {
        name: world[i + 1].number_input(
            name.capitalize(),
            min_value=1,
            value=None,
            step=100,
            placeholder="sized from rows and days",
            help=DEFAULTS[name].description,
            key=f"sim_{name}",
        )
        for i, name in enumerate(("cards", "merchants", "devices"))
    }
    start = st.form_submit_button("Start run", type="primary")

if start:
    try:
        params = SimulationParams(
            rows=int(rows),
            days=int(days),
            fraud_rate=float(fraud_rate),
            seed=int(seed),
            scenario_mix=mix,
            difficulty=difficulty,
            **{name: int(value) for name, value in sizes.items() if value is not None},
        )
    except ValidationError as exc:
        for error in exc.errors():
            st.error(describe(error, root="parameters")[1])
    else:
        try:
            st.session_state["sim_watch"] = eng.start_simulation(params)
        except BusyError as exc:  # PTSIM_MAX_CONCURRENT_SIMULATIONS runs already running
            st.error(str(exc))

watched = st.session_state.get("sim_watch")
running = watched is not None and eng.get_run(watched).status == "running"


@st.fragment(run_every=timedelta(seconds=1) if running else None)
def progress_panel() -> None:
    run_id = st.session_state.get("sim_watch")
    if run_id is None:
        return
    record = eng.get_run(run_id)
    st.progress(
        record.progress,
        text=f"Run {record.id}: {record.rows_written:,} / {record.rows_planned:,} rows "
        f"({record.status})",
    )
    if record.status == "running":
        return
    if record.status == "completed":
        st.success(f"Run {record.id} completed in {record.timings.get('total_s', 0):.1f} s.")
    else:
        st.error(f"Run {record.id} {record.status}: {record.error or 'no details'}")
    if running:  # it finished since the page was drawn: refresh the list below
        st.rerun(scope="app")


progress_panel()


def run_row(record: RunRecord) -> dict[str, Any]:
    s, p = record.summary, record.params
    return {
        "run": record.id,
        "status": record.status,
        "started": record.created_at,  # wall-clock time (UTC)
        "rows": record.rows_written,
        "days": p.get("days"),
        "fraud rate": p.get("fraud_rate"),
        "difficulty": p.get("difficulty"),
        "seed": record.seed,
        "policy": record.policy_version,
        "approval rate": s.get("approval_rate"),
        "fraud caught": s.get("fraud_caught_rate"),
        "fraud loss": _cost(s, "fraud_loss"),
        "total cost": _cost(s, "total"),
        "false declines": s.get("false_declines"),
        "seconds": record.timings.get("total_s"),
    }


def _cost(summary: dict[str, Any], part: str) -> float | None:
    """A component of the run's costs in GBP (None for runs recorded before runs were priced)."""
    costs = summary.get("costs")
    return None if costs is None else float(getattr(costs, part))


def cell(name: str, value: Any) -> str:
    """One value of the comparison table as text (its column mixes kinds of value)."""
    if value is None:
        return formats.DASH
    if name in ("approval rate", "fraud caught"):
        return formats.exact_percent(value) or formats.DASH
    if name == "fraud rate":
        return f"{value:.1%}"
    if name in ("fraud loss", "total cost"):
        return formats.exact_money(value) or formats.DASH
    if name == "started":
        return f"{value:%Y-%m-%d %H:%M:%S} UTC"
    if name == "seconds":
        return f"{value:.1f} s"
    if isinstance(value, int) and name not in ("run", "seed", "policy"):
        return f"{value:,}"
    return str(value)


runs = eng.list_runs()
st.subheader(f"Runs ({len(runs)})")
if not runs:
    st.info("No runs yet: start one above.")
    st.stop()
# the columns that tell runs apart, so the table fits the page at 1024 px; "Compare two runs"
# below shows every parameter and result
st.dataframe(
    [run_row(r) for r in runs],
    hide_index=True,
    key="sim_runs_table",
    column_order=(
        "run",
        "status",
        "rows",
        "fraud rate",
        "approval rate",
        "fraud caught",
        "fraud loss",
        "total cost",
    ),
    column_config={
        "run": st.column_config.NumberColumn(format="plain"),
        "rows": st.column_config.NumberColumn(format="localized"),
        "fraud rate": st.column_config.NumberColumn(format="percent"),
        "approval rate": st.column_config.NumberColumn(format="percent"),
        "fraud caught": st.column_config.NumberColumn(format="percent"),
        "fraud loss": st.column_config.NumberColumn("fraud loss (GBP)", format="%,.2f"),
        "total cost": st.column_config.NumberColumn(
            "total cost (GBP)",
            format="%,.2f",
            help="Fraud loss, chargeback fees, false-decline cost and review cost under the "
            "default cost model (see the Compare policies page to change it).",
        ),
    },
)

st.subheader("Compare two runs")
ids = [r.id for r in runs]
by_id = {r.id: r for r in runs}
state = st.session_state
if state.get("sim_compare_auto", True) or state.get("sim_compare_a") not in ids:
    # until the user picks, compare the two newest runs
    state["sim_compare_a"], state["sim_compare_b"] = ids[min(1, len(ids) - 1)], ids[0]
    state["sim_compare_auto"] = True


def _picked() -> None:
    st.session_state["sim_compare_auto"] = False


cols = st.columns(2)
first = cols[0].selectbox("Run A", ids, key="sim_compare_a", on_change=_picked)
second = cols[1].selectbox("Run B", ids, key="sim_compare_b", on_change=_picked)
a, b = by_id[first], by_id[second]
table = {
    "parameter / result": list(run_row(a)),
    f"run {a.id}": [cell(k, v) for k, v in run_row(a).items()],
    f"run {b.id}": [cell(k, v) for k, v in run_row(b).items()],
}
# static tables: every row visible and fitting the page (no inner scrollbar hiding the results
# under the parameters, no toolbar over the values)
st.table(table, hide_index=True)
scenario_rows = [
    {
        "scenario": name,
        f"run {a.id} rows": a.summary.get("scenarios", {}).get(name, {}).get("rows", 0),
        f"run {a.id} caught": a.summary.get("scenarios", {}).get(name, {}).get("caught", 0),
        f"run {b.id} rows": b.summary.get("scenarios", {}).get(name, {}).get("rows", 0),
        f"run {b.id} caught": b.summary.get("scenarios", {}).get(name, {}).get("caught", 0),
    }
    for name in SCENARIOS
]
st.table(scenario_rows, hide_index=True)
st.plotly_chart(
    charts.run_comparison_chart({f"run {a.id}": a.summary, f"run {b.id}": b.summary}),
    key="sim_compare_chart",
)
