"""The Streamlit workbench: eight pages over the process's one engine.

``ptsim serve`` (``make run``) serves this file with ``st.App`` next to the REST API, sharing
one engine; ``streamlit run streamlit_app.py --server.address=127.0.0.1
--browser.gatherUsageStats=false`` works too (it opens the engine from the PTSIM_* settings).
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Payment Transaction Simulator", page_icon="💳", layout="wide")

PAGES = [
    st.Page(
        "workbench/pages/live.py",
        title="Live dashboard",
        icon=":material/monitoring:",
        default=True,
    ),
    st.Page("workbench/pages/submit.py", title="Submit payment", icon=":material/credit_card:"),
    st.Page("workbench/pages/inspect.py", title="Inspect", icon=":material/search:"),
    st.Page("workbench/pages/tuning.py", title="Rule workbench", icon=":material/tune:"),
    st.Page("workbench/pages/compare.py", title="Compare policies", icon=":material/compare:"),
    st.Page("workbench/pages/shadow.py", title="Shadow policies", icon=":material/visibility:"),
    st.Page("workbench/pages/simulations.py", title="Simulations", icon=":material/science:"),
    st.Page("workbench/pages/admin.py", title="Admin", icon=":material/admin_panel_settings:"),
]

st.navigation(PAGES).run()
