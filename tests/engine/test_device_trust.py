"""Device trust a fraudster cannot buy in minutes: familiarity comes from a (card, device)
pair's settled history (approved, at least a day old, not disputed), grows with it and with
tenure, and decays with disuse (module docstring of engine/features.py).

A random stream with every edge (payments exactly a day apart, disputes before, at and after
settling, long idle gaps, declines, ties, no device) goes through a brute-force reading of the
definition, the live path's FeatureState and the bulk path's HistoryTracker in awkward chunks:
identical settled history for every payment. Then the behaviour an analyst relies on, on both
paths, and a live engine that restarts between payments gives the trust it gives without.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from engine import features
from engine.features import (
    DAY_MS,
    HOUR_MS,
    NEVER_MS,
    SETTLE_MS,
    TRUST_NEW,
    FeatureState,
    HistoryTracker,
    PairHistory,
    familiarity,
)
from engine.service import Engine

T0 = 1_700_000_000_000
MINUTE_MS = 60_000


def edge_stream(seed: int, n: int = 1_500):
    """(card, device, t_ms, approved, disputed_at) over months, with every edge."""
    rng = np.random.default_rng(seed)
    card = rng.integers(0, 12, n)
    device = np.where(rng.random(n) < 0.1, -1, rng.integers(0, 5, n))
    gaps = rng.choice(
        [0, 1, MINUTE_MS, HOUR_MS, DAY_MS // 3, DAY_MS, 9 * DAY_MS],
        n,
        p=[0.1, 0.05, 0.3, 0.3, 0.15, 0.07, 0.03],
    )
    t_ms = T0 + np.cumsum(gaps)
    approved = rng.random(n) < 0.7
    delay = rng.choice([0, SETTLE_MS - 1, SETTLE_MS, SETTLE_MS + 1, 3 * DAY_MS, 40 * DAY_MS], n)
    disputed_at = np.where(rng.random(n) < 0.2, t_ms + delay, -1)
    return card, device, t_ms, approved, disputed_at


def brute_force(card, device, t_ms, approved, disputed_at) -> np.ndarray:
    """The definition read literally: (settled, tenure, idle) per payment."""
    out = np.zeros((len(t_ms), 3), dtype=np.int64)
    for i in range(len(t_ms)):
        if device[i] < 0:
            continue
        same = np.flatnonzero((card[:i] == card[i]) & (device[:i] == device[i]))
        if not len(same):
            out[i] = (0, 0, NEVER_MS)
            continue
        undisputed = ~((disputed_at[same] >= 0) & (disputed_at[same] <= t_ms[i]))
        settled = same[approved[same] & (t_ms[same] <= t_ms[i] - SETTLE_MS) & undisputed]
        tenure = t_ms[i] - t_ms[settled].min() if len(settled) else 0
        out[i] = (len(settled), tenure, t_ms[i] - t_ms[same[-1]])
    return out


def as_matrix(pairs: PairHistory) -> np.ndarray:
    return np.column_stack([pairs.settled, pairs.tenure_ms, pairs.idle_ms])


def live_path(card, device, t_ms, approved, disputed_at) -> np.ndarray:
    """The live state: payments of one millisecond as one group, each group's approvals fed
    back after it, and each dispute applied once its time has come (before the payment)."""
    state = FeatureState()
    disputes: list[tuple[int, int]] = []  # (time, payment) of approved payments
    counting = np.zeros(len(t_ms), dtype=bool)  # approved, decided, not disputed yet
    parts = []
    starts = np.flatnonzero(np.r_[True, t_ms[1:] != t_ms[:-1]])
    for a, b in itertools.pairwise([*starts.tolist(), len(t_ms)]):
        t = int(t_ms[a])
        disputes.sort()
        while disputes and disputes[0][0] <= t:
            j = disputes.pop(0)[1]
            counting[j] = False
            left = t_ms[counting & (card == card[j]) & (device == device[j])]
            first_left = int(left.min()) if len(left) else None  # as the writer reads it
            state.dispute(f"card-{card[j]}", f"dev-{device[j]}", int(t_ms[j]), first_left)
        keys = [
            (f"card-{card[i]}", None if device[i] < 0 else f"dev-{device[i]}") for i in range(a, b)
        ]
        parts.append(as_matrix(state.pair_history(keys, t)))
        state.approve(keys, approved[a:b], t)
        counting[a:b] = approved[a:b] & (device[a:b] >= 0)
        disputes += [
            (int(disputed_at[i]), i)
            for i in range(a, b)
            if approved[i] and device[i] >= 0 and disputed_at[i] >= 0
        ]
    return np.vstack(parts)


def bulk_path(card, device, t_ms, approved, disputed_at, cuts, mode: str = "parts") -> np.ndarray:
    """The bulk tracker in chunks cut at ``cuts``, each decided part by part (``parts``: a
    policy reading device trust), whole (``whole``: decisions known without it), or the two
    in turn (``mixed``)."""
    tracker = HistoryTracker()
    parts = []
    for i, (a, b) in enumerate(itertools.pairwise([0, *cuts, len(t_ms)])):
        tracker.update(card[a:b], device[a:b], np.zeros(b - a, np.int64), t_ms[a:b])
        if mode == "whole" or (mode == "mixed" and i % 2):
            parts.append(as_matrix(tracker.settled_chunk(approved[a:b], disputed_at[a:b])))
            continue
        for index, part in enumerate(tracker.blocks):
            parts.append(as_matrix(tracker.settled(index)))
            tracker.decided(index, approved[a:b][part], disputed_at[a:b][part])
    return np.vstack(parts)


def awkward_cuts(t_ms: np.ndarray, seed: int) -> list[int]:
    """Chunks of one row, cuts inside ties, chunks spanning minutes and weeks."""
    rng = np.random.default_rng(seed)
    ties = np.flatnonzero(t_ms[1:] == t_ms[:-1]) + 1
    n = len(t_ms)
    return sorted({1, 2, n - 1, *rng.choice(ties, 8).tolist(), *rng.integers(1, n, 12).tolist()})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_live_and_bulk_compute_the_definition(seed: int) -> None:
    stream = edge_stream(seed)
    expected = brute_force(*stream)
    settled = expected[:, 0]
    # the stream must reach every case, or agreeing proves little
    assert settled.max() >= 10 and (settled > 0).mean() > 0.5
    assert (expected[:, 2] >= 9 * DAY_MS).sum() > 10  # long idle gaps
    t_ms = stream[2]
    spans = [
        t_ms[b - 1] - t_ms[a]
        for a, b in itertools.pairwise([0, *awkward_cuts(t_ms, seed), len(t_ms)])
    ]
    assert max(spans) > 7 * DAY_MS and min(spans) < HOUR_MS  # chunks longer and shorter than a day
    np.testing.assert_array_equal(live_path(*stream), expected)
    for mode in ("parts", "whole", "mixed"):
        np.testing.assert_array_equal(bulk_path(*stream, awkward_cuts(t_ms, seed), mode), expected)
        np.testing.assert_array_equal(bulk_path(*stream, [], mode), expected)


def test_the_bulk_path_agrees_when_pair_and_time_do_not_pack(monkeypatch) -> None:
    """The unpacked way (a lexsort merge) gives the same values as packed keys."""
    stream = edge_stream(4, n=700)
    monkeypatch.setattr(features, "_GROUP_BITS", 0)  # nothing fits: every search merges
    for mode in ("whole", "mixed"):
        cuts = awkward_cuts(stream[2], 4)
        np.testing.assert_array_equal(bulk_path(*stream, cuts, mode), brute_force(*stream))
    np.testing.assert_array_equal(
        bulk_path(*stream, awkward_cuts(stream[2], 4)), brute_force(*stream)
    )


def test_parts_must_be_decided_in_order() -> None:
    tracker = HistoryTracker()
    t = T0 + np.arange(4) * DAY_MS  # four parts: each a day after the last
    tracker.update(np.zeros(4, np.int64), np.zeros(4, np.int64), np.zeros(4, np.int64), t)
    assert len(tracker.blocks) == 4
    tracker.settled(0)
    with pytest.raises(ValueError, match="before part 0 was decided"):
        tracker.settled(1)
    tracker.decided(0, np.array([True]), np.array([-1]))
    with pytest.raises(ValueError, match="whole or part by part"):
        tracker.settled_chunk(np.ones(4, bool), np.full(4, -1))
    with pytest.raises(ValueError, match="all be decided"):
        tracker.update(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), t[-1:])


# -- behaviour -------------------------------------------------------------------------------


class Pair:
    """One card on one device through either path, one payment at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.times: list[int] = []
        self.approved: list[bool] = []
        self.disputed_at: list[int] = []

    def pay(self, t_ms: int, approved: bool = True, disputed_at: int = -1) -> float:
        """The payment's familiarity, given every payment so far."""
        self.times.append(t_ms)
        self.approved.append(approved)
        self.disputed_at.append(disputed_at)
        stream = (
            np.zeros(len(self.times), np.int64),
            np.zeros(len(self.times), np.int64),
            np.array(self.times, np.int64),
            np.array(self.approved),
            np.array(self.disputed_at, np.int64),
        )
        run = live_path if self.path == "live" else lambda *s: bulk_path(*s, [])
        last = run(*stream)[-1]
        return float(familiarity(PairHistory(*(np.array([v]) for v in last)))[0])


@pytest.mark.parametrize("path", ["live", "bulk"])
def test_minutes_of_activity_earn_no_trust(path: str) -> None:
    pair = Pair(path)
    trust = [pair.pay(T0 + i * MINUTE_MS) for i in range(10)]  # 10 payments in 10 minutes
    assert trust == [TRUST_NEW] * 10
    assert pair.pay(T0 + SETTLE_MS - 1) == TRUST_NEW  # not a day old yet


@pytest.mark.parametrize("path", ["live", "bulk"])
def test_settled_history_earns_trust_a_dispute_and_disuse_take_it_back(path: str) -> None:
    honest, disputed = Pair(path), Pair(path)
    earned = []
    for day in range(20):  # a payment a day; the other pair's first ten are disputed later
        t = T0 + day * DAY_MS
        earned.append(honest.pay(t))
        disputed.pay(t, disputed_at=T0 + 30 * DAY_MS if day < 10 else -1)
    assert earned[0] == TRUST_NEW  # a day later, the first payment has settled (t' <= t - 24 h)
    assert all(a < b for a, b in itertools.pairwise(earned)) and earned[-1] > 0.95
    before = [pair.pay(T0 + 30 * DAY_MS - 1) for pair in (honest, disputed)]
    after = [pair.pay(T0 + 30 * DAY_MS) for pair in (honest, disputed)]  # the disputes land
    assert before[0] == before[1] and after[1] < after[0] - 0.02
    idle = [honest.pay(T0 + (30 + gap) * DAY_MS) for gap in (30, 90, 300)]
    assert after[0] > idle[0] > idle[1] > idle[2] > TRUST_NEW  # disuse decays it


@pytest.mark.parametrize("path", ["live", "bulk"])
def test_declined_payments_never_earn_trust(path: str) -> None:
    pair = Pair(path)
    for day in range(20):
        pair.pay(T0 + day * DAY_MS, approved=False)
    assert pair.pay(T0 + 20 * DAY_MS) == TRUST_NEW


# -- a live engine across restarts --------------------------------------------------------------

CARD = "4111111111111111"
POLICY = [  # allow rules go first (action order): everything from 1 up, nothing below
    {"name": "ok", "action": "allow", "when": ":amount: >= 1"},
    {"name": "tiny", "action": "block", "when": ":amount: < 1"},
]


def _live_story(db: Path, monkeypatch, restart: bool) -> list[float]:
    """The same card and device pay across weeks of (simulated) wall-clock time, with a
    dispute and a decline among them; with ``restart`` the engine reopens before every step.
    Returns each payment's device trust."""
    # in the past, so disputes may follow; with a sub-millisecond part that rounding to the
    # millisecond would carry (the writer floors it, and so must the start-up load)
    start = (time.time_ns() // 1_000_000 - 90 * DAY_MS) * 1_000_000 + 700_000
    clock = {"ms": 0}
    monkeypatch.setattr(time, "time_ns", lambda: start + clock["ms"] * 1_000_000)
    steps = [  # (ms since start, amount: 0.01 is declined by the policy, payment to dispute)
        (0, 10, None), (MINUTE_MS, 10, 1), (DAY_MS, 10, None), (2 * DAY_MS, 0.01, None),
        (3 * DAY_MS, 10, None), (9 * DAY_MS, 10, 0), (10 * DAY_MS, 10, None),
        (70 * DAY_MS, 10, None), (71 * DAY_MS, 10, None),
    ]  # fmt: skip
    # payment 1 is disputed while it settles, payment 0 once settled (the pair's first)
    trust, ids = [], []
    engine = Engine.open(db, seed=3, card_key="trust-key")
    try:
        policy = engine.create_policy(POLICY)
        engine.activate_version(policy.version)
        for at, amount, dispute in steps:
            if restart:
                engine.close()
                engine = Engine.open(db, seed=3, card_key="trust-key")
            clock["ms"] = at
            result = engine.authorize(
                {"card_number": CARD, "amount": amount, "currency": "GBP",
                 "merchant": "m", "channel": "ecommerce", "device_id": "phone"}
            )  # fmt: skip
            assert result.status == ("Declined" if amount < 1 else "Approved")
            trust.append(result.features.device_trust_score)
            ids.append(result.transaction_id)
            if dispute is not None:
                engine.dispute(ids[dispute], {"reason": "fraud"})
            if dispute is not None and restart:  # another fraud reason changes nothing
                engine.dispute(ids[dispute], {"reason": "friendly_fraud"})
    finally:
        engine.close()
    return trust


def test_a_restarted_live_engine_gives_the_trust_it_gives_without(
    tmp_path: Path, monkeypatch
) -> None:
    continuous = _live_story(tmp_path / "continuous.duckdb", monkeypatch, restart=False)
    restarted = _live_story(tmp_path / "restarted.duckdb", monkeypatch, restart=True)
    assert restarted == continuous
    # and the story is the definition's: nothing for minutes, then a day's approvals and
    # tenure raise it, two months of disuse lower it, a payment the next day restores it
    assert continuous[:2] == [TRUST_NEW] * 2
    assert all(a < b for a, b in itertools.pairwise(continuous[1:7]))
    assert continuous[7] < continuous[6] < continuous[8]
    # the dispute of the first settled payment moved tenure to the next one: 9 days, not 10
    expected = familiarity(PairHistory(*(np.array([v]) for v in (3, 9 * DAY_MS, DAY_MS))))
    assert continuous[6] == float(expected[0])
