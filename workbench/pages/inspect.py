"""Inspect: look a transaction up by id; the card is masked; the audit trail below it."""

from __future__ import annotations

import streamlit as st

from engine.decision import REASON_TEXT, Reason
from engine.errors import NotFoundError
from workbench.ui import engine, ms, offer_demo_seed, status_heading

st.title("Inspect a transaction")
eng = engine()

pending = st.session_state.pop("inspect_pending_id", None)
if pending is not None:
    st.session_state["inspect_id"] = pending
elif not st.session_state.get("inspect_id"):
    latest = eng.latest_transaction_id()
    st.session_state["inspect_id"] = "" if latest is None else str(latest)

if offer_demo_seed("inspect", eng):
    st.stop()

with st.form("inspect_form"):
    transaction_id = st.text_input(
        "Transaction id", key="inspect_id", help="Pre-filled with the most recent transaction."
    )
    st.form_submit_button("Look up", type="primary")


def _latest() -> None:
    latest = eng.latest_transaction_id()
    st.session_state["inspect_id"] = "" if latest is None else str(latest)


st.button("Most recent transaction", key="inspect_latest", on_click=_latest)

if transaction_id.strip():
    try:
        tx = eng.get_transaction(transaction_id.strip())
        audit = eng.get_audit(tx.id)
    except NotFoundError as exc:
        st.error(str(exc))
    else:
        approved = tx.status == "Approved"
        st.subheader(status_heading(tx.status, f": {tx.amount} {tx.currency}"))
        (st.success if approved else st.error)(REASON_TEXT[Reason[tx.reason_code]])
        cols = st.columns([1.6, 1, 1, 1])
        cols[0].metric("Card", tx.card_masked)
        cols[1].metric("Merchant", tx.merchant)
        cols[2].metric("Channel", tx.channel)
        cols[3].metric("Risk score", f"{tx.score:.3f}")
        cols = st.columns(4)
        cols[0].metric("Latency", ms(tx.latency_ms))
        cols[1].metric("Policy version", tx.policy_version)
        cols[2].metric("Source", "live" if tx.run_id is None else f"run {tx.run_id}")
        label = (
            "unknown (live)"
            if tx.is_fraud is None
            else (f"fraud: {tx.fraud_scenario}" if tx.is_fraud else "legitimate")
        )
        cols[3].metric("Ground truth", label)
        st.markdown("**Features**")
        st.dataframe(
            [
                {
                    "created_at": tx.created_at,
                    "device_id": tx.device_id,
                    **tx.features.model_dump(),
                    "draw": tx.draw,
                    "reason_code": tx.reason_code,
                    "risk_flag": tx.risk_flag,
                }
            ],
            hide_index=True,
        )
        st.markdown(f"**Audit trail** ({len(audit)} entr{'y' if len(audit) == 1 else 'ies'})")
        for entry in audit:
            with st.expander(f"{entry.created_at} · {entry.event} · {entry.source}", True):
                st.json(entry.model_dump(mode="json"))
