"""Running totals and the latency histogram of live traffic, kept in memory.

Live payments arrive one group commit at a time; updating a totals row in DuckDB inside every
group cost as much as inserting the rows themselves. The process that owns the database is the
only writer, so it can keep the live totals in memory instead: they are rebuilt from the live rows
at start-up (an aggregate in DuckDB), updated after each commit before any request is answered,
and cleared by a reset. Simulation runs keep their persisted rollups (one update per chunk).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

import numpy as np

from engine.latency import histogram_counts


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """Live totals at one instant."""

    total: int
    approved: int
    amount_cents: int
    latency_buckets: np.ndarray
    latency_counts: np.ndarray


class LiveTotals:
    """Thread-safe counters: payments, approvals, amount (cents), latency buckets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = self._approved = self._amount_cents = 0
        self._latency: Counter[int] = Counter()

    def add_decisions(self, approved: np.ndarray, amount_cents: np.ndarray) -> None:
        """Count a committed group's decisions and amounts."""
        with self._lock:
            self._total += len(approved)
            self._approved += int(np.count_nonzero(approved))
            self._amount_cents += int(np.sum(amount_cents, dtype=np.int64))

    def add_latencies(self, latency_ms: np.ndarray) -> None:
        """Count measured latencies into the histogram."""
        buckets, counts = histogram_counts(latency_ms)
        with self._lock:
            self._latency.update(dict(zip(buckets.tolist(), counts.tolist(), strict=True)))

    def snapshot(self) -> LiveSnapshot:
        """The current totals (buckets ascending)."""
        with self._lock:
            items = sorted(self._latency.items())
            return LiveSnapshot(
                self._total,
                self._approved,
                self._amount_cents,
                np.array([b for b, _ in items], dtype=np.int64),
                np.array([n for _, n in items], dtype=np.int64),
            )

    def clear(self) -> None:
        """Forget everything (after a reset)."""
        with self._lock:
            self._total = self._approved = self._amount_cents = 0
            self._latency.clear()

    def load(self, total: int, approved: int, amount_cents: int, latency_ms: np.ndarray) -> None:
        """Start from totals aggregated over the live rows on disk."""
        self.clear()
        with self._lock:
            self._total, self._approved, self._amount_cents = total, approved, amount_cents
        self.add_latencies(latency_ms)
