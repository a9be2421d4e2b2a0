"""Latency histograms: percentiles within 0.05 % of the exact nearest-rank value."""

from __future__ import annotations

import numpy as np
import pytest

from engine.latency import (
    bucket_of,
    exact_percentile,
    histogram_counts,
    percentile_from_histogram,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_histogram_percentiles_are_within_0_05_percent(seed: int, q: float) -> None:
    rng = np.random.default_rng(seed)
    latency = rng.lognormal(mean=1.0, sigma=1.2, size=50_000) + 0.5  # ms, 0.5 ms .. seconds
    buckets, counts = histogram_counts(latency)
    approx = percentile_from_histogram(buckets, counts, q)
    exact = exact_percentile(latency, q)
    # 4 significant digits in µs (rounded) plus the 3-decimal ms rounding of the answer.
    assert abs(approx - exact) <= 0.0005 * exact + 0.0005


def test_histogram_merges_by_adding_counts() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.exponential(5.0, 10_000), rng.exponential(50.0, 10_000)
    ba, ca = histogram_counts(a)
    bb, cb = histogram_counts(b)
    keys = np.union1d(ba, bb)
    merged = np.zeros(len(keys), dtype=np.int64)
    merged[np.searchsorted(keys, ba)] += ca
    merged[np.searchsorted(keys, bb)] += cb
    whole_keys, whole_counts = histogram_counts(np.concatenate([a, b]))
    np.testing.assert_array_equal(keys, whole_keys)
    np.testing.assert_array_equal(merged, whole_counts)


def test_buckets_keep_four_significant_digits() -> None:
    assert bucket_of(np.array([1.2344, 12.3456, 123.456, 0.0004])).tolist() == [
        1234,
        12350,
        123500,
        0,
    ]


def test_nan_latencies_are_skipped_and_empty_is_zero() -> None:
    _buckets, counts = histogram_counts(np.array([np.nan, 2.0, np.nan]))
    assert counts.sum() == 1
    empty_b, empty_c = histogram_counts(np.array([np.nan]))
    assert percentile_from_histogram(empty_b, empty_c, 0.95) == 0.0
    assert exact_percentile(np.array([]), 0.5) == 0.0


def test_nearest_rank_on_small_samples() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    buckets, counts = histogram_counts(values)
    assert percentile_from_histogram(buckets, counts, 0.5) == 2.0 == exact_percentile(values, 0.5)
    assert percentile_from_histogram(buckets, counts, 0.99) == 4.0 == exact_percentile(values, 0.99)
