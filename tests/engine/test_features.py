"""History features: one definition, live (FeatureState) and bulk (HistoryTracker) agree."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.features import (
    CHANNELS,
    DAY_MS,
    NEVER_MS,
    VELOCITY_WINDOW_MS,
    FeatureState,
    HistoryCounts,
    HistoryTracker,
    PairHistory,
    normalize,
)

HOUR = VELOCITY_WINDOW_MS


def random_stream(seed: int = 11, n: int = 5_000):
    """A stream with repeat cards, shared devices, missing devices, currency changes and ties."""
    rng = np.random.default_rng(seed)
    card = rng.integers(0, 150, n)
    device = np.where(rng.random(n) < 0.15, -1, rng.integers(0, 60, n))
    currency = np.where(rng.random(n) < 0.8, 0, rng.integers(0, 4, n))
    gaps = np.where(rng.random(n) < 0.1, 0, rng.exponential(20_000, n).astype(np.int64))
    t_ms = 1_700_000_000_000 + np.cumsum(gaps)
    return card, device, currency, t_ms


def live_counts(card, device, currency, t_ms) -> np.ndarray:
    state = FeatureState()
    out = np.empty((len(card), 4), dtype=np.int64)
    for i in range(len(card)):
        args = (
            f"card-{card[i]}",
            None if device[i] < 0 else f"dev-{device[i]}",
            f"CUR{currency[i]}",
            int(t_ms[i]),
        )
        out[i] = state.counts(*args)[:4]
        state.observe(*args)
    return out


def as_matrix(counts: HistoryCounts) -> np.ndarray:
    return np.column_stack(
        [
            counts.velocity_count,
            counts.device_seen_count,
            counts.device_other_cards,
            counts.foreign_currency.astype(np.int64),
        ]
    )


def test_live_and_bulk_history_counts_are_identical() -> None:
    stream = random_stream()
    live = live_counts(*stream)
    bulk = as_matrix(HistoryTracker().update(*stream))
    # The stream must exercise every count, or the comparison proves little.
    assert live[:, 0].max() >= 3 and live[:, 1].max() >= 3 and live[:, 2].max() >= 3
    assert live[:, 3].sum() > 100
    np.testing.assert_array_equal(live, bulk)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chunked_tracker_equals_one_shot(seed: int) -> None:
    stream = random_stream(seed=seed, n=4_000)
    one_shot = as_matrix(HistoryTracker().update(*stream))
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, 4_000), size=25, replace=False))
    tracker = HistoryTracker()
    parts = [
        as_matrix(tracker.update(*(column[a:b] for column in stream)))
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, 4_000], strict=True)
    ]
    np.testing.assert_array_equal(np.vstack(parts), one_shot)


def test_features_lie_in_the_unit_interval() -> None:
    card, device, currency, t_ms = random_stream(n=3_000)
    counts = HistoryTracker().update(card, device, currency, t_ms)
    channel = np.array(CHANNELS)[np.random.default_rng(5).integers(0, len(CHANNELS), len(card))]
    rng = np.random.default_rng(6)
    pairs = PairHistory(  # every corner: none, a little, a lot of history; fresh and stale
        rng.integers(0, 40, len(card)),
        rng.integers(0, 60 * DAY_MS, len(card)),
        rng.choice([0, HOUR, 90 * DAY_MS, NEVER_MS], len(card)),
    )
    features = normalize(counts, device >= 0, channel, pairs)
    for column in (
        features.spending_velocity,
        features.device_trust_score,
        features.ip_risk_score,
    ):
        assert column.dtype == np.float64
        assert np.all((column >= 0.0) & (column <= 1.0))
    assert features.spending_velocity.max() > 0


def _features(state: FeatureState, card: str, device: str | None, currency: str, t: int):
    """One payment through the live state, approved."""
    counts = state.counts(card, device, currency, t)
    state.observe(card, device, currency, t)
    pairs = state.pair_history([(card, device)], t)
    state.approve([(card, device)], np.array([True]), t)
    hc = HistoryCounts.from_rows(np.array([counts]))
    channel = np.array(["ecommerce"])
    return counts[:4], normalize(hc, np.array([device is not None]), channel, pairs)


def test_device_trust_drops_as_a_device_serves_more_cards() -> None:
    state = FeatureState()
    trust = [
        float(_features(state, f"card-{i}", "shared", "GBP", 1_000 * i)[1].device_trust_score[0])
        for i in range(6)
    ]
    assert trust == pytest.approx([0.3 / (1 + 0.5 * k) for k in range(6)])
    assert all(a > b for a, b in itertools.pairwise(trust))


def test_no_device_is_low() -> None:
    state = FeatureState()
    _, no_device = _features(state, "card", None, "GBP", 10_000)
    assert no_device.device_trust_score[0] == pytest.approx(0.1)
    assert no_device.ip_risk_score[0] == pytest.approx(0.30 + 0.25)


def test_foreign_currency_raises_ip_risk() -> None:
    state = FeatureState()
    _, home = _features(state, "card", "phone", "GBP", 0)
    (_, _, _, foreign), away = _features(state, "card", "phone", "USD", 1)
    assert foreign == 1
    assert home.ip_risk_score[0] == pytest.approx(0.30)
    assert away.ip_risk_score[0] == pytest.approx(0.55)


def test_velocity_counts_only_the_trailing_hour() -> None:
    state = FeatureState()
    times = [0, 30 * 60_000, HOUR - 1]
    for t in times:
        state.observe("card", None, "GBP", t)
    assert state.counts("card", None, "GBP", HOUR - 1)[0] == 3
    # At exactly one hour after the first payment, that payment has left the window.
    assert state.counts("card", None, "GBP", HOUR)[0] == 2
    assert state.counts("card", None, "GBP", HOUR + 30 * 60_000)[0] == 1
    assert state.counts("other-card", None, "GBP", HOUR)[0] == 0

    # The bulk path agrees on the same boundary cases.
    t = np.array([0, 30 * 60_000, HOUR - 1, HOUR, HOUR + 30 * 60_000, 3 * HOUR])
    card = np.zeros(len(t), dtype=np.int64)
    counts = HistoryTracker().update(card, np.full(len(t), -1), np.zeros(len(t), np.int64), t)
    assert counts.velocity_count.tolist() == [0, 1, 2, 2, 2, 0]


def test_velocity_saturates_at_ten_payments() -> None:
    n = 15
    t = np.arange(n) * 1_000
    counts = HistoryTracker().update(
        np.zeros(n, np.int64), np.full(n, -1), np.zeros(n, np.int64), t
    )
    features = normalize(
        counts, np.zeros(n, bool), np.full(n, "pos"), PairHistory(*[np.zeros(n, np.int64)] * 3)
    )
    assert features.spending_velocity.tolist() == [min(i / 10, 1.0) for i in range(n)]
