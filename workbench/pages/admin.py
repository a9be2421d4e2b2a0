"""Admin: where the data lives, named lists, an online backup and a reset, behind the admin
token."""

from __future__ import annotations

import streamlit as st

from engine.errors import EngineError
from workbench import formats
from workbench.admin_gate import admin_access, admin_only
from workbench.lists_section import lists_section
from workbench.ui import engine, kpi_row

st.title("Admin")
eng = engine()
health = eng.health()
stats = eng.stats()
size = eng.store.file_size_bytes()

kpi_row(
    [
        formats.Tile(
            "Payments stored", formats.count(stats.total), formats.exact_count(stats.total)
        ),
        formats.Tile("Simulation runs", formats.count(len(eng.list_runs()))),
        formats.Tile("Database size", f"{size / 1_048_576:,.1f} MB" if size else "in memory"),
        formats.Tile("Active policy", f"version {eng.active_policy().version}"),
    ]
)
st.markdown(f"**Database path:** `{health['db_path']}` · status **{health['status']}**")

if notice := st.session_state.pop("admin_notice", None):
    st.success(notice)

st.subheader("Admin access")
unlocked = admin_access(eng, "admin")

st.subheader("Lists")
lists_section(eng, unlocked)

st.subheader("Back up now")
st.caption(
    "An online backup beside the database file (payments keep being served); the newest few "
    "are kept."
)


def do_backup() -> None:
    try:
        path = eng.store.backup()
    except EngineError as exc:
        st.session_state["admin_backup_error"] = str(exc)
        return
    st.session_state["admin_notice"] = f"Backup written: {path.name}."


if problem := st.session_state.pop("admin_backup_error", None):
    st.error(problem)
st.button(
    "Back up now", key="admin_backup", disabled=not unlocked, on_click=admin_only(eng, do_backup)
)

st.subheader("Reset data")
st.warning(
    "Reset deletes every transaction, audit entry and simulation run in one transaction. "
    "Policies and lists are kept; a shadow or route in force ends. This cannot be undone."
)
confirmed = st.checkbox(
    "I understand: delete all transactions, audit entries and runs",
    key="admin_confirm",
    disabled=not unlocked,
)


def do_reset() -> None:
    if not st.session_state.get("admin_confirm"):
        return  # a reset needs the confirmation, whatever the client sent
    after = eng.reset()
    st.session_state["admin_confirm"] = False
    st.session_state["admin_notice"] = f"All data deleted; {after.total} payments remain."


st.button(
    "Reset all data",
    key="admin_reset",
    type="primary",
    disabled=not (unlocked and confirmed),
    on_click=admin_only(eng, do_reset),
)
