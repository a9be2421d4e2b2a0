"""Inspect: look a transaction up by id; the card is masked; the audit trail below it."""

from __future__ import annotations

import streamlit as st

from engine.decision import REASON_TEXT, Reason
from engine.errors import NotFoundError
from workbench import formats
from workbench.formats import Tile
from workbench.ui import engine, kpi_row, offer_demo_seed, status_heading

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


def _shown(value: object) -> str:
    """A history attribute as text: null (no device, no rate) as a dash."""
    if value is None:
        return formats.DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


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
        # decision_reason is null for approvals (the documented contract): show the reason text
        (st.success if approved else st.error)(REASON_TEXT[Reason[tx.reason_code]])
        truth = (
            "unknown (live)"
            if tx.is_fraud is None
            else (
                f"fraud: {tx.fraud_scenario}"
                if tx.is_fraud
                else "legitimate" + (f" ({tx.fraud_scenario})" if tx.fraud_scenario else "")
            )
        )
        kpi_row(
            [
                Tile("Card", tx.card_masked),
                Tile("Merchant", tx.merchant),
                Tile("Channel", tx.channel),
                Tile("Risk score", f"{tx.score:.3f}", f"{tx.score:.6f}"),
                Tile("Latency", formats.milliseconds(tx.latency_ms)),
                Tile("Policy version", str(tx.policy_version)),
                Tile("Source", "live" if tx.run_id is None else f"run {tx.run_id}"),
                Tile("Ground truth", truth),
            ]
        )
        st.markdown("**Features**")
        # one attribute per row: fits the page at any width (a one-row table of eight columns
        # hid its right half at 1024 px)
        attributes = {
            "created_at (UTC)": f"{tx.created_at:%Y-%m-%d %H:%M:%S}",
            "device_id": tx.device_id or formats.DASH,
            **{name: f"{value:.3f}" for name, value in tx.features.model_dump().items()},
            **{name: _shown(value) for name, value in tx.attributes.model_dump().items()},
            "draw (:random:)": f"{tx.draw:.4f}",
            "reason_code": tx.reason_code,
            "risk_flag": tx.risk_flag or formats.DASH,
        }
        st.table(
            [{"attribute": name, "value": value} for name, value in attributes.items()],
            hide_index=True,
            width="content",
        )
        st.markdown(f"**Audit trail** ({len(audit)} entr{'y' if len(audit) == 1 else 'ies'})")
        for entry in audit:
            with st.expander(f"{entry.created_at} · {entry.event} · {entry.source}", True):
                st.json(entry.model_dump(mode="json"))
