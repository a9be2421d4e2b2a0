"""Submit payment: a form with every request field, the decision card and the JSON answer."""

from __future__ import annotations

import streamlit as st
from pydantic import ValidationError

from engine.decision import REASON_TEXT, Reason
from engine.features import CHANNELS
from engine.models import PaymentRequest, PaymentResult
from engine.validation import describe
from workbench import formats
from workbench.formats import Tile
from workbench.ui import PAGES_DIR, engine, kpi_row, status_heading

CURRENCIES = ["GBP", "EUR", "USD", "JPY", "CHF", "AUD", "CAD", "SEK", "NOK", "PLN"]
EXAMPLE = PaymentRequest.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]

st.title("Submit payment")
st.caption(
    "Authorize one payment through the live path: features from the card's history, a risk "
    "score and the active policy's decision, committed with an audit entry before it answers."
)

with st.form("submit_form"):
    left, right = st.columns(2)
    card = left.text_input(
        "Card number",
        value=EXAMPLE["card_number"],
        key="submit_card_number",
        help="12–19 digits. Only a keyed hash, the BIN and the last 4 are stored.",
    )
    amount = right.text_input(
        "Amount",
        value=str(EXAMPLE["amount"]),
        key="submit_amount",
        help="Greater than 0, at most 1,000,000.00, at most 2 decimal places.",
    )
    currency = left.selectbox(
        "Currency", CURRENCIES, key="submit_currency", accept_new_options=True
    )
    merchant = right.text_input("Merchant", value=EXAMPLE["merchant"], key="submit_merchant")
    channel = left.selectbox(
        "Channel", list(CHANNELS), index=list(CHANNELS).index("ecommerce"), key="submit_channel"
    )
    device = right.text_input(
        "Device id (optional)", value=EXAMPLE["device_id"], key="submit_device_id"
    )
    submitted = st.form_submit_button("Authorize payment", type="primary")

if submitted:
    body = {
        "card_number": card,
        "amount": amount.strip(),
        "currency": currency or "",
        "merchant": merchant,
        "channel": channel,
        "device_id": device.strip() or None,
    }
    try:
        request = PaymentRequest.model_validate(body)
    except ValidationError as exc:
        st.session_state.pop("submit_result", None)
        for error in exc.errors():
            st.error(describe(error, root="payment")[1])  # never the input
    else:
        st.session_state["submit_result"] = engine().authorize(request)

result: PaymentResult | None = st.session_state.get("submit_result")
if result is not None:
    approved = result.status == "Approved"
    st.subheader(status_heading(result.status))
    # decision_reason is null for approvals (the documented contract): show the reason text
    (st.success if approved else st.error)(REASON_TEXT[Reason[result.reason_code]])
    feats = result.features
    kpi_row(
        [
            Tile("Risk score", f"{result.score:.3f}", f"{result.score:.6f}"),
            Tile("Latency", formats.milliseconds(result.latency_ms)),
            Tile("Policy version", str(result.policy_version)),
            Tile("Risk flag", "yes" if result.flagged_by_risk_rule else "no", result.risk_flag),
            Tile("Spending velocity", f"{feats.spending_velocity:.3f}"),
            Tile("Device trust", f"{feats.device_trust_score:.3f}"),
            Tile("IP risk", f"{feats.ip_risk_score:.3f}"),
        ]
    )
    st.caption(f"Transaction id `{result.transaction_id}` · reason code `{result.reason_code}`")
    st.session_state["inspect_pending_id"] = str(result.transaction_id)
    st.page_link(
        f"{PAGES_DIR}/inspect.py", label="Inspect this transaction →", icon=":material/search:"
    )
    # drawn only while open: the JSON viewer's script and tree cost every decision ~40 ms in
    # the browser, for an answer most users never unfold
    answer = st.expander(
        "JSON returned (as POST /payment answers)", key="submit_json", on_change="rerun"
    )
    if answer.open:
        answer.json(result.model_dump(mode="json"))
