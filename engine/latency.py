"""The one latency percentile: nearest rank, reported at four significant digits.

Latencies are kept as microsecond buckets rounded to four significant digits (1234 µs, 12.34 ms,
123.4 ms, ...): a few tens of thousands of buckets at most, whatever the row count, from which
p50/p95/p99 are read as nearest-rank percentiles (:func:`percentile_from_histogram`). Rounding
keeps order, so the nearest-rank percentile of the raw values, rounded the same way
(:func:`reported`), is the same number: that is how a selection of stored rows is answered
(DuckDB's ``quantile_disc`` is the nearest rank), and why ``GET /stats`` and the dashboard agree.
"""

from __future__ import annotations

import numpy as np

SIGNIFICANT_DIGITS = 4


def bucket_of(latency_ms: np.ndarray) -> np.ndarray:
    """Bucket keys (int µs, rounded to four significant digits) for latencies in ms."""
    micros = np.maximum(np.rint(np.asarray(latency_ms, dtype=np.float64) * 1000.0), 0)
    digits = np.floor(np.log10(np.maximum(micros, 1.0))).astype(np.int64) + 1
    scale = 10.0 ** np.maximum(digits - SIGNIFICANT_DIGITS, 0)
    return (np.rint(micros / scale) * scale).astype(np.int64)


def histogram_counts(latency_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bucket keys, counts) of a batch of latencies; NaN (unknown) latencies are skipped."""
    values = np.asarray(latency_ms, dtype=np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.unique(bucket_of(values), return_counts=True)


def percentile_from_histogram(buckets: np.ndarray, counts: np.ndarray, q: float) -> float:
    """Nearest-rank percentile in ms (0.0 for an empty histogram); buckets sorted ascending."""
    total = int(counts.sum())
    if total == 0:
        return 0.0
    rank = max(int(np.ceil(q * total)), 1)
    index = int(np.searchsorted(np.cumsum(counts), rank))
    return round(float(buckets[index]) / 1000.0, 3)


def reported(latency_ms: float) -> float:
    """A raw latency (ms) as percentiles report it: its bucket, in ms."""
    return round(float(bucket_of(np.array([latency_ms]))[0]) / 1000.0, 3)


def exact_percentile(latency_ms: np.ndarray, q: float) -> float:
    """Nearest-rank percentile of raw values, the reference the histogram approximates."""
    values = np.sort(np.asarray(latency_ms, dtype=np.float64))
    if not len(values):
        return 0.0
    return float(values[max(int(np.ceil(q * len(values))), 1) - 1])
