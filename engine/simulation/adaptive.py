"""Adaptive attackers: card testers and stolen-card sprees that watch their own declines.

Each adaptive scenario (:data:`ADAPTIVE`) is one fraud ring with a memory of how its payments
fared: decayed counts of its rows and of its declined rows by amount (in cents of the payment's
own currency, the number a fraudster types; log-spaced buckets), fed back from the run's own
decisions in bulk (:meth:`AttackerMemory.observe`, called by the runner after each piece of the
stream is decided). At each **review**, every :data:`REVIEW_HOURS`-th simulated hour of the run
(weekly; the stream's blocks are cut there, see :mod:`.stream`), the ring turns its memory into
:class:`Tactics` that its adaptive episodes use until the next review. The ``adaptation`` knob
is the share of the ring's attackers that adapt once the word has spread; it spreads with time:
an episode starting t days into the run follows the tactics with probability ``adaptation`` · (1
− exp(−t / :data:`LEARNING_DAYS`)), so a static rule's catch rate falls over the run rather than
at once.

* **amounts just under the threshold that declined them**: the amount L that best separates the
  ring's declines (a decision stump over the buckets: the largest rise of the decline rate from
  the rows below L to those at or above it, at least :data:`MIN_RISE`, with
  :data:`MIN_ROWS` rows on each side); adaptive rows at or above L are cut to 80–99% of it.
  A ring declined at least half the time with no such threshold in sight (every amount it tried
  was declined) probes lower: its cap is half the median amount of its declined rows, so from
  one review to the next it walks down until approvals show it where the threshold is;
* **a slower pace**: gaps × (1 + :data:`SLOWDOWN` · r), r the ring's decayed decline share;
* **fresh devices**: once r ≥ :data:`FRESH_DEVICE_DECLINES`, every card (card testing) or every
  payment (stolen card) comes from a device fingerprint the ring has not used (an emulator
  spoofing an ordinary customer's phone: drawn from the customers' device pool).

A ring keeps what worked: fresh devices once adopted stay, the pace never speeds up again, and
a cap stays until a new threshold shows in the memory (rows kept under a cap are approved and
show no threshold). The memory halves at every review, so a threshold that moves is followed.
Everything a ring learns comes from decisions of rows before the review, and the reviews fall at
fixed simulated hours, so the rows are the same for the same seed, policy and parameters
whatever the chunk size. The stream without decisions (``memory``
None) is the run of attackers who never learn anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.simulation.params import LABELLED_SCENARIOS

ADAPTIVE: tuple[str, ...] = ("stolen_card", "card_testing")
REVIEW_HOURS = 7 * 24  # a ring reviews its declines weekly
LEARNING_DAYS = 14.0  # how fast the word spreads through a ring (1 − 1/e of it in two weeks)
PROBE_DECLINES = 0.5  # declined this often without a threshold: probe with lower amounts
EDGES = np.geomspace(1.0, 2_000_000.0, 101)  # bucket edges in cents: 0.01 to 20,000, ×1.16
MIN_RISE = 0.15  # decline rate above the threshold minus below it, to believe in a threshold
MIN_ROWS = 5.0  # (decayed) rows each side of a threshold
SLOWDOWN = 5.0
FRESH_DEVICE_DECLINES = 0.25
DECAY = 0.5  # memory kept at each review
UNDER = (0.80, 0.99)  # adapted amounts: this share of the threshold


@dataclass(frozen=True, slots=True)
class Tactics:
    """How a ring's adaptive episodes behave until its next review."""

    cap_cents: float = float("inf")  # amounts kept under this (cents); inf: no cap
    slower: float = 1.0  # gaps multiplied by this
    fresh_devices: bool = False


NAIVE = Tactics()


class AttackerMemory:
    """What each adaptive ring has seen of its own decisions (see the module docstring)."""

    def __init__(self) -> None:
        self._codes = np.array([LABELLED_SCENARIOS.index(n) for n in ADAPTIVE], dtype=np.int8)
        self._rows = np.zeros((len(ADAPTIVE), len(EDGES) + 1))
        self._declined = np.zeros((len(ADAPTIVE), len(EDGES) + 1))
        self._tactics = [NAIVE] * len(ADAPTIVE)
        self.observed = 0  # rows fed back so far (the stream checks it at each review)

    def observe(self, scenario: np.ndarray, cents: np.ndarray, approved: np.ndarray) -> None:
        """Feed back decided rows: their scenario codes, amounts (cents) and approvals."""
        self.observed += len(scenario)
        for i, code in enumerate(self._codes.tolist()):
            mine = scenario == code
            if not mine.any():
                continue
            bucket = np.searchsorted(EDGES, cents[mine], side="right")
            self._rows[i] += np.bincount(bucket, minlength=len(EDGES) + 1)
            declined = bucket[~approved[mine]]
            self._declined[i] += np.bincount(declined, minlength=len(EDGES) + 1)

    def review(self) -> dict[str, Tactics]:
        """Each ring's tactics from its memory so far; the memory then decays."""
        self._tactics = [
            _tactics(self._rows[i], self._declined[i], self._tactics[i])
            for i in range(len(ADAPTIVE))
        ]
        self._rows *= DECAY
        self._declined *= DECAY
        return dict(zip(ADAPTIVE, self._tactics, strict=True))


def _tactics(rows: np.ndarray, declined: np.ndarray, before: Tactics) -> Tactics:
    """A ring's tactics from its memory and its tactics so far."""
    total = rows.sum()
    if total < MIN_ROWS:
        return before
    share = declined.sum() / total
    cap = _threshold(rows, declined)
    if not np.isfinite(cap):
        cap = 0.5 * _median(declined) if share >= PROBE_DECLINES else before.cap_cents
    return Tactics(
        cap_cents=cap,
        slower=max(before.slower, 1.0 + SLOWDOWN * share),
        fresh_devices=before.fresh_devices or bool(share >= FRESH_DEVICE_DECLINES),
    )


def _median(counts: np.ndarray) -> float:
    """The lower edge of the bucket holding the median of a bucket histogram."""
    at = int(np.searchsorted(np.cumsum(counts), counts.sum() / 2))
    return float(EDGES[max(at - 1, 0)])


def _threshold(rows: np.ndarray, declined: np.ndarray) -> float:
    """The bucket edge with the largest rise in decline rate at or above it (inf: none)."""
    below_rows, below_declined = np.cumsum(rows)[:-1], np.cumsum(declined)[:-1]
    above_rows, above_declined = rows.sum() - below_rows, declined.sum() - below_declined
    ok = (below_rows >= MIN_ROWS) & (above_rows >= MIN_ROWS)
    if not ok.any():
        return float("inf")
    above_rate = above_declined / np.maximum(above_rows, 1e-9)
    rise = np.where(ok, above_rate - below_declined / np.maximum(below_rows, 1e-9), -1.0)
    best = int(np.argmax(rise))
    return float(EDGES[best]) if rise[best] >= MIN_RISE else float("inf")
