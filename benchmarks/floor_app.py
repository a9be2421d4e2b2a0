"""Streamlit's own floor on this machine: the reference pages of ``bench_browser.py``.

Nothing of ptsim runs here: an empty page with one button, and a page with one small plotly
chart. What they take in the same browser, on the same machine, in the same run is the least any
dashboard page built with Streamlit (and plotly) can take.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st


def _count() -> None:
    st.session_state["clicks"] = st.session_state.get("clicks", 0) + 1


def empty_page() -> None:
    st.title("Floor")
    st.metric("Clicks", st.session_state.get("clicks", 0))
    st.button("Count", on_click=_count)


def chart_page() -> None:
    st.title("Floor chart")
    st.plotly_chart(go.Figure(go.Scatter(x=[1, 2, 3], y=[1, 3, 2])))


st.navigation(
    [
        st.Page(empty_page, title="Empty", default=True),
        st.Page(chart_page, title="Chart", url_path="chart"),
    ]
).run()
