"""Risk features computed from history, with one definition for the live and the bulk path.

All three features lie in [0, 1]:

* ``spending_velocity`` = min(n / 10, 1), where n is the number of this card's earlier payments
  in the trailing hour (event time) before this one.
* ``device_trust_score`` = familiarity / (1 + 0.5 · other_cards). familiarity is 0.3 for a
  device never seen with this card, 0.7 after 1–2 earlier payments on it, 1.0 after 3 or more;
  other_cards counts the distinct other cards seen on the device before. No device id: 0.1.
* ``ip_risk_score`` models how unverifiable the payment's network origin is, deterministically:
  a base per channel (pos/contactless 0.05, mobile 0.20, ecommerce 0.30, moto 0.45), +0.25 when
  no device id is sent (anonymous origin), +0.25 when the currency differs from the card's home
  currency (the currency of its first payment: a cross-border origin), clipped to 1.

The live path keeps the history it needs in memory (:class:`FeatureState`) and updates it in
arrival order; the bulk path computes the same counts with sorts over a whole stream
(:func:`history_counts`). A test runs one stream through both and requires identical counts.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

import numpy as np

VELOCITY_WINDOW_MS = 3_600_000
VELOCITY_SATURATION = 10
NO_DEVICE_TRUST = 0.1
CHANNEL_IP_RISK: dict[str, float] = {
    "pos": 0.05,
    "contactless": 0.05,
    "mobile": 0.20,
    "ecommerce": 0.30,
    "moto": 0.45,
}
CHANNELS: tuple[str, ...] = tuple(CHANNEL_IP_RISK)
CHANNEL_IP_RISK_BY_CODE = np.array([CHANNEL_IP_RISK[name] for name in CHANNELS])
NO_DEVICE_IP_RISK = 0.25
FOREIGN_CURRENCY_IP_RISK = 0.25


@dataclass(frozen=True, slots=True)
class HistoryCounts:
    """Raw, integer facts about each payment's history (column-wise)."""

    velocity_count: np.ndarray  # earlier payments of the card in the trailing window
    device_seen_count: np.ndarray  # earlier payments of the card on this device
    device_other_cards: np.ndarray  # distinct other cards seen on this device before
    foreign_currency: np.ndarray  # bool: currency differs from the card's home currency


@dataclass(frozen=True, slots=True)
class FeatureColumns:
    """The three normalized features (column-wise, float64)."""

    spending_velocity: np.ndarray
    device_trust_score: np.ndarray
    ip_risk_score: np.ndarray


def normalize(counts: HistoryCounts, has_device: np.ndarray, channel: np.ndarray) -> FeatureColumns:
    """Turn history counts into the three features; ``channel`` holds channel names, or integer
    codes into :data:`CHANNELS` (faster for bulk data)."""
    velocity = np.minimum(counts.velocity_count / VELOCITY_SATURATION, 1.0)
    familiarity = np.select(
        [counts.device_seen_count >= 3, counts.device_seen_count >= 1], [1.0, 0.7], default=0.3
    )
    trust = np.where(
        has_device, familiarity / (1.0 + 0.5 * counts.device_other_cards), NO_DEVICE_TRUST
    )
    channel = np.asarray(channel)
    if np.issubdtype(channel.dtype, np.integer):  # codes into CHANNELS: a table lookup
        base = CHANNEL_IP_RISK_BY_CODE[channel]
    else:
        base = np.vectorize(CHANNEL_IP_RISK.__getitem__, otypes=[np.float64])(channel)
    ip_risk = np.minimum(
        base
        + np.where(has_device, 0.0, NO_DEVICE_IP_RISK)
        + np.where(counts.foreign_currency, FOREIGN_CURRENCY_IP_RISK, 0.0),
        1.0,
    )
    return FeatureColumns(velocity.astype(np.float64), trust.astype(np.float64), ip_risk)


class FeatureState:
    """The live path's history, in memory, updated in arrival order (one writer thread)."""

    def __init__(self) -> None:
        self._card_times: dict[str, deque[int]] = defaultdict(deque)
        self._pair_count: dict[tuple[str, str], int] = defaultdict(int)
        self._device_cards: dict[str, set[str]] = defaultdict(set)
        self._home_currency: dict[str, str] = {}

    def counts(
        self, card_hash: str, device_id: str | None, currency: str, t_ms: int
    ) -> tuple[int, int, int, bool]:
        """History counts for a payment at event time ``t_ms``, before observing it."""
        times = self._card_times.get(card_hash)
        velocity = 0
        if times:
            while times and times[0] <= t_ms - VELOCITY_WINDOW_MS:
                times.popleft()
            velocity = len(times)
        seen = other = 0
        if device_id is not None:
            seen = self._pair_count.get((card_hash, device_id), 0)
            cards = self._device_cards.get(device_id, ())
            other = len(cards) - (card_hash in cards)
        home = self._home_currency.get(card_hash, currency)
        return velocity, seen, other, home != currency

    def observe(self, card_hash: str, device_id: str | None, currency: str, t_ms: int) -> None:
        """Record a decided payment so later payments see it."""
        self._card_times[card_hash].append(t_ms)
        self._home_currency.setdefault(card_hash, currency)
        if device_id is not None:
            self._pair_count[(card_hash, device_id)] += 1
            self._device_cards[device_id].add(card_hash)


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a new run of equal keys begins."""
    starts = np.ones(len(sorted_keys), dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return starts


def _rank_in_groups(starts: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run that ``starts`` marks."""
    index = np.arange(len(starts))
    return index - np.maximum.accumulate(np.where(starts, index, 0))


def _grow(array: np.ndarray, size: int, fill: int) -> np.ndarray:
    if size <= len(array):
        return array
    grown = np.full(max(size, 2 * len(array)), fill, dtype=array.dtype)
    grown[: len(array)] = array
    return grown


class HistoryTracker:
    """Vectorized :class:`FeatureState` for a stream fed in chunks, in event order.

    Codes are dense non-negative integers (device −1 = none); ``t_ms`` is non-decreasing across
    chunks and ties are broken by row order, like arrival order on the live path. State between
    chunks: the rows still inside the velocity window, each card's home currency, each
    (device, card) pair's payment count and each device's distinct-card count.
    """

    def __init__(self) -> None:
        self._tail_card = np.empty(0, dtype=np.int64)
        self._tail_t = np.empty(0, dtype=np.int64)
        self._home = np.full(0, -1, dtype=np.int64)
        self._device_cards = np.zeros(0, dtype=np.int64)
        self._pair_codes = np.empty(0, dtype=np.int64)  # sorted (device << 32 | card)
        self._pair_counts = np.empty(0, dtype=np.int64)

    def update(
        self, card: np.ndarray, device: np.ndarray, currency: np.ndarray, t_ms: np.ndarray
    ) -> HistoryCounts:
        """History counts for the next chunk of the stream, then remember it."""
        card = np.asarray(card, dtype=np.int64)
        device = np.asarray(device, dtype=np.int64)
        currency = np.asarray(currency, dtype=np.int64)
        t_ms = np.asarray(t_ms, dtype=np.int64)
        n = len(card)
        if n == 0:
            empty = np.empty(0, dtype=np.int64)
            return HistoryCounts(empty, empty, empty, np.empty(0, dtype=bool))
        velocity = self._velocity(card, t_ms)
        foreign = self._foreign_currency(card, currency)
        seen, other = self._device_history(card, device)
        return HistoryCounts(velocity, seen, other, foreign)

    def _velocity(self, card: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        ctx = len(self._tail_card)
        all_card = np.concatenate([self._tail_card, card])
        all_t = np.concatenate([self._tail_t, t_ms])
        total = len(all_card)
        by_card = np.argsort(all_card * total + np.arange(total))
        origin = int(all_t[0])
        span = int(all_t[-1]) - origin + VELOCITY_WINDOW_MS + 1
        key = all_card[by_card] * span + (all_t[by_card] - origin)
        first_in_window = np.searchsorted(key, key - VELOCITY_WINDOW_MS, side="right")
        counts = np.empty(total, dtype=np.int64)
        counts[by_card] = np.arange(total) - first_in_window
        keep = all_t > int(all_t[-1]) - VELOCITY_WINDOW_MS
        self._tail_card, self._tail_t = all_card[keep], all_t[keep]
        return counts[ctx:]

    def _foreign_currency(self, card: np.ndarray, currency: np.ndarray) -> np.ndarray:
        self._home = _grow(self._home, int(card.max()) + 1, -1)
        first_currency = np.full(len(self._home), -1, dtype=np.int64)
        first_currency[card[::-1]] = currency[::-1]  # the last write wins: the first payment
        unset = self._home < 0
        self._home[unset] = first_currency[unset]
        return self._home[card] != currency

    def _device_history(
        self, card: np.ndarray, device: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(card)
        seen = np.zeros(n, dtype=np.int64)
        other = np.zeros(n, dtype=np.int64)
        rows = np.flatnonzero(device >= 0)
        if not len(rows):
            return seen, other
        d_card, d_dev = card[rows], device[rows]
        m = len(rows)
        pair = (d_dev << 32) | d_card
        compact = d_dev * (int(d_card.max()) + 1) + d_card
        if int(compact.max()) < (1 << 62) // m:  # row-tiebroken key fits: faster unstable sort
            by_pair = np.argsort(compact * m + np.arange(m))
        else:
            by_pair = np.argsort(pair, kind="stable")
        pair_sorted = pair[by_pair]
        starts = _group_starts(pair_sorted)
        insert_at = np.searchsorted(self._pair_codes, pair_sorted)
        position = np.minimum(insert_at, max(len(self._pair_codes) - 1, 0))
        known = (
            self._pair_codes[position] == pair_sorted
            if len(self._pair_codes)
            else np.zeros(m, dtype=bool)
        )
        before = np.where(known, self._pair_counts[position] if len(self._pair_codes) else 0, 0)
        seen_sorted = before + _rank_in_groups(starts)
        seen_d = np.empty(m, dtype=np.int64)
        seen_d[by_pair] = seen_sorted

        # Distinct cards on the device before each row: the device's count before this chunk
        # plus first-ever pair occurrences earlier in the chunk.
        self._device_cards = _grow(self._device_cards, int(d_dev.max()) + 1, 0)
        first_ever = (seen_d == 0).astype(np.int64)
        by_dev = np.argsort(d_dev * m + np.arange(m))
        firsts = first_ever[by_dev]
        inclusive = np.cumsum(firsts)
        dev_starts = _group_starts(d_dev[by_dev])
        base = np.maximum.accumulate(np.where(dev_starts, inclusive - firsts, 0))
        distinct_before = np.empty(m, dtype=np.int64)
        distinct_before[by_dev] = inclusive - firsts - base + self._device_cards[d_dev[by_dev]]
        self._device_cards += np.bincount(
            d_dev, weights=first_ever, minlength=len(self._device_cards)
        ).astype(np.int64)
        seen[rows] = seen_d
        other[rows] = distinct_before - (seen_d > 0)

        # Merge this chunk's pair counts into the sorted state in linear time: known pairs add
        # to their counts, new pairs are inserted at their sorted positions.
        unique_pairs = pair_sorted[starts]
        chunk_counts = np.diff(np.append(np.flatnonzero(starts), m))
        unique_known = known[starts]
        self._pair_counts[position[starts][unique_known]] += chunk_counts[unique_known]
        new = ~unique_known
        at = insert_at[starts][new]
        self._pair_codes = np.insert(self._pair_codes, at, unique_pairs[new])
        self._pair_counts = np.insert(self._pair_counts, at, chunk_counts[new])
        return seen, other
