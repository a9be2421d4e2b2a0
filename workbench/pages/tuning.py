"""Rule workbench: write a candidate policy as rules (or with the nine knobs), backtest it over
history in place, save it as a draft version and activate it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from engine.backtest import BacktestResult, PolicyMetrics
from engine.challenge import ChallengeModel
from engine.costs import CostModel
from engine.policy import Knobs, Policy, ScoreWeights
from engine.rules import RuleError, attributes_json
from engine.validation import describe
from workbench import cache, charts, formats, money_charts, rule_text
from workbench.admin_gate import admin_access, admin_only
from workbench.cost_inputs import cost_model_inputs
from workbench.formats import Tile
from workbench.lists_section import lists_section
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

RULES, KNOBS = "Rules", "Knobs"
WEIGHTS = (
    ("device", "Weight: 1 − device trust"),
    ("ip", "Weight: IP risk"),
    ("amount", "Weight: amount"),
    ("velocity", "Weight: spending velocity"),
)
CHALLENGE_RATES = (
    ("ecommerce_pass_rate", "Genuine payer passes (ecommerce)"),
    ("other_pass_rate", "Genuine payer passes (other channels)"),
    ("fraud_pass_rate", "Fraudster passes"),
)
DEFAULT_NOTE = "from the rule workbench"

st.title("Rule workbench")
st.caption(
    "Write a candidate policy; every change re-decides the stored payments with their stored "
    "random draws (common random numbers), so differences come from the policy alone."
)
eng = engine()
if offer_demo_seed("tune", eng):
    st.stop()
state = st.session_state


# -- the candidate's widgets ---------------------------------------------------------------


def set_knobs(knobs: Knobs) -> None:
    """Put ``knobs`` into the knob widgets (the weights are widgets of both modes)."""
    state["tune_amount_threshold"] = float(knobs.amount_threshold)
    state["tune_high_amount_decline_prob"] = float(knobs.high_amount_decline_prob)
    state["tune_base_decline_prob"] = float(knobs.base_decline_prob)
    state["tune_score_enabled"] = knobs.score_threshold is not None
    state["tune_score_threshold"] = float(knobs.score_threshold or 0.6)
    state["tune_velocity_enabled"] = knobs.velocity_limit is not None
    state["tune_velocity_limit"] = int(knobs.velocity_limit or 10)


def set_weights(weights: ScoreWeights) -> None:
    for name, _ in WEIGHTS:
        state[f"tune_weight_{name}"] = float(getattr(weights, name))
    state["tune_amount_scale"] = float(weights.amount_scale)


def set_challenge(model: ChallengeModel) -> None:
    for name, _ in CHALLENGE_RATES:
        state[f"tune_challenge_{name}"] = float(getattr(model, name))


def load_policy(policy: Policy) -> None:
    """Make ``policy`` the candidate being edited: knobs mode when it was written from knobs."""
    set_knobs(policy.knobs or Knobs())
    set_weights(policy.score_weights)
    set_challenge(policy.challenge)
    state["tune_rules_text"] = rule_text.render(policy.rules)
    state["tune_mode"] = KNOBS if policy.knobs else RULES
    state.pop("tune_saved", None)


def switch_mode() -> None:
    """Carry the candidate over: knobs become their rules; rules keep the knobs last used."""
    last = state.get("tune_candidate")
    if last is None:
        return
    if state["tune_mode"] == RULES:
        state["tune_rules_text"] = rule_text.render(last.rules)
        state["tune_amount_scale"] = float(last.score_weights.amount_scale)
    elif last.knobs is not None:
        set_knobs(last.knobs)


def knob_candidate() -> Policy:
    """The knob widgets' policy (ValidationError when invalid)."""
    return Policy.from_knobs(
        amount_threshold=Decimal(str(round(state["tune_amount_threshold"], 2))),
        high_amount_decline_prob=round(state["tune_high_amount_decline_prob"], 4),
        base_decline_prob=round(state["tune_base_decline_prob"], 4),
        score_threshold=round(state["tune_score_threshold"], 4)
        if state["tune_score_enabled"]
        else None,
        velocity_limit=int(state["tune_velocity_limit"])
        if state["tune_velocity_enabled"]
        else None,
        **{f"weight_{name}": round(state[f"tune_weight_{name}"], 4) for name, _ in WEIGHTS},
    )


def rules_candidate() -> Policy:
    """The rule text's policy, checked by the engine (RuleTextError, RuleError with the rule
    and position, or ValidationError for the weights)."""
    text = str(state.get("tune_rules_text") or "")
    blocks = rule_text.parse(text)
    weights = ScoreWeights(
        amount_scale=Decimal(str(round(state["tune_amount_scale"], 2))),
        **{name: round(state[f"tune_weight_{name}"], 4) for name, _ in WEIGHTS},
    )
    challenge = ChallengeModel(
        **{name: round(state[f"tune_challenge_{name}"], 4) for name, _ in CHALLENGE_RATES}
    )
    try:
        return eng.draft_policy(rule_text.rules(blocks), weights, challenge=challenge)
    except RuleError as exc:
        raise rule_text.RuleTextError(rule_text.locate(exc, blocks)) from exc


def build_candidate() -> tuple[Policy | None, list[str], rule_text.TextError | None]:
    """``(candidate, problems, text error)``: the candidate, or why there is none."""
    try:
        return (knob_candidate() if state["tune_mode"] == KNOBS else rules_candidate()), [], None
    except ValidationError as exc:
        return None, [describe(e, root="policy")[1] for e in exc.errors()], None
    except rule_text.RuleTextError as exc:
        return None, [exc.error.describe()], exc.error


# -- acts --------------------------------------------------------------------------------------


def note() -> str:
    return str(state.get("tune_note") or "").strip() or DEFAULT_NOTE


def save_draft() -> None:
    """Store the candidate as a new version; nothing becomes active."""
    candidate, _, _ = build_candidate()
    if candidate is None:
        return  # the page shows why; nothing invalid is stored
    rules = [rule.model_dump() for rule in candidate.rules]
    saved = eng.create_policy(rules, candidate.score_weights, note(), candidate.challenge)
    state["tune_saved"] = saved.version
    state["tune_message"] = (
        f"Draft saved as policy version {saved.version} (not active): backtest it here, then "
        "activate it."
    )


def _saved_draft(candidate: Policy) -> Policy | None:
    """The draft saved from this page, when it still is the candidate."""
    if (version := state.get("tune_saved")) is None:
        return None
    saved = eng.policy(version)
    same = (saved.rules, saved.score_weights, saved.lists, saved.challenge) == (
        candidate.rules,
        candidate.score_weights,
        candidate.lists,
        candidate.challenge,
    )
    return saved if same else None


def activate_candidate() -> None:
    """Make the candidate active (its saved draft when it has one, else a new version)."""
    if not state.get("tune_confirm"):
        state["tune_problem"] = "Tick the confirmation first: nothing was activated."
        return
    candidate, _, _ = build_candidate()
    if candidate is None:
        return
    saved = _saved_draft(candidate)
    if saved is not None:
        policy = eng.activate_version(saved.version, note())
    else:
        policy = eng.activate_policy(candidate, note())
    load_policy(policy)
    state["tune_confirm"] = False
    state["tune_message"] = f"Policy version {policy.version} is now active."


def reset_default() -> None:
    policy = eng.reset_policy()
    load_policy(policy)
    state["tune_message"] = f"The default heuristic is active again (version {policy.version})."


def revert_candidate() -> None:
    load_policy(eng.active_policy())


def load_version() -> None:
    version = state.get("tune_load_version")
    if version is not None:
        load_policy(eng.policy(int(version)))
        state["tune_message"] = f"Policy version {version} loaded into the editor."


# -- drawing -------------------------------------------------------------------------------


def versus(candidate: str | None, active: str | None) -> str:
    """A tile's tooltip: both exact values."""
    return f"Candidate {candidate}; active {active}."


def show_text_error(error: rule_text.TextError) -> None:
    """The refusal under the editor, with the offending line and a caret at the column."""
    st.error(error.describe(), icon=":material/error:")
    st.code(rule_text.excerpt(str(state.get("tune_rules_text") or ""), error), language=None)


def catalogue() -> None:
    attributes = pd.DataFrame(attributes_json())
    attributes["name"] = ":" + attributes["name"] + ":"
    st.markdown("**Attributes** — write them as `:name:`; lists as `@name`")
    st.dataframe(
        attributes[["name", "type", "definition", "example"]],
        hide_index=True,
        height=360,
        column_config={"definition": st.column_config.TextColumn(width="large")},
    )


def knob_editor() -> None:
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
        disabled=not state["tune_score_enabled"],
    )
    st.toggle("Velocity limit rule", key="tune_velocity_enabled")
    st.number_input(
        "Decline when prior payments in the window ≥",
        min_value=1,
        max_value=10_000,
        step=1,
        key="tune_velocity_limit",
        disabled=not state["tune_velocity_enabled"],
    )


def weights_editor(mode: str) -> None:
    with st.expander("Score weights"):
        for name, label in WEIGHTS:
            st.number_input(label, 0.0, 10.0, step=0.05, format="%.2f", key=f"tune_weight_{name}")
        if mode == RULES:  # the knobs tie the scale to twice the amount threshold
            st.number_input(
                "Amount scale (GBP)",
                0.01,
                2_000_000.0,
                step=100.0,
                format="%.2f",
                key="tune_amount_scale",
                help="The amount term is min(amount / scale, 1).",
            )


def challenge_editor() -> None:
    """The pass probabilities the candidate's challenge rules decide with (stored with it)."""
    with st.expander("Challenge model (3-D Secure)"):
        for name, label in CHALLENGE_RATES:
            st.number_input(label, 0.0, 1.0, step=0.01, format="%.2f",
                            key=f"tune_challenge_{name}")  # fmt: skip
        st.caption(
            "A challenge rule's payment passes when its stored challenge draw is below the "
            "rate: a genuine payer who fails abandons (a lost sale), a fraudster who fails is "
            "declined. Stored with the policy; used only when a rule challenges."
        )


def activation_controls(candidate: Policy | None) -> bool:
    """Save, activate (admin, confirmed), revert and reset; True when admin acts are open."""
    st.text_input("Note", key="tune_note", placeholder=DEFAULT_NOTE)
    st.button(
        "Save draft",
        key="tune_save",
        on_click=save_draft,
        disabled=candidate is None,
        width="stretch",
        help="Store the candidate as a new policy version without activating it.",
    )
    st.markdown("**Activate**")
    unlocked = admin_access(eng, "tune")  # activating a policy is an admin act, as in the API
    st.checkbox(
        "New payments will be decided by this candidate",
        key="tune_confirm",
        disabled=not unlocked or candidate is None,
    )
    buttons = st.columns(2)
    buttons[0].button(
        "Activate",
        key="tune_apply",
        type="primary",
        on_click=admin_only(eng, activate_candidate),
        disabled=not unlocked or candidate is None or not state.get("tune_confirm"),
        width="stretch",
        help="Make the candidate the active policy (its saved draft, else a new version; needs "
        "the admin token and the confirmation).",
    )
    buttons[1].button(
        "Revert",
        key="tune_revert",
        on_click=revert_candidate,
        width="stretch",
        help="Back to the active policy.",
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
    return unlocked


def tiles(c, a) -> list[Tile]:
    shown = [
        Tile(
            "Approval rate",
            formats.percent(c.approval_rate),
            versus(formats.exact_percent(c.approval_rate), formats.exact_percent(a.approval_rate)),
            formats.delta_pp(c.approval_rate, a.approval_rate),
        )
    ]
    if c.recall is None or a.recall is None:
        return [*shown, Tile("Fraud caught", formats.DASH, "Needs labelled (simulated) payments.")]
    return [
        *shown,
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


def results(
    candidate: Policy,
    run: object,
    time_range: str,
    labels_as_of: datetime | None,
    costs: CostModel,
) -> None:
    """Candidate vs active over the selection, in counts and in money, then what each candidate
    rule does."""
    chosen = row_filter(run, time_range, labels_as_of=labels_as_of)
    result = cache.backtest(eng, candidate, chosen, costs)
    c, a = result.candidate, result.active
    st.subheader("Candidate vs active")
    if c.rows == 0:
        st.info("No stored payments match this selection.")
        return
    labelled = c.recall is not None and a.recall is not None
    kpi_row(tiles(c, a))
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
    if labels_as_of is not None:
        labels_known(candidate, run, time_range, labels_as_of, result.candidate, costs)
    if labelled:  # unlabelled rows cost nothing: without labels, money would flatter any policy
        in_money(result)
        st.plotly_chart(charts.tradeoff_curve_chart(result), key="tune_chart_curve")
        st.plotly_chart(charts.scenario_recall_chart(result), key="tune_chart_scenarios")
    st.subheader("Per rule")
    st.caption(
        "Fraud caught: fraud rows the rule decided (first match). Unique fraud: fraud rows it "
        "matches and no other block or review rule does — what dropping it would lose."
    )
    st.dataframe(charts.rule_table(result), hide_index=True, key="tune_rule_table")
    if labelled and result.overlap:  # fraud rows both match: needs labels
        st.plotly_chart(charts.overlap_heatmap(result), key="tune_chart_overlap")


MONEY_NAMES = ("active", "candidate")


def in_money(result: BacktestResult) -> None:
    """Both policies' total cost and the difference, each cost with what it multiplies, and
    the waterfall from the active policy's total to the candidate's."""
    c, a = result.candidate.costs, result.active.costs
    st.subheader(f"In money ({result.cost_model.currency})")
    kpi_row(
        [
            Tile(
                "Total cost, candidate",
                formats.money(c.total),
                versus(formats.exact_money(c.total), formats.exact_money(a.total)),
                formats.delta_money(c.total, a.total),
                delta_color="inverse",  # lower is better: a fall is green
            ),
            Tile("Total cost, active", formats.money(a.total), formats.exact_money(a.total)),
        ]
    )
    st.table(money_charts.costs_table(a, c, MONEY_NAMES), hide_index=True)
    st.caption(
        "Priced with the cost model above, as the Compare page prices the same two policies "
        "(review capacity and challenges included); change = candidate − active."
    )
    st.plotly_chart(money_charts.cost_waterfall(a, c, MONEY_NAMES), key="tune_chart_costs")


def labels_known(
    candidate: Policy,
    run: object,
    time_range: str,
    labels_as_of: datetime,
    known: PolicyMetrics,
    costs: CostModel,
) -> None:
    """The candidate's fraud figures as known at ``labels_as_of`` beside every label stored:
    how much the delay of chargebacks hides."""
    every = cache.backtest(eng, candidate, row_filter(run, time_range), costs).candidate
    st.subheader("Known then vs every label")
    st.table(charts.labels_known_table(known, every), hide_index=True)
    st.caption(
        f"The candidate policy with the labels known at {labels_as_of:%Y-%m-%d %H:%M} UTC beside "
        "every label stored (for simulation runs, the ground truth). Fraud whose chargeback "
        "came later counts as legitimate then: its declines look like false declines and its "
        "approvals are missing from the fraud loss."
    )


def history(active: Policy) -> None:
    policies = eng.policy_history()
    st.dataframe(
        pd.DataFrame(
            {
                "version": [p.version for p in policies],
                "created_at": [p.created_at for p in policies],
                "note": [p.note for p in policies],
                "rules": [len(p.rules) for p in policies],
                "active": ["● active" if p.version == active.version else "" for p in policies],
            }
        ),
        hide_index=True,
        key="tune_history",
    )
    row = st.container(horizontal=True, vertical_alignment="bottom")
    row.selectbox("Version", [p.version for p in policies], key="tune_load_version", width=160)
    row.button("Load into the editor", key="tune_load", on_click=load_version)


# -- the page ----------------------------------------------------------------------------------

active = eng.active_policy()
# first visit, or back from another page (Streamlit drops the state of widgets not drawn):
# restore the candidate being edited, else start from the active policy
base = state.get("tune_candidate") or active
if "tune_mode" not in state:
    state["tune_mode"] = state.get("tune_mode_kept") or (KNOBS if active.knobs else RULES)
if "tune_weight_device" not in state:
    set_weights(base.score_weights)
if "tune_amount_scale" not in state:
    state["tune_amount_scale"] = float(base.score_weights.amount_scale)
if "tune_challenge_fraud_pass_rate" not in state:
    set_challenge(base.challenge)
if state["tune_mode"] == KNOBS and "tune_amount_threshold" not in state:
    set_knobs(base.knobs or Knobs())
if state["tune_mode"] == RULES and "tune_rules_text" not in state:
    state["tune_rules_text"] = state.get("tune_rules_kept") or rule_text.render(base.rules)
if message := state.pop("tune_message", None):
    st.success(message)
if problem := state.pop("tune_problem", None):
    st.error(problem)

top = st.container(horizontal=True, vertical_alignment="center")
mode = top.radio(
    "Edit the candidate as",
    (RULES, KNOBS),
    key="tune_mode",
    horizontal=True,
    on_change=switch_mode,
    help="Knobs: the original heuristic's nine settings, written as rules for you.",
)
state["tune_mode_kept"] = mode
top.caption(f"Active: version {active.version} ({len(active.rules)} rules)")

if mode == RULES:
    editor, beside = st.columns([3, 2], gap="medium")
    with editor:
        st.text_area(
            "Candidate rules — one block per rule: name:, action: (allow, challenge, block or "
            "review), "
            "when: (the condition may go on over the next lines); a blank line between rules",
            key="tune_rules_text",
            height=360,
        )
        state["tune_rules_kept"] = state["tune_rules_text"]
        st.caption(
            "Allow rules are tried first (a match approves), then challenge rules (a 3-D Secure "
            "step-up: approved if passed, declined if abandoned or failed), then block rules (a "
            "match declines with the rule's name as the reason), then review rules (approve and "
            "mark)."
        )
    with beside:
        catalogue()

candidate, problems, text_error = build_candidate()
if candidate is not None:
    state["tune_candidate"] = candidate

# the controls column keeps room for its labels and buttons at 1024 px
controls, outcome = st.columns([1.25, 2.2], gap="medium")
with controls:
    if mode == KNOBS:
        st.subheader("Candidate policy")
        knob_editor()
    weights_editor(mode)
    if mode == RULES:  # the knobs write no challenge rule
        challenge_editor()
    options = eng.filter_options()
    run = st.selectbox("Backtest over", run_choices(options), format_func=run_label, key="tune_run")
    time_range = st.selectbox("Time range", list(TIME_RANGES), key="tune_range")
    labels_as_of = st.datetime_input(
        "Labels known as of",
        value=None,
        min_value=options.first_at,
        key="tune_labels_as_of",
        help="Empty: every label stored. A date-time: only the labels that had arrived by then.",
    )
    st.caption(
        "Empty: every label stored counts (a simulation's ground truth, every dispute). A "
        "date-time (UTC; simulated time for runs) counts only the chargebacks and disputes that "
        "had arrived by then, so the figures are what an analyst would have seen at that moment."
    )
    costs = cost_model_inputs("tune", per_row=2)
    unlocked = activation_controls(candidate)

with outcome:
    if text_error is not None:
        show_text_error(text_error)
        st.info("Nothing is backtested, saved or activated until the rules are valid.")
    elif candidate is None:
        for text in problems:
            st.error(text)
    else:
        results(candidate, run, time_range, labels_as_of, costs)

with st.expander("Policy history"):
    history(active)
with st.expander("Lists — rules read them as @name"):
    lists_section(eng, unlocked)
