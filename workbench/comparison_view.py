"""A comparison's verdict and KPI tiles, as the Compare and Shadow pages draw them."""

from __future__ import annotations

import streamlit as st

from engine.compare import Comparison
from workbench import formats
from workbench.formats import Tile


def both(a: str | None, b: str | None) -> str:
    """A tile's tooltip: the exact values under A and B."""
    return f"A {a} · B {b}"


def tiles(result: Comparison) -> list[Tile]:
    """Total cost, approval rate, fraud stopped, reviews (and challenges, when any) under B,
    each against A."""
    a, b = result.a, result.b
    currency = result.costs.currency
    return [
        Tile(
            f"Total cost B ({currency})",
            formats.money(b.costs.total),
            both(formats.exact_money(a.costs.total), formats.exact_money(b.costs.total)),
            formats.delta_money(b.costs.total, a.costs.total),
            delta_color="inverse",
        ),
        Tile(
            "Approval rate B",
            formats.percent(b.approval_rate),
            both(formats.exact_percent(a.approval_rate), formats.exact_percent(b.approval_rate)),
            formats.delta_pp(b.approval_rate, a.approval_rate),
        ),
        Tile(
            "Fraud stopped B",
            formats.percent(b.recall),
            both(formats.exact_percent(a.recall), formats.exact_percent(b.recall)),
            formats.delta_pp(b.recall, a.recall),
        ),
        Tile(
            "Reviews B",
            formats.count(b.reviewed),
            both(f"{a.reviewed:,}", f"{b.reviewed:,}")
            + (f" · backlog {b.review_backlog:,}" if b.review_backlog else ""),
            formats.delta_count(b.reviewed, a.reviewed),
            delta_color="inverse",
        ),
        *([challenge_tile(result)] if a.challenged or b.challenged else []),
    ]


def challenge_tile(result: Comparison) -> Tile:
    """Challenges under B, with their outcomes."""
    a, b = result.a, result.b
    return Tile(
        "Challenges B",
        formats.count(b.challenged),
        both(f"{a.challenged:,}", f"{b.challenged:,}")
        + f" · B passed {b.challenge_passed:,}, abandoned {b.challenge_abandoned:,}, "
        f"failed {b.challenge_failed:,}; fraud liability shifted {b.liability_shifted:,}",
        formats.delta_count(b.challenged, a.challenged),
        delta_color="off",
    )


SINGLE_DAY = "The selection spans a single day: no interval. Widen the time range."


def verdict(result: Comparison, single_day: str = SINGLE_DAY) -> None:
    """One message on B − A in total cost: cheaper, dearer, or no clear difference
    (``single_day`` when the selection has no interval)."""
    total = next(d for d in result.differences if d.metric == "total_cost")
    currency = result.costs.currency
    if total.low is None:
        st.info(single_day)
    elif total.high < 0:
        st.success(
            f"B costs less: {-total.difference:,.2f} {currency} saved "
            f"(between {-total.high:,.2f} and {-total.low:,.2f} at "
            f"{result.interval.confidence:.0%})."
        )
    elif total.low > 0:
        st.error(
            f"B costs more: {total.difference:,.2f} {currency} extra "
            f"(between {total.low:,.2f} and {total.high:,.2f} at "
            f"{result.interval.confidence:.0%})."
        )
    else:
        st.warning(
            f"No clear difference in total cost: B − A is {total.difference:+,.2f} "
            f"{currency}, but the interval ({total.low:+,.2f} … {total.high:+,.2f}) "
            "includes zero."
        )
