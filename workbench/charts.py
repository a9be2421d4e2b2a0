"""Plotly figure builders for the dashboard and notebooks (no streamlit import here).

Each builder takes an engine result (a :class:`~engine.analytics.Dashboard` frame or a
:class:`~engine.backtest.BacktestResult`) and returns a ``plotly.graph_objects.Figure``, so a
notebook draws exactly what the dashboard draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from engine.backtest import BacktestResult, PolicyMetrics

ACTIVE_COLOR = "#636efa"
CANDIDATE_COLOR = "#ef553b"
APPROVED_COLOR = "#00cc96"
# The title sits at the top of the figure and the legend at its bottom, under the x axis (the
# margins grow to hold it): a legend that wraps onto several rows in a narrow column never
# covers the title or the plot.
_LAYOUT: dict[str, Any] = {
    "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    "height": 320,
    "legend": {
        "orientation": "h",
        "xref": "container",
        "x": 0,
        "xanchor": "left",
        "yref": "container",
        "y": 0,
        "yanchor": "bottom",
    },
}
_TITLE: dict[str, Any] = {
    "x": 0,
    "xanchor": "left",
    "xref": "container",
    "y": 1,
    "yref": "container",
    "yanchor": "top",
    "pad": {"t": 8, "l": 10},
    "font": {"size": 15},
}
# Ticks never finer than a second: a single payment would otherwise zoom to ".0005" labels.
_TIME_TICKS: list[dict[str, Any]] = [
    {"dtickrange": [None, 60_000], "value": "%H:%M:%S<br>%b %d, %Y"},
    {"dtickrange": [60_000, 86_400_000], "value": "%H:%M<br>%b %d, %Y"},
    {"dtickrange": [86_400_000, None], "value": "%b %d<br>%Y"},
]
TIME_LABEL = "time (UTC)"
SIMULATED_TIME = "simulated time (UTC)"
WALL_CLOCK_TIME = "wall-clock time (UTC)"


def figure(title: str, **layout: Any) -> go.Figure:
    """An empty figure with the dashboard's title style and layout (``layout`` overrides it)."""
    fig = go.Figure()
    fig.update_layout(title={"text": title, **_TITLE}, **{**_LAYOUT, **layout})
    return fig


def _time_axis(fig: go.Figure, buckets: pd.Series, bucket: timedelta | None, label: str) -> None:
    """Name the kind of time on the x axis and span at least one bucket around the points."""
    axis: dict[str, Any] = {"title": label, "tickformatstops": _TIME_TICKS}
    if bucket is not None and len(buckets):
        half = pd.Timedelta(bucket) / 2
        axis["range"] = [buckets.min() - half, buckets.max() + half]
    fig.update_xaxes(**axis)


def approval_rate_chart(
    series: pd.DataFrame, *, bucket: timedelta | None = None, time_label: str = TIME_LABEL
) -> go.Figure:
    """Approval rate per time bucket (``series`` from :func:`engine.analytics.time_series`).

    ``bucket`` (the series' bucket width) keeps the axis at least one bucket wide;
    ``time_label`` says which time it is (:data:`SIMULATED_TIME` or :data:`WALL_CLOCK_TIME`)."""
    fig = figure("Approval rate over time", yaxis={"tickformat": ".0%", "rangemode": "tozero"})
    _time_axis(fig, series["bucket"], bucket, time_label)
    fig.add_scatter(
        x=series["bucket"],
        y=series["approval_rate"],
        mode="lines+markers",  # markers keep isolated buckets (between gaps) visible
        name="approval rate",
        line={"color": APPROVED_COLOR},
        marker={"size": 4},
        customdata=series["n"],
        hovertemplate="%{x}<br>%{y:.1%} of %{customdata:,} payments<extra></extra>",
    )
    return fig


def latency_chart(
    series: pd.DataFrame, *, bucket: timedelta | None = None, time_label: str = TIME_LABEL
) -> go.Figure:
    """Latency p50/p95/p99 (ms) per time bucket (``bucket``, ``time_label``: as
    :func:`approval_rate_chart`)."""
    fig = figure("Latency percentiles over time", yaxis={"title": "ms", "rangemode": "tozero"})
    _time_axis(fig, series["bucket"], bucket, time_label)
    for name, dash in (("p50", "solid"), ("p95", "dash"), ("p99", "dot")):
        fig.add_scatter(
            x=series["bucket"],
            y=series[name],
            mode="lines+markers",
            name=name,
            line={"dash": dash},
            marker={"size": 3},
            hovertemplate=f"%{{x}}<br>{name} %{{y:.2f}} ms<extra></extra>",
        )
    return fig


def decline_reasons_chart(reasons: pd.DataFrame) -> go.Figure:
    """Declines per reason (horizontal bars, most frequent on top)."""
    ordered = reasons.iloc[::-1]
    # counts outside the bars (a short bar has no room inside), with room for them on the right
    fig = figure(
        "Decline reasons",
        xaxis={"title": "declined payments", "range": [0, float(ordered["n"].max()) * 1.18]},
        yaxis={"ticksuffix": "  "},  # a gap between the reason and its bar
    )
    fig.add_bar(
        x=ordered["n"],
        y=ordered["reason_code"],
        orientation="h",
        text=ordered["n"],
        texttemplate="%{x:,}",
        textposition="outside",
        cliponaxis=False,
        customdata=ordered["reason"],
        hovertemplate="%{customdata}<br>%{x:,}<extra></extra>",
        marker_color=CANDIDATE_COLOR,
    )
    return fig


def amount_histogram_chart(amounts: pd.DataFrame) -> go.Figure:
    """Payment amounts in log-spaced bins."""
    fig = figure(
        "Amount distribution", xaxis={"title": "amount (log scale)", "type": "log"}, bargap=0.02
    )
    mid = (amounts["lo"] * amounts["hi"]) ** 0.5
    fig.add_bar(
        x=mid,
        y=amounts["n"],
        width=amounts["hi"] - amounts["lo"],
        customdata=amounts[["lo", "hi"]].to_numpy(),
        hovertemplate="%{customdata[0]:.2f}–%{customdata[1]:.2f}: %{y:,}<extra></extra>",
        marker_color=ACTIVE_COLOR,
    )
    return fig


def tradeoff_curve_chart(result: BacktestResult) -> go.Figure:
    """Approval rate vs fraud caught as the candidate's score threshold varies, with the active
    and candidate policies marked."""
    fig = figure(
        "Approval rate vs fraud caught",
        xaxis={"title": "approval rate", "tickformat": ".0%"},
        yaxis={"title": "fraud caught (recall)", "tickformat": ".0%", "range": [0, 1.02]},
        height=380,
    )
    points = [p for p in result.curve if p.recall is not None]
    if points:
        fig.add_scatter(
            x=[p.approval_rate for p in points],
            y=[p.recall for p in points],
            mode="lines",
            name="candidate, score threshold swept",
            line={"color": "#999999"},
            text=[
                "rule off" if p.score_threshold is None else f"threshold {p.score_threshold:.2f}"
                for p in points
            ],
            hovertemplate="%{text}<br>approve %{x:.1%}, catch %{y:.1%}<extra></extra>",
        )
    # the active label below its marker, the candidate's above: equal or close points never
    # put one label on the other
    for label, metrics, color, symbol, position in (
        ("active", result.active, ACTIVE_COLOR, "circle", "bottom center"),
        ("candidate", result.candidate, CANDIDATE_COLOR, "star", "top center"),
    ):
        if metrics.recall is None:
            continue
        fig.add_scatter(
            x=[metrics.approval_rate],
            y=[metrics.recall],
            mode="markers+text",
            name=label,
            text=[label],
            textposition=position,
            marker={"color": color, "size": 14, "symbol": symbol},
            hovertemplate=f"{label}<br>approve %{{x:.1%}}, catch %{{y:.1%}}<extra></extra>",
        )
    return fig


def scenario_recall_chart(result: BacktestResult) -> go.Figure:
    """Fraud caught per scenario, active vs candidate."""
    fig = figure(
        "Fraud caught per scenario",
        yaxis={"tickformat": ".0%", "range": [0, 1]},
        barmode="group",
        height=360,  # room for the legend and angled scenario names in a narrow column
    )
    names = [s.scenario.replace("_", " ") for s in result.scenarios]  # short, unangled labels
    fig.add_bar(
        x=names,
        y=[s.recall_active for s in result.scenarios],
        name="active",
        marker_color=ACTIVE_COLOR,
    )
    fig.add_bar(
        x=names,
        y=[s.recall_candidate for s in result.scenarios],
        name="candidate",
        marker_color=CANDIDATE_COLOR,
    )
    return fig


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


METRIC_ROWS: Sequence[tuple[str, str]] = (
    ("Approval rate", "approval_rate"),
    ("Decline rate", "decline_rate"),
    ("Fraud caught (recall)", "recall"),
    ("Precision", "precision"),
    ("Fraud loss (approved fraud)", "fraud_loss"),
    ("False declines", "false_declines"),
    ("False-decline amount", "false_decline_amount"),
    ("Approved", "approved"),
    ("Declined", "declined"),
)
CHALLENGE_ROWS: Sequence[tuple[str, str]] = (  # shown when either policy challenges
    ("Challenged (3-D Secure)", "challenged"),
    ("Challenges passed", "challenge_passed"),
    ("Challenges abandoned (lost sales)", "challenge_abandoned"),
    ("Challenges failed", "challenge_failed"),
    ("Fraud liability shifted", "liability_shifted"),
)


def comparison_table(result: BacktestResult) -> pd.DataFrame:
    """Active vs candidate, one metric per row, formatted as text, with the change."""

    def fmt(field: str, metrics: PolicyMetrics) -> str:
        value = getattr(metrics, field)
        if field in ("approval_rate", "decline_rate", "recall", "precision"):
            return _pct(value)
        if field in ("fraud_loss", "false_decline_amount"):
            return f"{value:,.2f}"
        return f"{value:,}"

    def delta(field: str) -> str:
        a, c = getattr(result.active, field), getattr(result.candidate, field)
        if a is None or c is None:
            return "–"
        if field in ("approval_rate", "decline_rate", "recall", "precision"):
            return f"{(c - a) * 100:+.2f} pp"
        if field in ("fraud_loss", "false_decline_amount"):
            return f"{c - a:+,.2f}"
        return f"{c - a:+,}"

    rows = list(METRIC_ROWS)
    if result.active.challenged or result.candidate.challenged:
        rows += CHALLENGE_ROWS
    return pd.DataFrame(
        {
            "metric": [label for label, _ in rows],
            "active": [fmt(f, result.active) for _, f in rows],
            "candidate": [fmt(f, result.candidate) for _, f in rows],
            "change": [delta(f) for _, f in rows],
        }
    )


KNOWN_ROWS: Sequence[tuple[str, str]] = (
    ("Fraud rows", "fraud"),
    ("Fraud caught", "fraud_caught"),
    ("Fraud caught (recall)", "recall"),
    ("Precision", "precision"),
    ("Fraud loss (approved fraud)", "fraud_loss"),
    ("False declines", "false_declines"),
)


def labels_known_table(known: PolicyMetrics, truth: PolicyMetrics) -> pd.DataFrame:
    """One policy's fraud figures with the labels known at a date beside those with every
    label stored (the ground truth of simulated rows), formatted as text, with the gap."""

    def fmt(field: str, metrics: PolicyMetrics) -> str:
        value = getattr(metrics, field)
        if field in ("recall", "precision"):
            return _pct(value)
        return f"{value:,.2f}" if field == "fraud_loss" else f"{value:,}"

    def gap(field: str) -> str:
        k, t = getattr(known, field), getattr(truth, field)
        if k is None or t is None:
            return "–"
        if field in ("recall", "precision"):
            return f"{(k - t) * 100:+.2f} pp"
        return f"{k - t:+,.2f}" if field == "fraud_loss" else f"{k - t:+,}"

    return pd.DataFrame(
        {
            "metric": [label for label, _ in KNOWN_ROWS],
            "known then": [fmt(f, known) for _, f in KNOWN_ROWS],
            "all labels": [fmt(f, truth) for _, f in KNOWN_ROWS],
            "known − all": [gap(f) for _, f in KNOWN_ROWS],
        }
    )


def run_comparison_chart(summaries: dict[str, dict[str, Any]]) -> go.Figure:
    """Approval rate and fraud caught of several runs side by side (``{label: run summary}``)."""
    fig = figure("Runs compared", yaxis={"tickformat": ".0%", "range": [0, 1]}, barmode="group")
    metrics = (
        ("approval rate", "approval_rate"),
        ("fraud caught", "fraud_caught_rate"),
        ("fraud share", "fraud_rate"),
    )
    for label, summary in summaries.items():
        fig.add_bar(
            x=[name for name, _ in metrics],
            y=[float(summary.get(key) or 0.0) for _, key in metrics],
            name=label,
        )
    return fig


def policy_sweep_chart(
    sweep: pd.DataFrame, *, min_approval: float | None = None, title: str | None = None
) -> go.Figure:
    """Fraud loss vs approval rate of many candidate policies (one backtest each).

    ``sweep`` has one row per policy with ``approval_rate``, ``fraud_loss`` and ``label`` (hover
    text); an optional ``role`` column marks rows to highlight (e.g. ``"default"``,
    ``"chosen"``), drawn as large labelled markers. ``min_approval`` draws the constraint line.
    """
    fig = figure(
        title or "Fraud loss vs approval rate, one point per policy",
        xaxis={"title": "approval rate", "tickformat": ".1%"},
        yaxis={"title": "fraud loss (approved fraud)", "rangemode": "tozero"},
        height=400,
    )
    fig.add_scatter(
        x=sweep["approval_rate"],
        y=sweep["fraud_loss"].astype(float),
        mode="markers",
        name="candidate policies",
        marker={"color": "#999999", "size": 7, "opacity": 0.7},
        text=sweep["label"],
        hovertemplate="%{text}<br>approve %{x:.2%}, loss %{y:,.2f}<extra></extra>",
    )
    roles = sweep["role"].dropna().unique() if "role" in sweep else []
    colors = {"default": ACTIVE_COLOR, "chosen": CANDIDATE_COLOR}
    positions = ("bottom center", "top center")  # alternate, so two roles' labels never meet
    for i, role in enumerate(roles):
        picked = sweep[sweep["role"] == role]
        fig.add_scatter(
            x=picked["approval_rate"],
            y=picked["fraud_loss"].astype(float),
            mode="markers+text",
            name=str(role),
            text=[str(role)] * len(picked),
            textposition=positions[i % 2],
            marker={"color": colors.get(str(role), APPROVED_COLOR), "size": 14, "symbol": "star"},
            customdata=picked["label"],
            hovertemplate="%{customdata}<br>approve %{x:.2%}, loss %{y:,.2f}<extra></extra>",
        )
    if min_approval is not None:
        fig.add_vline(
            x=min_approval,
            line={"dash": "dash", "color": "#444444"},
            annotation_text=f"approval ≥ {min_approval:.0%}",
            annotation_position="top left",
        )
    return fig


def latency_by_group_chart(frame: pd.DataFrame, group: str, title: str | None = None) -> go.Figure:
    """Latency p50/p95/p99 (ms) per group (e.g. channel), as grouped bars.

    ``frame`` has a ``group`` column and ``p50``, ``p95``, ``p99`` columns in ms.
    """
    fig = figure(
        title or f"Latency percentiles by {group}",
        yaxis={"title": "ms", "rangemode": "tozero"},
        barmode="group",
    )
    for name, opacity in (("p50", 1.0), ("p95", 0.75), ("p99", 0.5)):
        fig.add_bar(
            x=frame[group],
            y=frame[name],
            name=name,
            marker={"color": ACTIVE_COLOR, "opacity": opacity},
            hovertemplate=f"%{{x}}<br>{name} %{{y:.2f}} ms<extra></extra>",
        )
    return fig


def feature_profile_chart(profile: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Mean feature values per population (e.g. fraud scenario vs legitimate), grouped bars.

    ``profile`` has one row per population: a ``population`` column and one column per feature
    (values in [0, 1], such as the three risk features and the risk score).
    """
    features = [c for c in profile.columns if c != "population"]
    fig = figure(
        title or "Mean feature values by population",
        yaxis={"range": [0, 1], "title": "mean value"},
        barmode="group",
        height=380,
    )
    for _, row in profile.iterrows():
        fig.add_bar(
            x=features,
            y=[float(row[f]) for f in features],
            name=str(row["population"]),
            hovertemplate=f"{row['population']}<br>%{{x}} %{{y:.3f}}<extra></extra>",
        )
    return fig


def label_delay_chart(known: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Fraud that had happened vs fraud a team knew about, as of each date.

    ``known`` has ``as_of`` (timestamp), ``fraud_to_date`` (fraud rows before ``as_of``) and
    ``labelled_to_date`` (those whose chargeback label had arrived by ``as_of``).
    """
    fig = figure(
        title or "Fraud that happened vs fraud known (label delay)",
        xaxis={"title": "as of (simulated time, UTC)"},
        yaxis={"title": "fraud payments", "rangemode": "tozero"},
    )
    fig.add_scatter(
        x=known["as_of"],
        y=known["fraud_to_date"],
        mode="lines",
        name="fraud that had happened",
        line={"color": CANDIDATE_COLOR},
    )
    fig.add_scatter(
        x=known["as_of"],
        y=known["labelled_to_date"],
        mode="lines",
        name="fraud known (labelled)",
        line={"color": ACTIVE_COLOR, "dash": "dash"},
        fill="tozeroy",
    )
    return fig


RULE_COLUMNS: Sequence[tuple[str, str]] = (
    ("matched", "matched"),
    ("decided", "decided"),
    ("fraud caught", "fraud_decided"),
    ("unique fraud", "unique_fraud"),
    ("false positives", "false_positives"),
)


def rule_table(result: BacktestResult) -> pd.DataFrame:
    """One row per candidate rule, in the policy's order: what it matched and decided, the
    fraud it caught (decided), the fraud only it catches, its false positives and the GBP
    amount it decided."""
    return pd.DataFrame(
        {
            "#": [r.index for r in result.rules],
            "rule": [r.name for r in result.rules],
            "action": [r.action for r in result.rules],
            **{label: [getattr(r, field) for r in result.rules] for label, field in RULE_COLUMNS},
            "amount decided (GBP)": [f"{r.amount_decided:,.2f}" for r in result.rules],
        }
    )


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def overlap_heatmap(result: BacktestResult) -> go.Figure:
    """Fraud rows each pair of candidate block/review rules both match (symmetric; the diagonal
    is blank: a rule with itself says nothing about redundancy)."""
    names = [r.name for r in result.rules if r.action != "allow"]
    where = {name: i for i, name in enumerate(names)}
    z: list[list[int | None]] = [[None] * len(names) for _ in names]
    for cell in result.overlap:
        i, j = where[cell.a], where[cell.b]
        z[i][j] = z[j][i] = cell.fraud_both
    labels = [f"{i + 1}. {_short(n)}" for i, n in enumerate(names)]
    fig = figure(
        "Fraud both rules match",
        height=max(320, 120 + 36 * len(names)),
        yaxis={"autorange": "reversed"},
    )
    fig.add_heatmap(
        z=z,
        x=labels,
        y=labels,
        customdata=[[[a, b] for b in names] for a in names],
        colorscale="Reds",
        hoverongaps=False,
        texttemplate="%{z:,}",
        hovertemplate="%{customdata[0]}<br>and %{customdata[1]}<br>"
        "%{z:,} fraud rows both match<extra></extra>",
        colorbar={"title": "fraud rows"},
    )
    return fig
