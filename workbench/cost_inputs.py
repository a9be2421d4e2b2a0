"""The cost-model inputs, as the Compare and Rule workbench pages draw them: one widget, so
both price with the same fields, defaults and help."""

from __future__ import annotations

from decimal import Decimal

import streamlit as st

from engine.costs import CostModel
from engine.fx import RATES_PER_EUR

_INPUTS = 7


def cost_model_inputs(prefix: str, per_row: int = _INPUTS) -> CostModel:
    """An expander with the cost model's inputs (keys ``<prefix>_currency``, ``<prefix>_fee``,
    ...), ``per_row`` to a row, and the model they set."""
    with st.expander("Cost model", expanded=False):
        rows = -(-_INPUTS // per_row)
        cols = [col for _ in range(rows) for col in st.columns(per_row)]
        currencies = sorted(RATES_PER_EUR)
        currency = cols[0].selectbox(
            "Currency", currencies, index=currencies.index("GBP"), key=f"{prefix}_currency"
        )
        fee = cols[1].number_input("Chargeback fee", 0.0, 1e6, 15.0, 1.0, key=f"{prefix}_fee")
        margin = cols[2].number_input(
            "Margin lost on a false decline",
            0.0,
            1.0,
            0.30,
            0.05,
            key=f"{prefix}_margin",
            help="Share of a declined genuine payment's amount the merchant loses.",
        )
        churn = cols[3].number_input(
            "Churn per declined card", 0.0, 1e6, 5.0, 1.0, key=f"{prefix}_churn"
        )
        review = cols[4].number_input("Cost per review", 0.0, 1e6, 3.0, 0.5, key=f"{prefix}_review")
        capacity = cols[5].number_input(
            "Reviews a day",
            min_value=0,
            value=None,
            step=50,
            key=f"{prefix}_capacity",
            help="Payments the review team works a day, riskiest first (empty: all of them). "
            "A worked fraud is stopped before any dispute.",
        )
        challenge = cols[6].number_input(
            "Cost per challenge",
            0.0,
            1e6,
            0.05,
            0.01,
            key=f"{prefix}_challenge",
            help="The 3-D Secure fee per payment a challenge rule steps up. A passed challenge "
            "shifts fraud liability to the issuer; an abandoned one loses the sale's margin.",
        )
    return CostModel(
        currency=currency,
        chargeback_fee=_cents(fee),
        false_decline_margin=Decimal(str(round(margin, 4))),
        churn_cost_per_card=_cents(churn),
        review_cost=_cents(review),
        review_capacity=None if capacity is None else int(capacity),
        challenge_cost=_cents(challenge),
    )


def _cents(value: float) -> Decimal:
    return Decimal(str(round(value, 2)))
