"""Totals and latency percentiles of a selection of rows: ``GET /stats`` and the dashboard's KPIs.

One mechanism for both (see :mod:`engine.latency` for the percentile). A whole source (every
row, live traffic, one simulation run) is read from running totals, so its cost does not grow
with the table: the runs' rollups persisted beside their rows and the live traffic's totals kept
in memory. Any narrower selection (a time range, channels, currencies) is aggregated over its rows
in one query, whose ``quantile_disc`` is the same nearest rank.

Live latency is *measured* (request reaching the engine → commit); a simulation row's latency is
*modelled* (the run's network model). They are different quantities, so every result keeps them
apart (:attr:`SelectionTotals.measured`, :attr:`SelectionTotals.modelled`) and says which kind
the combined percentiles describe (:attr:`SelectionTotals.latency_kind`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np

from engine.filters import RowFilter, RunSelector
from engine.latency import percentile_from_histogram, reported
from engine.live_totals import LiveSnapshot
from engine.models import LatencyKind
from engine.store import ReadTx, RunRollups

QUANTILES = (0.50, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Nearest-rank latency percentiles (ms) over ``count`` latencies (0.0 each when none)."""

    count: int
    p50: float
    p95: float
    p99: float

    @classmethod
    def from_histogram(cls, buckets: np.ndarray, counts: np.ndarray) -> Percentiles:
        """From a latency histogram (buckets ascending)."""
        values = [percentile_from_histogram(buckets, counts, q) for q in QUANTILES]
        return cls(int(counts.sum()), *values)

    @classmethod
    def from_ranked(cls, count: int, values: list[float] | None) -> Percentiles:
        """From the raw nearest-rank values of ``QUANTILES`` (``quantile_disc``)."""
        if not count or not values:
            return cls(0, 0.0, 0.0, 0.0)
        return cls(count, *(reported(value) for value in values))


NO_LATENCY = Percentiles(0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class SelectionTotals:
    """Counts, money and latency of the selected rows."""

    total: int
    approved: int
    amount_sum: Decimal
    latency: Percentiles  # every selected row with a latency, measured and modelled together
    measured: Percentiles  # live rows
    modelled: Percentiles  # simulation rows

    @property
    def declined(self) -> int:
        """Rows declined."""
        return self.total - self.approved

    @property
    def avg_amount(self) -> Decimal:
        """Mean amount to the cent (0.00 without rows; currencies mixed)."""
        if not self.total:
            return Decimal("0.00")
        return (self.amount_sum / self.total).quantize(Decimal("0.01"), ROUND_HALF_EVEN)

    @property
    def latency_kind(self) -> LatencyKind | None:
        """What :attr:`latency` describes; None when no selected row has a latency."""
        if self.measured.count and self.modelled.count:
            return "mixed"
        if self.measured.count:
            return "measured"
        return "modelled" if self.modelled.count else None


def is_whole_source(filters: RowFilter) -> bool:
    """Whether ``filters`` selects a whole source (answered from running totals)."""
    return (
        filters.since is None
        and filters.until is None
        and filters.latest is None
        and not filters.channels
        and not filters.currencies
    )


def selection_totals(tx: ReadTx, live: LiveSnapshot, filters: RowFilter) -> SelectionTotals:
    """Totals of the rows ``filters`` selects, in the caller's read transaction: from running
    totals for a whole source, else from one aggregate over the selected rows."""
    if is_whole_source(filters):
        return _from_running_totals(tx, live, filters.run)
    return selection_totals_of_rows(tx, filters)


def _from_running_totals(tx: ReadTx, live: LiveSnapshot, run: RunSelector) -> SelectionTotals:
    runs = _EMPTY_RUNS if run == "live" else tx.rollups(None if run == "all" else run)
    if run != "all" and run != "live":
        live = _EMPTY_LIVE
    measured = Percentiles.from_histogram(live.latency_buckets, live.latency_counts)
    modelled = Percentiles.from_histogram(runs.latency_buckets, runs.latency_counts)
    buckets, where = np.unique(
        np.concatenate([runs.latency_buckets, live.latency_buckets]), return_inverse=True
    )
    weights = np.concatenate([runs.latency_counts, live.latency_counts])
    counts = np.bincount(where, weights=weights, minlength=len(buckets)).astype(np.int64)
    return SelectionTotals(
        total=runs.total + live.total,
        approved=runs.approved + live.approved,
        amount_sum=runs.amount_sum + Decimal(live.amount_cents).scaleb(-2),
        latency=Percentiles.from_histogram(buckets, counts),
        measured=measured,
        modelled=modelled,
    )


def selection_totals_of_rows(tx: ReadTx, filters: RowFilter) -> SelectionTotals:
    """:func:`selection_totals` aggregated over the selected rows, whatever the selection: one
    scan, per kind (live or simulation) and overall (GROUPING SETS)."""
    where, params = filters.where()
    sql = f"""
        SELECT grouping(live) = 1 AS overall, live, count(*),
               coalesce(count_if(status = 'Approved'), 0), coalesce(sum(amount), 0),
               count(latency_ms),
               quantile_disc(latency_ms, {list(QUANTILES)})
        FROM (SELECT run_id IS NULL AS live, status, amount, latency_ms
              FROM transactions {where})
        GROUP BY GROUPING SETS ((live), ())"""
    rows = tx.rows(sql, params)
    overall = next((r for r in rows if r[0]), None)
    by_kind = {bool(r[1]): Percentiles.from_ranked(r[5], r[6]) for r in rows if not r[0]}
    if overall is None:  # no rows at all
        return SelectionTotals(0, 0, Decimal("0.00"), NO_LATENCY, NO_LATENCY, NO_LATENCY)
    return SelectionTotals(
        total=int(overall[2]),
        approved=int(overall[3]),
        amount_sum=Decimal(overall[4]),
        latency=Percentiles.from_ranked(overall[5], overall[6]),
        measured=by_kind.get(True, NO_LATENCY),
        modelled=by_kind.get(False, NO_LATENCY),
    )


_EMPTY_RUNS = RunRollups(0, 0, Decimal(0), np.empty(0, np.int64), np.empty(0, np.int64))
_EMPTY_LIVE = LiveSnapshot(0, 0, 0, np.empty(0, np.int64), np.empty(0, np.int64))
