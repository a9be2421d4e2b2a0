"""Threshold tuning: edit a candidate policy and backtest it over history in place."""

from __future__ import annotations

from decimal import Decimal

import streamlit as st
from pydantic import ValidationError

from engine.policy import Policy
from engine.validation import describe
from workbench import cache, charts, formats
from workbench.admin_gate import admin_access, admin_only
from workbench.formats import Tile
from workbench.ui import (
    TIME_RANGES,
    engine,
    kpi_row,
    offer_demo_seed,
    row_filter,
    run_choices,
    run_label,
    seed_demo,
)

WEIGHTS = (
    ("weight_device", "Weight: 1 − device trust"),
    ("weight_ip", "Weight: IP risk"),
    ("weight_amount", "Weight: amount"),
    ("weight_velocity", "Weight: spending velocity"),
)

st.title("Threshold tuning")
st.caption(
    "Edit a candidate policy; every change re-decides the stored payments with their stored "
    "random draws (common random numbers), so differences come from the policy alone."
)
eng = engine()
if offer_demo_seed("tune", eng):
    st.stop()


def load_policy(policy: Policy) -> None:
    """Put ``policy``'s knobs into the candidate widgets."""
    state = st.session_state
    state["tune_amount_threshold"] = float(policy.amount_threshold)
    state["tune_high_amount_decline_prob"] = float(policy.high_amount_decline_prob)
    state["tune_base_decline_prob"] = float(policy.base_decline_prob)
    state["tune_score_enabled"] = policy.score_threshold is not None
    state["tune_score_threshold"] = float(policy.score_threshold or 0.6)
    state["tune_velocity_enabled"] = policy.velocity_limit is not None
    state["tune_velocity_limit"] = int(policy.velocity_limit or 10)
    for name, _ in WEIGHTS:
        state[f"tune_{name}"] = float(getattr(policy, name))


def candidate_from_state() -> Policy:
    """The candidate policy the widgets describe (raises ValidationError when invalid)."""
    state = st.session_state
    return Policy(
        amount_threshold=Decimal(str(round(state["tune_amount_threshold"], 2))),
        high_amount_decline_prob=round(state["tune_high_amount_decline_prob"], 4),
        base_decline_prob=round(state["tune_base_decline_prob"], 4),
        score_threshold=round(state["tune_score_threshold"], 4)
        if state["tune_score_enabled"]
        else None,
        velocity_limit=int(state["tune_velocity_limit"])
        if state["tune_velocity_enabled"]
        else None,
        **{name: round(state[f"tune_{name}"], 4) for name, _ in WEIGHTS},
    )


def apply_candidate() -> None:
    try:
        policy = eng.activate_policy(candidate_from_state(), "applied from threshold tuning")
    except ValidationError:
        return
    load_policy(policy)
    st.session_state["tune_message"] = f"Policy version {policy.version} is now active."


def reset_default() -> None:
    policy = eng.reset_policy()
    load_policy(policy)
    st.session_state["tune_message"] = (
        f"The default heuristic is active again (version {policy.version})."
    )


def versus(candidate: str | None, active: str | None) -> str:
    """A tile's tooltip: both exact values."""
    return f"Candidate {candidate}; active {active}."


def revert_candidate() -> None:
    load_policy(eng.active_policy())


active = eng.active_policy()
if "tune_amount_threshold" not in st.session_state:
    # first visit, or back from another page (Streamlit drops the state of widgets not drawn):
    # restore the candidate being edited, else start from the active policy
    load_policy(st.session_state.get("tune_candidate") or active)
if message := st.session_state.pop("tune_message", None):
    st.success(message)

# the knobs column keeps room for its labels and buttons at 1024 px
knobs, results = st.columns([1.25, 2.2], gap="medium")
with knobs:
    st.subheader("Candidate policy")
    st.caption(f"Active: version {active.version}")
    st.number_input(
        "Amount threshold",
        min_value=0.01,
        max_value=1_000_000.0,
        step=50.0,
        format="%.2f",
        key="tune_amount_threshold",
        help="Payments above it are 'high amount'.",
    )
    st.slider(
        "Decline probability above the threshold",
        0.0,
        1.0,
        step=0.01,
        key="tune_high_amount_decline_prob",
    )
    st.slider("Decline probability otherwise", 0.0, 1.0, step=0.01, key="tune_base_decline_prob")
    st.toggle("Score threshold rule", key="tune_score_enabled")
    st.slider(
        "Decline when score ≥",
        0.0,
        1.0,
        step=0.01,
        key="tune_score_threshold",
        disabled=not st.session_state["tune_score_enabled"],
    )
    st.toggle("Velocity limit rule", key="tune_velocity_enabled")
    st.number_input(
        "Decline when prior payments in the window ≥",
        min_value=1,
        max_value=10_000,
        step=1,
        key="tune_velocity_limit",
        disabled=not st.session_state["tune_velocity_enabled"],
    )
    with st.expander("Score weights"):
        for name, label in WEIGHTS:
            st.number_input(label, 0.0, 10.0, step=0.05, format="%.2f", key=f"tune_{name}")
    options = eng.filter_options()
    run = st.selectbox("Backtest over", run_choices(options), format_func=run_label, key="tune_run")
    time_range = st.selectbox("Time range", list(TIME_RANGES), key="tune_range")
    st.markdown("**Activate**")
    unlocked = admin_access(eng, "tune")  # activating a policy is an admin act, as in the API
    buttons = st.columns(2)
    buttons[0].button(
        "Apply",
        key="tune_apply",
        type="primary",
        on_click=admin_only(eng, apply_candidate),
        disabled=not unlocked,
        width="stretch",
        help="Make the candidate the active policy (a new version; needs the admin token).",
    )
    buttons[1].button(
        "Revert",
        key="tune_revert",
        on_click=revert_candidate,
        width="stretch",
        help="Back to the active policy's knobs.",
    )
    st.button(
        "Reset to default",
        key="tune_reset",
        on_click=admin_only(eng, reset_default),
        disabled=not unlocked,
        width="stretch",
        help="Make the original heuristic the active policy (a new version; needs the admin "
        "token).",
    )

with results:
    try:
        candidate = candidate_from_state()
    except ValidationError as exc:
        for error in exc.errors():
            st.error(describe(error, root="policy")[1])
        st.stop()
    st.session_state["tune_candidate"] = candidate
    result = cache.backtest(eng, candidate, row_filter(run, time_range))
    c, a = result.candidate, result.active
    st.subheader("Candidate vs active")
    if c.rows == 0:
        st.info("No stored payments match this selection.")
        st.stop()
    labelled = c.recall is not None and a.recall is not None
    tiles = [
        Tile(
            "Approval rate",
            formats.percent(c.approval_rate),
            versus(formats.exact_percent(c.approval_rate), formats.exact_percent(a.approval_rate)),
            formats.delta_pp(c.approval_rate, a.approval_rate),
        )
    ]
    if labelled:
        tiles += [
            Tile(
                "Fraud caught",
                formats.percent(c.recall),
                versus(formats.exact_percent(c.recall), formats.exact_percent(a.recall)),
                formats.delta_pp(c.recall, a.recall),
            ),
            # lower is better for both: a fall is green
            Tile(
                "Fraud loss",
                formats.money(c.fraud_loss),
                versus(formats.exact_money(c.fraud_loss), formats.exact_money(a.fraud_loss)),
                formats.delta_money(c.fraud_loss, a.fraud_loss),
                delta_color="inverse",
            ),
            Tile(
                "False declines",
                formats.count(c.false_declines),
                versus(f"{c.false_declines:,}", f"{a.false_declines:,}"),
                formats.delta_count(c.false_declines, a.false_declines),
                delta_color="inverse",
            ),
        ]
    else:
        tiles.append(Tile("Fraud caught", formats.DASH, "Needs labelled (simulated) payments."))
    kpi_row(tiles)
    if not labelled:
        st.warning(
            "This selection has no ground truth (live traffic is unlabelled): fraud caught, "
            "precision, fraud loss and false declines need simulation runs."
        )
        if st.button("Seed a labelled demo run", key="tune_demo_seed_labels"):
            with st.spinner("Generating the demo run…"):
                seed_demo(eng)
            st.rerun()
    # a static table: it fits the column (wrapping labels), with no toolbar over its values
    st.table(charts.comparison_table(result), hide_index=True)
    st.caption(
        f"{c.rows:,} payments re-decided in {result.elapsed_ms:,.0f} ms · "
        f"{result.newly_declined:,} newly declined · {result.newly_approved:,} newly approved"
    )
    if c.recall is not None:
        st.plotly_chart(charts.tradeoff_curve_chart(result), key="tune_chart_curve")
        st.plotly_chart(charts.scenario_recall_chart(result), key="tune_chart_scenarios")
    with st.expander("Policy history"):
        st.dataframe(
            [
                {"version": p["version"], "created_at": p["created_at"], "note": p["note"]}
                | p["knobs"]
                for p in eng.policy_history()
            ],
            hide_index=True,
        )
