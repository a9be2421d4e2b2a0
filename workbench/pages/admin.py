"""Admin: where the data lives, and a reset behind a confirmation step."""

from __future__ import annotations

import streamlit as st

from workbench.ui import engine

st.title("Admin")
eng = engine()
health = eng.health()
stats = eng.stats()
size = eng.store.file_size_bytes()

cols = st.columns(4)
cols[0].metric("Payments stored", f"{stats.total:,}")
cols[1].metric("Simulation runs", f"{len(eng.list_runs()):,}")
cols[2].metric("Database size", f"{size / 1_048_576:,.1f} MB" if size else "in memory")
cols[3].metric("Active policy", f"version {eng.active_policy().version}")
st.markdown(f"**Database path:** `{health['db_path']}` · status **{health['status']}**")

if notice := st.session_state.pop("admin_notice", None):
    st.success(notice)

st.subheader("Reset data")
st.warning(
    "Reset deletes every transaction, audit entry and simulation run in one transaction. "
    "Policies are kept. This cannot be undone."
)
confirmed = st.checkbox(
    "I understand: delete all transactions, audit entries and runs", key="admin_confirm"
)


def do_reset() -> None:
    after = eng.reset()
    st.session_state["admin_confirm"] = False
    st.session_state["admin_notice"] = f"All data deleted; {after.total} payments remain."


st.button(
    "Reset all data",
    key="admin_reset",
    type="primary",
    disabled=not confirmed,
    on_click=do_reset,
)
