"""Streamlit helpers shared by the dashboard pages: the engine, the demo seed, filters, formats."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import streamlit as st

from engine.analytics import FilterOptions
from engine.filters import RowFilter
from engine.service import Engine
from engine.simulation.params import SimulationParams
from workbench.formats import Tile
from workbench.runtime import shared_engine

PAGES_DIR = "workbench/pages"
# the fraud rate (and every other knob not named) is the engine's default, as in the API and CLI
DEMO_PARAMS = SimulationParams(rows=20_000, seed=42, days=7)
TIME_RANGES: dict[str, timedelta | None] = {
    "All time": None,
    "Latest hour": timedelta(hours=1),
    "Latest 24 hours": timedelta(days=1),
    "Latest 7 days": timedelta(days=7),
    "Latest 30 days": timedelta(days=30),
}


def engine() -> Engine:
    """The process's one engine (shared with the REST API in ``ptsim serve``)."""
    return shared_engine()


def seed_demo(eng: Engine) -> int:
    """Generate the small demo run synchronously; return its id."""
    return eng.simulate(DEMO_PARAMS).id


def offer_demo_seed(prefix: str, eng: Engine) -> bool:
    """On an empty database, explain and offer the one-click demo run. True if it was empty."""
    if eng.latest_transaction_id() is not None:
        return False
    st.info(
        "The database is empty. Seed a demo run to explore the workbench: "
        f"{DEMO_PARAMS.rows:,} simulated payments over {DEMO_PARAMS.days} days with "
        f"{DEMO_PARAMS.fraud_rate:.0%} labelled fraud (takes a second)."
    )
    if st.button("Seed demo data", key=f"{prefix}_demo_seed", type="primary"):
        with st.spinner("Generating the demo run…"):
            run_id = seed_demo(eng)
        st.session_state["demo_seeded_run"] = run_id
        st.rerun()
    return True


def run_label(run: Any) -> str:
    """Human label of a run selector value."""
    if run == "all":
        return "All traffic"
    if run == "live":
        return "Live traffic"
    return f"Simulation run {run}"


def run_choices(options: FilterOptions) -> list[Any]:
    """ "all", "live" (when there is live traffic) and every run id, newest run first."""
    choices: list[Any] = ["all"]
    if options.has_live:
        choices.append("live")
    choices.extend(sorted(options.runs, reverse=True))
    return choices


def row_filter(
    run: Any,
    time_range: str = "All time",
    channels: list[str] | None = None,
    currencies: list[str] | None = None,
    labels_as_of: datetime | None = None,
) -> RowFilter:
    """A :class:`RowFilter` from widget values."""
    return RowFilter(
        run=run,
        latest=TIME_RANGES.get(time_range),
        channels=tuple(channels or ()),
        currencies=tuple(currencies or ()),
        labels_as_of=labels_as_of,
    )


def status_heading(status: str, suffix: str = "") -> str:
    """A coloured status heading with a Material icon (no emoji font needed)."""
    if status == "Approved":
        return f":green[:material/check_circle: {status}]{suffix}"
    return f":red[:material/block: {status}]{suffix}"


def kpi_row(tiles: list[Tile]) -> None:
    """KPI tiles in a row that wraps onto a second line where the page is narrow, each as wide
    as its value, so a value is never cut off ("1,000…"); the exact value is the tooltip."""
    row = st.container(horizontal=True, gap="medium")
    for tile in tiles:
        row.metric(
            tile.label,
            tile.value,
            tile.delta,
            delta_color=tile.delta_color,
            help=tile.help,
            width="content",
        )
