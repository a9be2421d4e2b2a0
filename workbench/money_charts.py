"""Figures and tables of a policy comparison in money (no streamlit import here), shared by the
dashboard's compare and rule workbench pages and the notebooks."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from engine.compare import Comparison
from engine.costs import CostBreakdown
from workbench.charts import ACTIVE_COLOR, CANDIDATE_COLOR, figure

COST_COMPONENTS = (
    ("fraud_loss", "Fraud loss"),
    ("chargeback_fees", "Chargeback fees"),
    ("lost_margin", "Lost margin"),
    ("churn", "Churn"),
    ("review_cost", "Review cost"),
    ("challenge_cost", "Challenge cost"),
    ("abandonment_cost", "Abandoned sales"),
    ("friendly_fraud_loss", "Friendly fraud"),
)
MONEY_METRICS = {
    "total_cost", "fraud_loss", "false_decline_cost", "review_cost", "challenge_cost",
    "abandonment_cost", "friendly_fraud_loss",
}  # fmt: skip
METRIC_LABELS = {
    "total_cost": "Total cost",
    "fraud_loss": "Fraud loss",
    "false_decline_cost": "False-decline cost",
    "review_cost": "Review cost",
    "challenge_cost": "Challenge cost",
    "abandonment_cost": "Abandoned sales (challenges)",
    "friendly_fraud_loss": "Friendly fraud (chargebacks)",
    "approval_rate": "Approval rate",
    "recall": "Fraud stopped (recall)",
    "fraud_caught": "Fraud payments caught",
    "false_declines": "False declines",
    "reviewed": "Payments reviewed",
    "cp_at_k": "Card precision at capacity (CP@k)",
}


def cost_components_chart(result: Comparison) -> go.Figure:
    """Each cost component under A and under B, stacked into the total."""
    currency = result.costs.currency
    fig = figure(f"What each policy costs ({currency})", barmode="stack")
    for key, label in COST_COMPONENTS:
        values = [float(getattr(side.costs, key)) for side in (result.a, result.b)]
        fig.add_bar(name=label, x=["A", "B"], y=values, hovertemplate=f"{label}: %{{y:,.2f}}")
    fig.update_yaxes(title=currency, tickformat=",.0f")
    return fig


def money_differences_chart(result: Comparison) -> go.Figure:
    """B − A for the money metrics with their intervals: a bar whose whisker crosses zero is
    not distinguishable from day-to-day noise."""
    rows = [d for d in result.differences if d.metric in MONEY_METRICS]
    labels = [METRIC_LABELS[d.metric] for d in rows]
    values = [d.difference for d in rows]
    has_interval = all(d.low is not None for d in rows)
    error = (
        {
            "type": "data",
            "symmetric": False,
            "array": [d.high - d.difference for d in rows],  # type: ignore[operator]
            "arrayminus": [d.difference - d.low for d in rows],  # type: ignore[operator]
        }
        if has_interval
        else None
    )
    fig = figure(
        f"B − A in {result.costs.currency}, {result.interval.confidence:.0%} interval"
        if has_interval
        else f"B − A in {result.costs.currency} (one day: no interval)"
    )
    colors = [CANDIDATE_COLOR if v > 0 else ACTIVE_COLOR for v in values]
    fig.add_bar(x=labels, y=values, error_y=error, marker_color=colors, showlegend=False)
    fig.add_hline(y=0, line_width=1, line_color="#888")
    fig.update_yaxes(title=result.costs.currency, tickformat=",.0f")
    return fig


def differences_table(result: Comparison) -> pd.DataFrame:
    """Every compared metric: A, B, B − A and its interval, written for people."""

    def shown(metric: str, value: float | None) -> str:
        if value is None:
            return "–"
        if metric in ("approval_rate", "recall", "cp_at_k"):
            return f"{value:.2%}"
        if metric in MONEY_METRICS:
            return f"{value:,.2f}"
        return f"{value:,.0f}"

    def signed(metric: str, value: float | None) -> str:
        """A difference: rates in percentage points, the rest as shown."""
        if value is None:
            return "–"
        if metric in ("approval_rate", "recall", "cp_at_k"):
            return f"{value * 100:+.2f} pp"
        text = shown(metric, value)
        return text if value < 0 else f"+{text}"

    return pd.DataFrame(
        [
            {
                "metric": METRIC_LABELS.get(d.metric, d.metric),
                "A": shown(d.metric, d.a),
                "B": shown(d.metric, d.b),
                "B − A": signed(d.metric, d.difference),
                "interval": "–"
                if d.low is None
                else f"{signed(d.metric, d.low)} … {signed(d.metric, d.high)}",
                "clear?": "–" if d.low is None else ("yes" if d.low > 0 or d.high < 0 else "no"),  # type: ignore[operator]
            }
            for d in result.differences
        ]
    )


# Each cost, then (under it, marked ↳) the count or amount its price multiplies.
COST_ROWS = (
    ("Fraud loss", "fraud_loss"),
    ("↳ approved fraud payments", "approved_fraud"),
    ("Chargeback fees", "chargeback_fees"),
    ("Lost margin", "lost_margin"),
    ("↳ declined legitimate amount", "false_decline_amount"),
    ("Churn", "churn"),
    ("↳ cards falsely declined", "false_declined_cards"),
    ("Review cost", "review_cost"),
    ("↳ payments reviewed", "reviewed"),
    ("Challenge cost", "challenge_cost"),
    ("↳ payments challenged", "challenged"),
    ("Abandoned sales", "abandonment_cost"),
    ("↳ abandoned amount", "abandoned_amount"),
    ("Friendly fraud", "friendly_fraud_loss"),
    ("↳ approved friendly-fraud payments", "friendly_fraud"),
    ("Total cost", "total"),
)


def costs_table(
    before: CostBreakdown, after: CostBreakdown, names: tuple[str, str]
) -> pd.DataFrame:
    """Each cost and what it multiplies under two policies (``names``: their column titles,
    ``before`` first) and the change, written for people."""

    def shown(value: object) -> str:
        return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"

    def change(field: str) -> str:
        delta = getattr(after, field) - getattr(before, field)
        return f"+{shown(delta)}" if delta > 0 else shown(delta)

    return pd.DataFrame(
        {
            "cost": [label for label, _ in COST_ROWS],
            names[0]: [shown(getattr(before, field)) for _, field in COST_ROWS],
            names[1]: [shown(getattr(after, field)) for _, field in COST_ROWS],
            "change": [change(field) for _, field in COST_ROWS],
        }
    )


def cost_waterfall(
    before: CostBreakdown, after: CostBreakdown, names: tuple[str, str]
) -> go.Figure:
    """From ``before``'s total cost to ``after``'s, one step per cost component (``names``:
    the two policies' labels): which costs the change of policy moves, and how far."""
    steps = [(label, getattr(after, key) - getattr(before, key)) for key, label in COST_COMPONENTS]
    fig = figure(f"From {names[0]} to {names[1]} ({after.currency})", showlegend=False)
    fig.add_waterfall(
        x=[names[0], *(label for label, _ in steps), names[1]],
        y=[float(before.total), *(float(delta) for _, delta in steps), float(after.total)],
        measure=["absolute", *("relative" for _ in steps), "total"],
        # coloured as money_differences_chart colours a difference
        increasing={"marker": {"color": CANDIDATE_COLOR}},
        decreasing={"marker": {"color": ACTIVE_COLOR}},
        totals={"marker": {"color": "#888"}},
        hovertemplate="%{x}: %{y:,.2f}<extra></extra>",
    )
    fig.update_yaxes(title=after.currency, tickformat=",.0f")
    return fig
