"""Risk features and history attributes computed from history, with one definition for the live
path, the bulk path and the SQL back-fill.

**Features** (all three lie in [0, 1]):

* ``spending_velocity`` = min(n / 10, 1), where n is the number of this card's earlier payments
  in the trailing hour (event time) before this one.
* ``device_trust_score`` = familiarity / (1 + 0.5 · other_cards), where other_cards counts the
  distinct other cards seen on the device before (``device_other_cards``). No device id: 0.1.
  familiarity comes from the (card, device) pair's **settled history** at the payment's time
  ``t``: the pair's earlier payments that were *approved*, are at least ``SETTLE`` = 24 h old
  (``t' ≤ t − 24 h``) and were *not disputed by t*. With S = their count, tenure = ``t`` − the
  time of the first of them and idle = ``t`` − the pair's last earlier payment (any status)::

      familiarity = 0.3 + 0.7 · (1 − exp(−S / 3)) · min(1, tenure / 14 d) · exp(−idle / 60 d)

  so it is exactly 0.3 without settled history, whatever happened in the last day (a declined
  payment never earns trust, minutes of activity never do); about 0.99 after three weeks of
  daily approved payments; 30 days of disuse take it to 0.3 + 0.61 · what it was above 0.3.
  "Disputed by t": in a run, the row's chargeback (``label_at_ms``) is at or before ``t``;
  live, a dispute of a fraud reason (``fraud``, ``friendly_fraud``: the reasons backtests count
  as fraud) was recorded through ``POST /transaction/{id}/dispute`` before the payment. A
  disputed payment leaves S (and tenure, if it was the first); other dispute reasons leave
  trust alone. Because only payments a day old count, a payment's trust depends only on
  decisions of payments at least a day older: the bulk path decides each chunk in parts of
  less than a day (:attr:`HistoryTracker.blocks`), feeding each part's approvals back before
  the next part's trust, and the live path feeds each group's approvals back after it is
  decided (:meth:`FeatureState.approve`); both give identical values (tests/engine/
  test_device_trust.py).
* ``ip_risk_score`` models how unverifiable the payment's network origin is, deterministically:
  a base per channel (pos/contactless 0.05, mobile 0.20, ecommerce 0.30, moto 0.45), +0.25 when
  no device id is sent (anonymous origin), +0.25 when the currency differs from the card's home
  currency (the currency of its first payment: a cross-border origin), clipped to 1.

**History attributes** (stored columns; the rule language reads them). Every window is in event
time (simulated time in a run) and looks back from the payment at ``t``: an earlier payment at
``t'`` is in a window of length ``W`` when ``t' > t − W`` (so one exactly ``W`` earlier has left
it). "Earlier" means earlier in the stream's order: event time, and for payments in the same
millisecond arrival order (row order in a run, id order on disk); the payment itself and later
arrivals in the same millisecond never count. A stream is live traffic (all rows without a run)
or one simulation run.

=========================  ==============================================================
``velocity_count``         the card's earlier payments in the trailing hour
                           (= ``payments_per_card_1h``)
``device_seen_count``      the card's earlier payments on this device, all time
                           (``is_new_device`` = a device is sent and this count is 0)
``device_other_cards``     distinct other cards seen on this device before, all time
``payments_per_card_24h``  the card's earlier payments in the trailing 24 h
``amount_per_card_24h``    the sum of those payments' ``amount_in_gbp``; a payment in a
                           currency without a reference rate adds 0 (GBP, exact pence)
``payments_per_device_1h`` earlier payments on this device (any card) in the trailing hour;
                           NULL without a device id
``cards_per_device_24h``   distinct cards among the earlier payments on this device in the
                           trailing 24 h (this card included if it used the device there);
                           NULL without a device id
``devices_per_card_7d``    distinct devices among the card's earlier payments in the trailing
                           7 days (payments without a device id add none); 0 when none
``card_age_days``          whole days (floor) from the card's first payment in the stream to
                           this one; 0 for the first payment
=========================  ==============================================================

``amount_in_gbp`` (the amount converted with :mod:`engine.fx`, NULL without a rate) is stored
beside them. The live path keeps the history it needs in memory (:class:`FeatureState`), updated
in arrival order with memory bounded by the longest window (plus, per card, its first payment
and, per (card, device) pair, its payment count, its last payment's time and the times of its
approved undisputed payments, for device trust); the bulk path computes the same values over
chunks of a stream (:class:`HistoryTracker`); :mod:`engine.history` states them as DuckDB window
functions (the schema v10 back-fill). Tests run one stream through all three and require
identical values.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
SETTLE_MS = DAY_MS  # an approved payment earns device trust once it is this old
TRUST_NEW = 0.3  # familiarity of a (card, device) pair without settled history
TRUST_GAIN = 0.7  # what settled history can add to it
TRUST_PAYMENTS = 3.0  # settled payments: growth = 1 − exp(−S / TRUST_PAYMENTS)
TRUST_TENURE_MS = 14 * DAY_MS  # tenure for full trust: min(1, tenure / TRUST_TENURE_MS)
TRUST_IDLE_MS = 60 * DAY_MS  # disuse decay: exp(−idle / TRUST_IDLE_MS)
VELOCITY_WINDOW_MS = HOUR_MS
LONGEST_WINDOW_MS = WEEK_MS  # nothing older is needed, except first payments and pair counts
NO_DEVICE = -1  # device-scoped counts of a payment without a device id (stored as NULL)
NO_GBP = -1  # amount in pence of a currency without a reference rate (adds 0 to sums)
NEVER_MS = 1 << 62  # idle time of a (card, device) pair never seen before
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
    """Raw, integer facts about each payment's history (column-wise int64; see the module
    docstring for each definition). Device-scoped counts hold :data:`NO_DEVICE` for payments
    without a device id; ``amount_per_card_24h`` is in pence."""

    velocity_count: np.ndarray
    device_seen_count: np.ndarray
    device_other_cards: np.ndarray
    foreign_currency: np.ndarray  # bool: currency differs from the card's home currency
    payments_per_card_24h: np.ndarray
    amount_per_card_24h: np.ndarray
    payments_per_device_1h: np.ndarray
    cards_per_device_24h: np.ndarray
    devices_per_card_7d: np.ndarray
    card_age_days: np.ndarray

    @staticmethod
    def from_rows(rows: np.ndarray) -> HistoryCounts:
        """From an (n, 10) integer matrix, one row per payment in field order (the live path's
        :meth:`FeatureState.counts` tuples)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1, 10)
        columns = [rows[:, i] for i in range(10)]
        columns[3] = columns[3] > 0
        return HistoryCounts(*columns)

    def take(self, part: slice) -> HistoryCounts:
        """The payments ``part`` selects."""
        return HistoryCounts(*(getattr(self, name)[part] for name in self.__slots__))


@dataclass(frozen=True, slots=True)
class FeatureColumns:
    """The three normalized features (column-wise, float64)."""

    spending_velocity: np.ndarray
    device_trust_score: np.ndarray
    ip_risk_score: np.ndarray


@dataclass(frozen=True, slots=True)
class PairHistory:
    """Each payment's settled history with its (card, device) pair (column-wise int64; see the
    module docstring): ``settled`` payments, ``tenure_ms`` since the first of them (0 without
    any) and ``idle_ms`` since the pair's last payment (:data:`NEVER_MS` without one; 0 for
    payments without a device id)."""

    settled: np.ndarray
    tenure_ms: np.ndarray
    idle_ms: np.ndarray


def familiarity(pairs: PairHistory) -> np.ndarray:
    """TRUST_NEW + TRUST_GAIN · (1 − exp(−S / TRUST_PAYMENTS)) · min(1, tenure / TRUST_TENURE_MS)
    · exp(−idle / TRUST_IDLE_MS): exactly :data:`TRUST_NEW` without settled history."""
    out = np.full(len(pairs.settled), TRUST_NEW)
    has = np.flatnonzero(pairs.settled > 0)
    if len(has):
        growth = _GROWTH[np.minimum(pairs.settled[has], len(_GROWTH) - 1)]
        tenure = np.minimum(pairs.tenure_ms[has] / TRUST_TENURE_MS, 1.0)
        decay = np.exp(-pairs.idle_ms[has] / TRUST_IDLE_MS)
        out[has] = TRUST_NEW + TRUST_GAIN * (growth * tenure * decay)
    return out


# 1 − exp(−S / TRUST_PAYMENTS) by S, one table for both paths; 1.0 long before the last entry
_GROWTH = 1.0 - np.exp(-np.arange(1024) / TRUST_PAYMENTS)


def normalize(
    counts: HistoryCounts,
    has_device: np.ndarray,
    channel: np.ndarray,
    pairs: PairHistory | None,
) -> FeatureColumns:
    """Turn history counts and settled pair history into the three features; ``channel`` holds
    channel names, or integer codes into :data:`CHANNELS` (faster for bulk data). ``pairs``
    None: the device trust is not known yet (NaN), for decisions that do not read it."""
    velocity = np.minimum(counts.velocity_count / VELOCITY_SATURATION, 1.0)
    if pairs is None:
        trust = np.full(len(has_device), np.nan)
    else:
        trust = device_trust(counts, has_device, pairs)
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
    return FeatureColumns(velocity.astype(np.float64), trust, ip_risk)


def device_trust(counts: HistoryCounts, has_device: np.ndarray, pairs: PairHistory) -> np.ndarray:
    """``device_trust_score``: :func:`familiarity` / (1 + 0.5 · other cards on the device), or
    :data:`NO_DEVICE_TRUST` without a device id."""
    trust = familiarity(pairs) / (1.0 + 0.5 * counts.device_other_cards)
    return np.where(has_device, trust, NO_DEVICE_TRUST).astype(np.float64)


_NOTHING_DUE = 1 << 62  # a window's due time when nothing in it can leave


class _CardWindows:
    """One card's recent payments, oldest first: the times and pence of its last 24 hours (the
    hour window is their tail from ``hour_at``) and its devices of the last 7 days. ``due`` is
    the earliest event time at which something leaves a window: lookups before it skip
    :meth:`evict` (a live group's payments share one time, and most cards pay rarely)."""

    __slots__ = ("day_pence", "devices", "due", "hour_at", "pence", "times")

    def __init__(self) -> None:
        self.times: list[int] = []  # trailing 24 h
        self.pence: list[int] = []  # GBP pence of each, 0 without a rate
        self.hour_at = 0  # times[hour_at:] are in the trailing hour
        self.day_pence = 0
        self.devices: OrderedDict[str, int] = OrderedDict()  # device -> last time, 7 days
        self.due = _NOTHING_DUE

    def add(self, t_ms: int, pence: int, device: str | None) -> None:
        """Remember a payment (``pence`` >= 0) at ``t_ms``, the newest time so far."""
        self.times.append(t_ms)
        self.pence.append(pence)
        self.day_pence += pence
        if device is not None:
            self.devices[device] = t_ms
            self.devices.move_to_end(device)
        if t_ms + HOUR_MS < self.due:  # it leaves the hour first
            self.due = t_ms + HOUR_MS

    def evict(self, t_ms: int) -> bool:
        """Forget what left each window at ``t_ms``; True when nothing is left."""
        times, devices = self.times, self.devices
        if t_ms >= self.due:
            n, hour, day = len(times), self.hour_at, 0
            while hour < n and times[hour] <= t_ms - HOUR_MS:
                hour += 1
            while day < n and times[day] <= t_ms - DAY_MS:
                day += 1
            if day:
                self.day_pence -= sum(self.pence[:day])
                del times[:day], self.pence[:day]
            self.hour_at = hour - day  # every payment that left the day left the hour
            while devices and next(iter(devices.values())) <= t_ms - WEEK_MS:
                devices.popitem(last=False)
            due = _NOTHING_DUE
            if times:
                due = times[0] + DAY_MS
                if self.hour_at < len(times):
                    due = min(due, times[self.hour_at] + HOUR_MS)
            if devices:
                due = min(due, next(iter(devices.values())) + WEEK_MS)
            self.due = due
        return not (times or devices)


class _DeviceWindows:
    """One device's recent payments, oldest first: the times of its last hour and its cards of
    the last 24 hours; ``due`` as for :class:`_CardWindows`."""

    __slots__ = ("cards", "due", "times")

    def __init__(self) -> None:
        self.times: list[int] = []  # trailing hour
        self.cards: OrderedDict[str, int] = OrderedDict()  # card -> last time, trailing 24 h
        self.due = _NOTHING_DUE

    def add(self, t_ms: int, card: str) -> None:
        """Remember a payment of ``card`` at ``t_ms``, the newest time so far."""
        self.times.append(t_ms)
        self.cards[card] = t_ms
        self.cards.move_to_end(card)
        if t_ms + HOUR_MS < self.due:
            self.due = t_ms + HOUR_MS

    def evict(self, t_ms: int) -> bool:
        """Forget what left each window at ``t_ms``; True when nothing is left."""
        times, cards = self.times, self.cards
        if t_ms >= self.due:
            hour = 0
            while hour < len(times) and times[hour] <= t_ms - HOUR_MS:
                hour += 1
            del times[:hour]
            while cards and next(iter(cards.values())) <= t_ms - DAY_MS:
                cards.popitem(last=False)
            due = _NOTHING_DUE
            if times:
                due = times[0] + HOUR_MS
            if cards:
                due = min(due, next(iter(cards.values())) + DAY_MS)
            self.due = due
        return not (times or cards)


class _PairSettlement:
    """One (card, device) pair's settled history on the live path: its last payment's time,
    the times of its approved, undisputed payments still settling (oldest first), and how many
    have settled, with the earliest of those (None without any)."""

    __slots__ = ("count", "first", "last", "pending")

    def __init__(self, last: int) -> None:
        self.last = last
        self.pending: list[int] = []
        self.count = 0
        self.first: int | None = None

    def settle(self, t_ms: int) -> None:
        """Count the payments settled by ``t_ms`` (at least :data:`SETTLE_MS` old)."""
        pending = self.pending
        if pending and pending[0] <= t_ms - SETTLE_MS:
            k = bisect.bisect_right(pending, t_ms - SETTLE_MS)
            if not self.count:
                self.first = pending[0]
            self.count += k
            del pending[:k]

    def remove(self, t_ms: int, first_left: int | None) -> None:
        """Forget the approved payment at ``t_ms`` (disputed); ``first_left`` is the earliest
        of the pair's approved, undisputed payments left (settled ones come before settling
        ones, so it is the first settled one while any is)."""
        pending = self.pending
        i = bisect.bisect_left(pending, t_ms)
        if i < len(pending) and pending[i] == t_ms:
            del pending[i]
        elif self.count:
            self.count -= 1
            self.first = first_left if self.count else None


class FeatureState:
    """The live path's history, in memory, updated in arrival order (one writer thread).

    Event times must not decrease (the live writer stamps groups with a clock that never runs
    back). Windows forget payments as they leave them: on each lookup of a card or device, and
    for every card and device in a sweep each :data:`SWEEP_MS` of event time, so memory holds
    the last week of payments (and what the sweep has not reached yet), plus each card's first
    payment and each (card, device) pair's count, which ``card_age_days``, the home currency and
    ``device_seen_count`` need for ever, and each pair's settled history for device trust (its
    last payment's time and the times of its approved, undisputed payments: one integer per
    approved live payment with a device).

    :meth:`observe_group` is the live path's call (a group's lookups and updates in one pass);
    :meth:`counts` and :meth:`observe` are the same steps one at a time. Device trust's settled
    pair history is looked up by :meth:`pair_history` before a group is decided, fed its
    approvals by :meth:`approve` after, and told of disputes by :meth:`dispute`.
    """

    SWEEP_MS = HOUR_MS
    SWEEP_BATCH = 64  # keys checked per payment while a sweep runs

    def __init__(self) -> None:
        self._first: dict[str, tuple[int, str]] = {}  # card -> (first time, home currency)
        self._pairs: dict[str, dict[str, int]] = {}  # device -> card -> payments, all time
        self._cards: dict[str, _CardWindows] = {}
        self._devices: dict[str, _DeviceWindows] = {}
        self._next_sweep: int | None = None
        self._sweep_cards: list[str] = []  # still to check in the current sweep
        self._sweep_devices: list[str] = []
        self._settlements: dict[tuple[str, str], _PairSettlement] = {}  # all time

    def pair_history(self, payments: list[tuple[str, str | None]], t_ms: int) -> PairHistory:
        """The settled pair history of each (card hash, device id) of a group at event time
        ``t_ms``, in arrival order; each payment then is its pair's last one. Approvals join
        through :meth:`approve` once the group is decided, disputes through :meth:`dispute`."""
        rows = []
        settlements = self._settlements
        for card, device in payments:
            if device is None:
                rows.append((0, 0, 0))
                continue
            pair = settlements.get((card, device))
            if pair is None:
                settlements[(card, device)] = _PairSettlement(t_ms)
                rows.append((0, 0, NEVER_MS))
                continue
            pair.settle(t_ms)
            tenure = t_ms - pair.first if pair.count else 0  # type: ignore[operator]
            rows.append((pair.count, tenure, t_ms - pair.last))
            pair.last = t_ms
        flat = np.fromiter(itertools.chain.from_iterable(rows), np.int64, 3 * len(rows))
        return PairHistory(flat[0::3], flat[1::3], flat[2::3])

    def approve(
        self, payments: list[tuple[str, str | None]], approved: np.ndarray, t_ms: int
    ) -> None:
        """Record which payments of a group at ``t_ms`` (as given to :meth:`pair_history`)
        were approved: they count for their pair once :data:`SETTLE_MS` old."""
        settlements = self._settlements
        for (card, device), ok in zip(payments, approved.tolist(), strict=True):
            if ok and device is not None:
                settlements[(card, device)].pending.append(t_ms)

    def dispute(self, card_hash: str, device_id: str, t_ms: int, first_left: int | None) -> None:
        """A dispute of the approved payment of (card, device) at ``t_ms`` was recorded: it
        counts no more (call once per payment). ``first_left``: the time of the pair's earliest
        approved payment still undisputed (None: none), which the state does not keep (the
        live writer reads it from the database)."""
        pair = self._settlements.get((card_hash, device_id))
        if pair is not None:
            pair.remove(t_ms, first_left)

    def counts(
        self, card_hash: str, device_id: str | None, currency: str, t_ms: int
    ) -> tuple[int, ...]:
        """History counts for a payment at event time ``t_ms``, before observing it, in
        :class:`HistoryCounts` field order (``foreign_currency`` as 0/1)."""
        self._sweep(t_ms, self.SWEEP_BATCH)
        return self._step(card_hash, device_id, currency, t_ms, None)

    def observe(
        self,
        card_hash: str,
        device_id: str | None,
        currency: str,
        t_ms: int,
        gbp_pence: int = NO_GBP,
    ) -> None:
        """Record a decided payment so later payments see it (``gbp_pence`` :data:`NO_GBP`
        without a reference rate)."""
        self._step(card_hash, device_id, currency, t_ms, max(gbp_pence, 0))

    def observe_group(
        self, payments: list[tuple[str, str | None, str, int]], t_ms: int
    ) -> HistoryCounts:
        """For each (card hash, device id, currency, GBP pence or :data:`NO_GBP`) of a group at
        event time ``t_ms``, in arrival order: its :meth:`counts`, then it is observed. Equal
        to calling the two per payment, with one sweep step for the whole group."""
        self._sweep(t_ms, self.SWEEP_BATCH * len(payments))
        step = self._step
        rows = [
            step(card, device, currency, t_ms, pence if pence > 0 else 0)
            for card, device, currency, pence in payments
        ]
        flat = np.fromiter(itertools.chain.from_iterable(rows), np.int64, 10 * len(rows))
        return HistoryCounts.from_rows(flat)

    def _step(
        self, card: str, device: str | None, currency: str, t_ms: int, pence: int | None
    ) -> tuple[int, ...]:
        """The payment's counts (:meth:`counts` without the sweep); then, unless ``pence`` is
        None, the payment (``pence`` >= 0) joins the history."""
        record = pence is not None
        first = self._first.get(card)
        if first is not None:
            age, foreign = (t_ms - first[0]) // DAY_MS, int(first[1] != currency)
        else:
            age = foreign = 0
            if record:
                self._first[card] = (t_ms, currency)
        windows = self._cards.get(card)
        if windows is not None:
            if t_ms >= windows.due:
                windows.evict(t_ms)
            per_day = len(windows.times)
            velocity = per_day - windows.hour_at
            amount, devices = windows.day_pence, len(windows.devices)
        else:
            velocity = per_day = amount = devices = 0
            if record:
                windows = self._cards[card] = _CardWindows()
        if device is None:
            seen = other = 0
            per_hour = cards = NO_DEVICE
        else:
            pairs = self._pairs.get(device)
            if pairs is not None:
                seen = pairs.get(card, 0)
                other = len(pairs) - (seen > 0)
            else:
                seen = other = 0
                if record:
                    pairs = self._pairs[device] = {}
            recent = self._devices.get(device)
            if recent is not None:
                if t_ms >= recent.due:
                    recent.evict(t_ms)
                per_hour, cards = len(recent.times), len(recent.cards)
            else:
                per_hour = cards = 0
                if record:
                    recent = self._devices[device] = _DeviceWindows()
            if record:
                pairs[card] = seen + 1  # type: ignore[index]
                recent.add(t_ms, card)  # type: ignore[union-attr]
        if record:
            windows.add(t_ms, pence, device)  # type: ignore[union-attr, arg-type]
        return (velocity, seen, other, foreign, per_day, amount, per_hour, cards, devices, age)

    def _sweep(self, t_ms: int, batch: int) -> None:
        """Forget cards and devices whose windows are empty (lookups only forget what they
        touch): once per ``SWEEP_MS`` of event time a sweep lists every card and device, and
        each lookup then checks ``batch`` of them, so no payment waits for a whole sweep."""
        if not (self._sweep_cards or self._sweep_devices):
            if self._next_sweep is None:
                self._next_sweep = t_ms + self.SWEEP_MS
            if t_ms < self._next_sweep:
                return
            self._next_sweep = t_ms + self.SWEEP_MS
            self._sweep_cards, self._sweep_devices = list(self._cards), list(self._devices)
        for table, keys in ((self._cards, self._sweep_cards), (self._devices, self._sweep_devices)):
            for _ in range(min(batch, len(keys))):
                key = keys.pop()
                windows = table.get(key)
                if windows is not None and windows.evict(t_ms):
                    del table[key]

    def restore(
        self,
        first: list[tuple[str, int, str]],
        pairs: list[tuple[str, str, int, int]],
        week_pairs: list[tuple[str, str, int]],
        day: list[tuple[str, str | None, int, int]],
        approved: list[tuple[str, str, int, int | None, list[int] | None]],
    ) -> None:
        """Rebuild the state from stored aggregates instead of replaying every payment: ``first``
        (card, first time, home currency) and ``pairs`` (device, card, payments, last time)
        over the whole stream; ``week_pairs`` (card, device, last time) of the (card, device)
        pairs used in the last :data:`WEEK_MS`, by last time; ``day`` (card, device, time,
        pence): the payments of the last :data:`DAY_MS`, in stream order; ``approved`` (card,
        device, how many settled, the earliest time, the times still settling in stream order)
        of each pair's approved payments without a dispute that counts (:meth:`dispute`),
        settled as of the newest payment. Both windows end at the stream's newest payment;
        nothing older can be in a window of a later payment."""
        self._first = {card: (t, currency) for card, t, currency in first}
        self._pairs = {}
        self._settlements = {}
        for device, card, n, last in pairs:
            self._pairs.setdefault(device, {})[card] = n
            self._settlements[(card, device)] = _PairSettlement(last)
        for card, device, count, first, settling in approved:
            pair = self._settlements[(card, device)]
            pair.count, pair.first = count, first if count else None
            pair.pending = sorted(settling or ())
        self._cards, self._devices, self._next_sweep = {}, {}, None
        self._sweep_cards, self._sweep_devices = [], []
        for card, device, t in week_pairs:
            windows = self._cards.get(card)
            if windows is None:
                windows = self._cards[card] = _CardWindows()
            windows.devices[device] = t
            windows.due = min(windows.due, t + WEEK_MS)
        for card, device, t, pence in day:
            self._remember(card, device, t, max(pence, 0))
        if day or week_pairs:
            newest = max(day[-1][2] if day else 0, week_pairs[-1][2] if week_pairs else 0)
            self._next_sweep = newest  # the next payment (at or after it) sweeps at once

    def _remember(self, card: str, device: str | None, t_ms: int, pence: int) -> None:
        """Add a payment to the windows only (first payments and pair counts are restored
        whole)."""
        windows = self._cards.get(card)
        if windows is None:
            windows = self._cards[card] = _CardWindows()
        windows.add(t_ms, pence, device)
        if device is not None:
            recent = self._devices.get(device)
            if recent is None:
                recent = self._devices[device] = _DeviceWindows()
            recent.add(t_ms, card)


_POSITION_BITS = 32  # sort keys: group code << 32 | stream position (runs are < 2^31 rows)
_POSITION_MASK = (1 << _POSITION_BITS) - 1
_NEVER = NEVER_MS  # gap to a pair's previous / next payment when there is none (yet)
_TIME_BITS, _GROUP_BITS = 40, 22  # packed (group, time) keys: 34 years of ms, 4M codes
_MIN_BLOCK_ROWS = 65_536  # smaller chunks are merged into blocks of about this size


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a new run of equal keys begins."""
    starts = np.ones(len(sorted_keys), dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return starts


def _rank_in_groups(starts: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run that ``starts`` marks."""
    index = np.arange(len(starts))
    return index - np.maximum.accumulate(np.where(starts, index, 0))


def _sum_before_in_groups(weights: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per element, the sum of the (non-negative) weights before it in its run."""
    exclusive = np.cumsum(weights) - weights
    return exclusive - np.maximum.accumulate(np.where(starts, exclusive, 0))


def _grow(array: np.ndarray, size: int, fill: int) -> np.ndarray:
    if size <= len(array):
        return array
    grown = np.full(max(size, 2 * len(array)), fill, dtype=array.dtype)
    grown[: len(array)] = array
    return grown


@dataclass(frozen=True, slots=True)
class _Order:
    """Rows of a block in (group, position) order: group codes and block-local rows (int32),
    and (group, time) packed into one sortable key (None when codes or times do not fit)."""

    groups: np.ndarray
    rows: np.ndarray
    key: np.ndarray | None

    @staticmethod
    def of(
        codes: np.ndarray, t_ms: np.ndarray, origin: int, mask: np.ndarray | None = None
    ) -> _Order:
        """The rows (those ``mask`` selects) sorted by code, ties in row order; ``origin`` is
        the time the packed keys count from."""
        rows = np.arange(len(codes), dtype=np.int64) if mask is None else np.flatnonzero(mask)
        keys = np.sort((codes[rows] << _POSITION_BITS) | rows)
        return _Order.sorted(keys >> _POSITION_BITS, keys & _POSITION_MASK, t_ms, origin)

    @staticmethod
    def sorted(groups: np.ndarray, rows: np.ndarray, t_ms: np.ndarray, origin: int) -> _Order:
        """From rows already in (group, position) order; ``t_ms`` indexed by row."""
        t = t_ms[rows]
        fits = not len(groups) or (
            int(groups[-1]) < (1 << _GROUP_BITS) and int(t.max()) - origin < (1 << _TIME_BITS)
        )
        key = (groups.astype(np.int64) << _TIME_BITS) | (t - origin) if fits else None
        return _Order(groups.astype(np.int32), rows.astype(np.int32), key)

    def then(self, later: _Order, offset: int, t_ms: np.ndarray, origin: int) -> _Order:
        """This order merged with ``later``'s (whose rows are shifted by ``offset``); ``t_ms``
        holds the times of both blocks' rows."""
        rows = np.concatenate([self.rows, later.rows + offset]).astype(np.int64)
        groups = np.concatenate([self.groups, later.groups]).astype(np.int64)
        by = np.argsort((groups << _POSITION_BITS) | rows, kind="stable")  # two sorted runs
        return _Order.sorted(groups[by], rows[by], t_ms, origin)


@dataclass(slots=True)
class _Block:
    """Consecutive rows of the stream, kept while a window may still need them, with their
    card and device orders: a window takes its leaving rows from them without sorting again."""

    start: int  # stream position of the first row
    t: np.ndarray
    pence: np.ndarray  # amount in GBP pence, 0 without a rate
    next_gap: np.ndarray  # ms to the (card, device) pair's next payment: _NEVER, −1 no device
    by_card: _Order
    by_device: _Order

    @property
    def stop(self) -> int:
        return self.start + len(self.t)

    def merged(self, later: _Block, origin: int) -> _Block:
        """This block followed by ``later`` as one block."""
        n = len(self.t)
        t = np.concatenate([self.t, later.t])
        return _Block(
            self.start,
            t,
            np.concatenate([self.pence, later.pence]),
            np.concatenate([self.next_gap, later.next_gap]),
            self.by_card.then(later.by_card, n, t, origin),
            self.by_device.then(later.by_device, n, t, origin),
        )


@dataclass(frozen=True, slots=True)
class _Arrivals:
    """A chunk's rows of one group kind, in group order, as every window of that kind reads
    them: their order, where each group starts and each row's rank in its group."""

    order: _Order
    starts: np.ndarray
    rank: np.ndarray
    t_ms: np.ndarray  # the chunk's times, by row

    @staticmethod
    def of(order: _Order, t_ms: np.ndarray) -> _Arrivals:
        """From a chunk's order of one kind."""
        starts = _group_starts(order.groups)
        return _Arrivals(order, starts, _rank_in_groups(starts), t_ms)


@dataclass(slots=True)
class _Window:
    """Running sums over one trailing window, per card or per device.

    ``measures`` name the sums: ``count`` (payments), ``pence`` (their GBP amounts) or
    ``distinct`` (distinct (card, device) pairs: devices per card, cards per device). Each row
    adds its weight when it arrives and takes back its leaving weight once it is ``span`` old;
    for ``distinct`` a row adds 1 unless its pair was already in the window (its previous
    payment less than ``span`` earlier) and takes 1 back unless the pair came again before it
    left. ``totals`` hold each group's sum over the window; ``oldest`` is the stream position of
    the oldest row still inside the window."""

    group: str  # "card" or "device"
    span: int
    measures: tuple[str, ...]
    oldest: int = 0  # stream position of the oldest row still inside the window
    totals: list[np.ndarray] = field(default_factory=list)


class HistoryTracker:
    """Vectorized :class:`FeatureState` for a stream fed in chunks, in event order.

    Codes are dense non-negative integers (device −1 = none); ``t_ms`` is non-decreasing across
    chunks and ties are broken by row order, like arrival order on the live path. State between
    chunks: each card's home currency and first payment time, each (device, card) pair's count
    and last payment, each device's distinct-card count, each window's per-group sums, and the
    rows of the last week in blocks with their group-sorted keys. No chunk re-sorts the rows of
    a window: a row's leaving weight is taken from the block it arrived in, already in order.
    """

    def __init__(self) -> None:
        self._rows = 0  # stream position of the next row
        self._origin: int | None = None  # time origin of packed (group, time) keys
        self._home = np.full(0, -1, dtype=np.int64)
        self._first_t = np.zeros(0, dtype=np.int64)
        self._device_cards = np.zeros(0, dtype=np.int64)
        self._pair_codes = np.empty(0, dtype=np.int64)  # sorted (device << 32 | card)
        self._pair_counts = np.empty(0, dtype=np.int64)
        self._pair_last_t = np.empty(0, dtype=np.int64)
        self._pair_last_at = np.empty(0, dtype=np.int64)  # stream position of the last payment
        self._pair_settled = np.empty(0, dtype=np.int64)  # see _Settlement
        self._pair_first = np.empty(0, dtype=np.int64)
        self._settlement = _Settlement(self)
        self._blocks: list[_Block] = []
        self._windows = {
            "hour": _Window("card", HOUR_MS, ("count",)),
            "day": _Window("card", DAY_MS, ("count", "pence")),
            "week": _Window("card", WEEK_MS, ("distinct",)),
            "device_hour": _Window("device", HOUR_MS, ("count",)),
            "device_day": _Window("device", DAY_MS, ("distinct",)),
        }

    def update(
        self,
        card: np.ndarray,
        device: np.ndarray,
        currency: np.ndarray,
        t_ms: np.ndarray,
        gbp_pence: np.ndarray | None = None,
    ) -> HistoryCounts:
        """History counts for the next chunk of the stream, then remember it. ``gbp_pence``
        holds each amount in GBP pence (:data:`NO_GBP` without a rate; None: all 0)."""
        card = np.asarray(card, dtype=np.int64)
        device = np.asarray(device, dtype=np.int64)
        currency = np.asarray(currency, dtype=np.int64)
        t_ms = np.asarray(t_ms, dtype=np.int64)
        n = len(card)
        if n == 0:
            empty = np.empty(0, dtype=np.int64)
            self._settlement.start_chunk(t_ms, _PairOrder.empty(), empty)
            return HistoryCounts(empty, empty, empty, np.empty(0, dtype=bool), *[empty] * 6)
        pence = np.zeros(n, np.int64) if gbp_pence is None else np.maximum(gbp_pence, 0)
        start = self._rows
        self._rows += n
        foreign, age = self._card_facts(card, currency, t_ms)
        has_device = device >= 0
        seen, other, prev_gap, next_gap, pairs = self._device_history(card, device, t_ms, start)
        if self._origin is None:  # packed keys count from here: t − span − origin > 0
            self._origin = int(t_ms[0]) - LONGEST_WINDOW_MS - 1
        origin = self._origin
        self._settlement.start_chunk(t_ms, pairs, np.where(has_device, prev_gap, 0))
        by_card = _Order.of(card, t_ms, origin)
        by_device = _Order.of(device, t_ms, origin, has_device)
        self._append(_Block(start, t_ms, pence, next_gap, by_card, by_device))
        arrivals = {
            "card": _Arrivals.of(by_card, t_ms),
            "device": _Arrivals.of(by_device, t_ms),
        }
        sums = {}
        for name, window in self._windows.items():
            a = arrivals[window.group]
            entering = [
                None  # a count: each row adds 1
                if measure == "count"
                else pence[a.order.rows]
                if measure == "pence"
                else (prev_gap[a.order.rows] >= window.span).astype(np.int64)
                for measure in window.measures
            ]
            sums[name] = self._advance(window, a, entering, n, int(t_ms[-1]))
        self._forget_old_blocks()
        return HistoryCounts(
            velocity_count=sums["hour"][0],
            device_seen_count=seen,
            device_other_cards=other,
            foreign_currency=foreign,
            payments_per_card_24h=sums["day"][0],
            amount_per_card_24h=sums["day"][1],
            payments_per_device_1h=np.where(has_device, sums["device_hour"][0], NO_DEVICE),
            cards_per_device_24h=np.where(has_device, sums["device_day"][0], NO_DEVICE),
            devices_per_card_7d=sums["week"][0],
            card_age_days=age,
        )

    @property
    def blocks(self) -> list[slice]:
        """The last chunk cut into consecutive parts spanning less than :data:`SETTLE_MS` of
        event time each: a part's settled history depends only on decisions of earlier parts
        (and chunks), so the bulk path decides part by part (:meth:`settled`, then
        :meth:`decided`)."""
        return self._settlement.parts

    def settled(self, part: int) -> PairHistory:
        """The settled pair history of the last chunk's ``part`` (an index into
        :attr:`blocks`); every earlier part must have been :meth:`decided`."""
        return self._settlement.lookup(part)

    def decided(self, part: int, approved: np.ndarray, disputed_at: np.ndarray) -> None:
        """Record the decisions of ``part``: ``approved`` (bool) and, per row, when a dispute
        of it is recorded (ms; −1 never), so later payments' settled history counts the
        approved ones that are :data:`SETTLE_MS` old and not disputed by then."""
        self._settlement.record(part, np.asarray(approved, bool), np.asarray(disputed_at))

    def settled_chunk(self, approved: np.ndarray, disputed_at: np.ndarray) -> PairHistory:
        """The settled pair history of every row of the last chunk when its decisions
        (``approved``, ``disputed_at`` as for :meth:`decided`) are known without it (the
        policy reads no device trust), then records them: the values :meth:`settled` and
        :meth:`decided` give part by part, in one pass."""
        return self._settlement.lookup_chunk(np.asarray(approved, bool), np.asarray(disputed_at))

    # -- per card, per pair ----------------------------------------------------------------------

    def _card_facts(
        self, card: np.ndarray, currency: np.ndarray, t_ms: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(foreign currency, card age in days) per row; remembers each new card's first
        payment."""
        size = int(card.max()) + 1
        self._home = _grow(self._home, size, -1)
        self._first_t = _grow(self._first_t, size, 0)
        first_currency = np.full(len(self._home), -1, dtype=np.int64)
        first_t = np.zeros(len(self._home), dtype=np.int64)
        first_currency[card[::-1]] = currency[::-1]  # the last write wins: the first payment
        first_t[card[::-1]] = t_ms[::-1]
        unset = (self._home < 0) & (first_currency >= 0)
        self._home[unset] = first_currency[unset]
        self._first_t[unset] = first_t[unset]
        return self._home[card] != currency, (t_ms - self._first_t[card]) // DAY_MS

    def _device_history(
        self, card: np.ndarray, device: np.ndarray, t_ms: np.ndarray, start: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, _PairOrder]:
        """Per row: the card's earlier payments on this device, the device's other cards, and
        the ms since the pair's previous payment and until its next one (as far as known;
        :data:`_NEVER` when there is none, −1 for rows without a device); and the rows with a
        device in pair order."""
        n = len(card)
        seen = np.zeros(n, dtype=np.int64)
        other = np.zeros(n, dtype=np.int64)
        prev_gap = np.full(n, -1, dtype=np.int64)
        next_gap = np.full(n, -1, dtype=np.int64)
        rows = np.flatnonzero(device >= 0)
        if not len(rows):
            return seen, other, prev_gap, next_gap, _PairOrder.empty()
        d_card, d_dev, d_t = card[rows], device[rows], t_ms[rows]
        m = len(rows)
        pair = (d_dev << 32) | d_card
        compact = d_dev * (int(d_card.max()) + 1) + d_card
        if int(compact.max()) < (1 << 62) // m:  # row-tiebroken key fits: faster unstable sort
            by_pair = np.argsort(compact * m + np.arange(m))
        else:
            by_pair = np.argsort(pair, kind="stable")
        pair_sorted = pair[by_pair]
        t_sorted = d_t[by_pair]
        starts = _group_starts(pair_sorted)
        ends = np.append(starts[1:], True)
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

        # The pair's previous and next payment: the neighbour in the chunk, else (previous) the
        # pair's last payment before the chunk, whose "next" is then this chunk's first one.
        prev_sorted = np.full(m, _NEVER, dtype=np.int64)
        prev_sorted[1:] = np.where(starts[1:], _NEVER, t_sorted[1:] - t_sorted[:-1])
        renewed = starts & known
        if renewed.any():
            prev_sorted[renewed] = t_sorted[renewed] - self._pair_last_t[position[renewed]]
            self._set_next_t(self._pair_last_at[position[renewed]], t_sorted[renewed])
        next_sorted = np.full(m, _NEVER, dtype=np.int64)
        next_sorted[:-1] = np.where(ends[:-1], _NEVER, t_sorted[1:] - t_sorted[:-1])
        prev_gap[rows[by_pair]] = prev_sorted
        next_gap[rows[by_pair]] = next_sorted

        # Distinct cards on the device before each row: the device's count before this chunk
        # plus first-ever pair occurrences earlier in the chunk.
        self._device_cards = _grow(self._device_cards, int(d_dev.max()) + 1, 0)
        first_ever = (seen_d == 0).astype(np.int64)
        by_dev = np.argsort(d_dev * m + np.arange(m))
        firsts = first_ever[by_dev]
        distinct_before = np.empty(m, dtype=np.int64)
        distinct_before[by_dev] = (
            _sum_before_in_groups(firsts, _group_starts(d_dev[by_dev]))
            + self._device_cards[d_dev[by_dev]]
        )
        self._device_cards += np.bincount(
            d_dev, weights=first_ever, minlength=len(self._device_cards)
        ).astype(np.int64)
        seen[rows] = seen_d
        other[rows] = distinct_before - (seen_d > 0)

        # Merge this chunk's pairs into the sorted state in linear time: known pairs add to
        # their counts and move their last payment, new pairs are inserted in order.
        unique_pairs = pair_sorted[starts]
        chunk_counts = np.diff(np.append(np.flatnonzero(starts), m))
        last_t = t_sorted[ends]
        last_at = start + rows[by_pair][ends]
        unique_known = known[starts]
        at_known = position[starts][unique_known]
        self._pair_counts[at_known] += chunk_counts[unique_known]
        self._pair_last_t[at_known] = last_t[unique_known]
        self._pair_last_at[at_known] = last_at[unique_known]
        new = ~unique_known
        at = insert_at[starts][new]
        self._pair_codes = np.insert(self._pair_codes, at, unique_pairs[new])
        self._pair_counts = np.insert(self._pair_counts, at, chunk_counts[new])
        self._pair_last_t = np.insert(self._pair_last_t, at, last_t[new])
        self._pair_last_at = np.insert(self._pair_last_at, at, last_at[new])
        self._pair_settled = np.insert(self._pair_settled, at, 0)
        self._pair_first = np.insert(self._pair_first, at, _NEVER)
        # Where each pair is now: np.insert puts the i-th new value at at[i] + i and moves an
        # old entry j up by the new values inserted at or before it.
        index = np.empty(len(unique_pairs), dtype=np.int64)
        index[new] = at + np.arange(len(at))
        index[unique_known] = at_known + np.searchsorted(at, at_known, side="right")
        pair_index = index[np.cumsum(starts) - 1]
        order = _PairOrder(rows[by_pair], t_sorted, pair_sorted, pair_index, seen_sorted)
        return seen, other, prev_gap, next_gap, order

    def _set_next_t(self, positions: np.ndarray, t_ms: np.ndarray) -> None:
        """Record the next payment's time on earlier rows still kept in a block."""
        if not self._blocks:
            return
        starts = np.array([b.start for b in self._blocks])
        which = np.searchsorted(starts, positions, side="right") - 1
        for i in np.unique(which[which >= 0]).tolist():
            block = self._blocks[i]
            hit = (which == i) & (positions < block.stop)
            local = positions[hit] - block.start
            block.next_gap[local] = t_ms[hit] - block.t[local]

    # -- windows ---------------------------------------------------------------------------------

    def _append(self, block: _Block) -> None:
        blocks = self._blocks
        if blocks and len(blocks[-1].t) < _MIN_BLOCK_ROWS and len(block.t) < _MIN_BLOCK_ROWS:
            blocks[-1] = blocks[-1].merged(block, self._origin)
        else:
            blocks.append(block)

    def _forget_old_blocks(self) -> None:
        oldest = min(window.oldest for window in self._windows.values())
        keep = bisect.bisect_right([b.stop for b in self._blocks], oldest)
        del self._blocks[:keep]

    def _advance(
        self,
        window: _Window,
        arrivals: _Arrivals,
        entering: list[np.ndarray | None],
        n: int,
        last_t: int,
    ) -> list[np.ndarray]:
        """Each measure of ``window`` for the chunk's rows (row order; rows without a device
        get 0 from a device window), then move the window past the chunk. ``entering`` holds
        what each arriving row adds (in group order; None: 1)."""
        if not len(arrivals.order.groups):
            return [np.zeros(n, dtype=np.int64) for _ in window.measures]
        groups = arrivals.order.groups
        size = int(groups[-1]) + 1
        window.totals = [_grow(total, size, 0) for total in window.totals] or [
            np.zeros(size, dtype=np.int64) for _ in window.measures
        ]
        values = []
        for total, weights in zip(window.totals, entering, strict=True):
            if weights is None:
                values.append(total[groups] + arrivals.rank)
                total += np.bincount(groups, minlength=len(total))
            else:
                values.append(total[groups] + _sum_before_in_groups(weights, arrivals.starts))
                total += np.bincount(groups, weights, len(total)).astype(np.int64)
        self._take_leaving(window, arrivals, values, last_t - window.span)
        out = []
        for value in values:
            column = np.zeros(n, dtype=np.int64)
            column[arrivals.order.rows] = value
            out.append(column)
        return out

    def _take_leaving(
        self, window: _Window, arrivals: _Arrivals, values: list[np.ndarray], last: int
    ) -> None:
        """Subtract, from each chunk row's values, the rows of its group that left the window
        by its time (t' <= t − span), and from the totals every row that left by the chunk's
        last time (``last`` = its time − span). Leaving rows are read from their blocks'
        orders, oldest block first; one sorted search per block finds, for every chunk row,
        how many rows of its group have left."""
        queries = arrivals.order
        query_key = None if queries.key is None else queries.key - window.span
        groups = queries.groups
        for block in self._blocks:
            if block.stop <= window.oldest:
                continue
            lo = window.oldest - block.start
            hi = lo + int(np.searchsorted(block.t[lo:], last, side="right"))
            if hi == lo:
                break
            order = block.by_device if window.group == "device" else block.by_card
            leaving = order
            if lo > 0 or hi < len(block.t):
                inside = (order.rows >= lo) & (order.rows < hi)
                leaving = _Subset(order, inside)
            if query_key is not None and leaving.key is not None:
                upper = np.searchsorted(leaving.key, query_key, side="right")
            else:
                upper = _count_left(
                    leaving.groups,
                    block.t[leaving.rows],
                    groups,
                    arrivals.t_ms[queries.rows] - window.span,
                )
            for measure, value, total in zip(window.measures, values, window.totals, strict=True):
                if measure == "count":
                    by_group = np.bincount(leaving.groups, minlength=len(total))
                    left = upper
                else:
                    weights = (
                        block.pence[leaving.rows]
                        if measure == "pence"
                        else (block.next_gap[leaving.rows] >= window.span).astype(np.int64)
                    )
                    by_group = np.bincount(leaving.groups, weights, len(total)).astype(np.int64)
                    left = np.concatenate([[0], np.cumsum(weights)])[upper]
                value -= left - (np.cumsum(by_group) - by_group)[groups]
                total -= by_group
            window.oldest = block.start + hi
            if hi < len(block.t):
                break


class _Subset:
    """The rows of an order that ``inside`` selects, each field taken only when read."""

    def __init__(self, order: _Order, inside: np.ndarray) -> None:
        self._order, self._inside = order, inside

    @functools.cached_property
    def groups(self) -> np.ndarray:
        return self._order.groups[self._inside]

    @functools.cached_property
    def rows(self) -> np.ndarray:
        return self._order.rows[self._inside]

    @functools.cached_property
    def key(self) -> np.ndarray | None:
        return None if self._order.key is None else self._order.key[self._inside]


def _count_left(
    leaving_groups: np.ndarray, leaving_t: np.ndarray, groups: np.ndarray, horizon: np.ndarray
) -> np.ndarray:
    """For each query (group, horizon), sorted by group then time: how many leaving rows are of
    an earlier group, or of its group at or before its horizon (the unpacked way: a merge)."""
    n = len(leaving_t)
    order = np.lexsort(
        (
            np.r_[np.zeros(n, np.int8), np.ones(len(horizon), np.int8)],
            np.r_[leaving_t, horizon],
            np.r_[leaving_groups, groups],
        )
    )
    return np.flatnonzero(order >= n) - np.arange(len(horizon))


@dataclass(frozen=True, slots=True)
class _PairOrder:
    """A chunk's rows with a device in (pair, row) order: the row, its time, its pair's code
    and index in the tracker's pair arrays (after the chunk), and its earlier payments on the
    pair."""

    rows: np.ndarray
    t: np.ndarray
    codes: np.ndarray
    index: np.ndarray
    seen: np.ndarray

    @staticmethod
    def empty() -> _PairOrder:
        empty = np.empty(0, dtype=np.int64)
        return _PairOrder(empty, empty, empty, empty, empty)

    def take(self, which: np.ndarray | slice) -> _PairOrder:
        return _PairOrder(*(getattr(self, name)[which] for name in self.__slots__))


class _Run:
    """Approved, never disputed payments of one decided part not yet folded into the pairs'
    settled counts, in (pair, time) order, with packed (pair rank, time) keys when they fit."""

    __slots__ = ("codes", "key", "ranks", "t")

    def __init__(self, codes: np.ndarray, t: np.ndarray, origin: int) -> None:
        self.codes, self.t = codes, t
        starts = _group_starts(codes)
        self.ranks = codes[starts]  # the distinct pair codes, ascending
        fits = len(self.ranks) < (1 << _GROUP_BITS) and int(t.max()) - origin < (1 << _TIME_BITS)
        rank = np.cumsum(starts) - 1
        self.key = (rank << _TIME_BITS) | (t - origin) if fits else None

    def count(self, codes: np.ndarray, horizon: np.ndarray, origin: int) -> np.ndarray:
        """Per query (pair code, horizon), in pair order: this run's payments of the pair at
        or before the horizon."""
        at = np.searchsorted(self.ranks, codes)
        at = np.minimum(at, len(self.ranks) - 1)
        match = self.ranks[at] == codes
        if self.key is not None and int(horizon.max()) - origin < (1 << _TIME_BITS):
            group = at << _TIME_BITS
            upper = np.searchsorted(self.key, group | (horizon - origin), side="right")
            below = np.searchsorted(self.key, group, side="left")
        else:  # the unpacked way: a merge
            upper = _count_left(self.codes, self.t, codes, horizon)
            below = np.searchsorted(self.codes, codes, side="left")
        return np.where(match, upper - below, 0)

    def fold(self, horizon: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Take out the payments at or before ``horizon``: (their distinct pair codes, how many
        each), or None when there are none."""
        done = self.t <= horizon
        if not done.any():
            return None
        codes = self.codes[done]
        starts = _group_starts(codes)
        counts = np.diff(np.append(np.flatnonzero(starts), len(codes)))
        keep = ~done
        self.codes, self.t = self.codes[keep], self.t[keep]
        if self.key is not None:
            self.key = self.key[keep]
        return codes[starts], counts


class _Disputed:
    """Approved payments whose dispute comes after they settled: each counts from its time +
    :data:`SETTLE_MS` until its dispute time, in (pair, time) order; dropped once disputed."""

    def __init__(self) -> None:
        self.codes = np.empty(0, dtype=np.int64)
        self.t = np.empty(0, dtype=np.int64)
        self.end = np.empty(0, dtype=np.int64)

    def add(self, codes: np.ndarray, t: np.ndarray, end: np.ndarray) -> None:
        """Payments in (pair, time) order, later than every one added before."""
        if not len(codes):
            return
        codes = np.concatenate([self.codes, codes])
        by = np.argsort(codes, kind="stable")  # two sorted runs; ties keep time order
        self.codes = codes[by]
        self.t = np.concatenate([self.t, t])[by]
        self.end = np.concatenate([self.end, end])[by]

    def forget(self, t_ms: int) -> None:
        """Drop the payments disputed by ``t_ms`` (no later payment counts them)."""
        keep = self.end > t_ms
        if not keep.all():
            self.codes, self.t, self.end = self.codes[keep], self.t[keep], self.end[keep]

    def active(
        self, codes: np.ndarray, t_ms: np.ndarray, horizon: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per query (pair code, time, time − SETTLE_MS), in pair order: how many of these
        payments count (settled and not disputed yet) and the earliest time among them
        (:data:`_NEVER` when none)."""
        n = len(codes)
        count = np.zeros(n, dtype=np.int64)
        first = np.full(n, _NEVER, dtype=np.int64)
        if not len(self.codes):
            return count, first
        # A pair's queries are a range of the (sorted) queries: search the few payments there.
        lo = np.searchsorted(codes, self.codes, side="left")
        width = np.searchsorted(codes, self.codes, side="right") - lo
        hit = np.flatnonzero(width)
        if not len(hit):
            return count, first
        j = np.repeat(hit, width[hit])  # one entry per (payment, query of its pair)
        offsets = np.cumsum(width[hit]) - width[hit]
        query = np.repeat(lo[hit] - offsets, width[hit]) + np.arange(len(j))
        on = (self.t[j] <= horizon[query]) & (t_ms[query] < self.end[j])
        count += np.bincount(query[on], minlength=n)
        np.minimum.at(first, query[on], self.t[j][on])
        return count, first


class _Settlement:
    """The bulk path's settled pair history (:class:`HistoryTracker`'s part of it).

    Per pair (arrays beside the tracker's pair codes): how many approved, never disputed
    payments are settled as of the last fold, and the time of its first approved, never
    disputed payment. Approved payments not settled yet wait in runs (one per decided part or
    chunk) until a fold counts them; approved payments disputed later than they settle are kept
    apart (:class:`_Disputed`) until their dispute. A lookup adds, per row, the run payments
    settled by its time and the disputed ones counting at its time to the folded count."""

    def __init__(self, tracker: HistoryTracker) -> None:
        self._tracker = tracker
        self._runs: list[_Run] = []
        self._disputed = _Disputed()
        self.parts: list[slice] = []
        self._bounds: list[int] = [0]
        self._t = np.empty(0, dtype=np.int64)
        self._idle = np.empty(0, dtype=np.int64)
        self._pairs = _PairOrder.empty()  # the chunk's rows with a device, in pair order
        self._by_part: tuple[_PairOrder, np.ndarray] | None = None  # part-major, when needed
        self._next = 0  # the next part to decide

    def start_chunk(self, t_ms: np.ndarray, order: _PairOrder, idle: np.ndarray) -> None:
        """A new chunk (its times, its rows with a device in pair order, each row's idle
        time); the previous chunk's parts must all be decided, or none of them looked up."""
        if 0 < self._next < len(self.parts):
            raise ValueError("a chunk's parts must all be decided before the next chunk")
        n = len(t_ms)
        bounds = [0]
        while bounds[-1] < n:  # each part spans less than SETTLE_MS of event time
            lo = bounds[-1]
            bounds.append(int(np.searchsorted(t_ms, t_ms[lo] + SETTLE_MS, side="left")))
        self.parts = [slice(a, b) for a, b in itertools.pairwise(bounds)]
        self._bounds = bounds
        self._t, self._idle, self._next = t_ms, idle, 0
        self._pairs, self._by_part = order, None

    def _part_rows(self, part: int) -> _PairOrder:
        """``part``'s rows with a device, in pair order."""
        if len(self.parts) == 1:
            return self._pairs
        if self._by_part is None:  # part-major, pair order inside each part (a radix sort)
            bounds = self._bounds
            small = np.int16 if len(bounds) < (1 << 15) else np.int32
            of = (np.searchsorted(bounds, self._pairs.rows, side="right") - 1).astype(small)
            by = np.argsort(of, kind="stable")
            self._by_part = (self._pairs.take(by), np.searchsorted(of[by], np.arange(len(bounds))))
        order, at = self._by_part
        return order.take(slice(at[part], at[part + 1]))

    def lookup(self, part: int) -> PairHistory:
        """The settled history of ``part``'s rows (see :meth:`HistoryTracker.settled`)."""
        if part != self._next:
            raise ValueError(f"part {part} looked up before part {self._next} was decided")
        rows = self.parts[part]
        n = rows.stop - rows.start
        settled = np.zeros(n, dtype=np.int64)
        tenure = np.zeros(n, dtype=np.int64)
        idle = self._idle[rows].copy()
        if not n:
            return PairHistory(settled, tenure, idle)
        self._fold(int(self._t[rows.start]))
        mine = self._part_rows(part)
        mine = mine.take(mine.seen > 0)  # a pair's first payment has no history
        if not len(mine.rows):
            return PairHistory(settled, tenure, idle)
        t = mine.t
        count, first = self._before(mine, t, t - SETTLE_MS)
        local = mine.rows - rows.start
        settled[local] = count
        tenure[local] = np.where(count > 0, t - first, 0)
        return PairHistory(settled, tenure, idle)

    def _before(
        self, pairs: _PairOrder, t: np.ndarray, horizon: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row (in pair order): the settled payments recorded before this lookup, and the
        earliest time among them (:data:`_NEVER` when none)."""
        tracker = self._tracker
        count = tracker._pair_settled[pairs.index]
        first = tracker._pair_first[pairs.index]
        first = np.where(first <= horizon, first, _NEVER)
        for run in self._runs:
            count = count + run.count(pairs.codes, horizon, tracker._origin)
        disputed, disputed_first = self._disputed.active(pairs.codes, t, horizon)
        return count + disputed, np.minimum(first, disputed_first)

    def record(self, part: int, approved: np.ndarray, disputed_at: np.ndarray) -> None:
        """The decisions of ``part`` (see :meth:`HistoryTracker.decided`)."""
        if part != self._next:
            raise ValueError(f"part {part} decided before part {self._next} was")
        start = self.parts[part].start
        self._next += 1
        mine = self._part_rows(part)
        local = mine.rows - start
        ok = approved[local]
        self._remember(mine.codes[ok], mine.index[ok], mine.t[ok], disputed_at[local[ok]])

    def _remember(
        self, codes: np.ndarray, index: np.ndarray, t: np.ndarray, disputed_at: np.ndarray
    ) -> None:
        """Approved payments (pair codes and indexes, times, dispute times; in pair order,
        after every one remembered so far) join the history."""
        if not len(codes):
            return
        never = disputed_at < 0
        if never.any():
            tracker = self._tracker
            kept, kept_t = codes[never], t[never]
            firsts = _group_starts(kept)
            at = index[never][firsts]
            tracker._pair_first[at] = np.minimum(tracker._pair_first[at], kept_t[firsts])
            self._runs.append(_Run(kept, kept_t, tracker._origin))
        later = disputed_at > t + SETTLE_MS  # disputed sooner: never counts
        self._disputed.add(codes[later], t[later], disputed_at[later])

    def lookup_chunk(self, approved: np.ndarray, disputed_at: np.ndarray) -> PairHistory:
        """The settled history of every row of the chunk, its decisions known up front (see
        :meth:`HistoryTracker.settled_chunk`), then its decisions join the history."""
        if self._next != 0:
            raise ValueError("a chunk is settled whole or part by part, not both")
        n = len(self._t)
        settled = np.zeros(n, dtype=np.int64)
        tenure = np.zeros(n, dtype=np.int64)
        self._next = len(self.parts)
        if not n:
            return PairHistory(settled, tenure, self._idle.copy())
        self._fold(int(self._t[0]))
        pairs = self._pairs
        t = pairs.t
        horizon = t - SETTLE_MS
        if len(pairs.rows):
            count, first = self._before(pairs, t, horizon)
            ok = approved[pairs.rows]
            disputed = disputed_at[pairs.rows]
            within, within_first = self._within_chunk(pairs, t, horizon, ok, disputed)
            count += within
            first = np.minimum(first, within_first)
            settled[pairs.rows] = count
            tenure[pairs.rows] = np.where(count > 0, t - first, 0)
            self._remember(pairs.codes[ok], pairs.index[ok], t[ok], disputed[ok])
        return PairHistory(settled, tenure, self._idle.copy())

    def _within_chunk(
        self,
        pairs: _PairOrder,
        t: np.ndarray,
        horizon: np.ndarray,
        approved: np.ndarray,
        disputed_at: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row (in pair order): the chunk's own payments of its pair settled by its time,
        and the earliest of them. A pair's rows are in time order, so those at or before a
        row's horizon are a prefix of its group: one sorted search finds where it ends."""
        starts = _group_starts(pairs.codes)
        group = np.cumsum(starts) - 1
        origin = self._tracker._origin
        if int(group[-1]) < (1 << _GROUP_BITS) and int(t.max()) - origin < (1 << _TIME_BITS):
            key = (group << _TIME_BITS) | (t - origin)  # t − SETTLE_MS − origin > 0: below
            upto = np.searchsorted(key, key - SETTLE_MS, side="right")
        else:  # the unpacked way: a merge
            upto = _count_left(pairs.codes, t, pairs.codes, horizon)
        kept = approved & (disputed_at < 0)
        before = np.concatenate([[0], np.cumsum(kept)])
        count = before[upto] - before[np.flatnonzero(starts)][group]
        # the earliest kept payment of a group is at or before a row's horizon when any is
        first_kept = np.full(int(group[-1]) + 1, _NEVER, dtype=np.int64)
        at = np.flatnonzero(kept)
        firsts = _group_starts(group[at])
        first_kept[group[at][firsts]] = t[at][firsts]
        first = np.where(count > 0, first_kept[group], _NEVER)
        later = approved & (disputed_at > t + SETTLE_MS)
        own = _Disputed()
        own.add(pairs.codes[later], t[later], disputed_at[later])
        disputed, disputed_first = own.active(pairs.codes, t, horizon)
        return count + disputed, np.minimum(first, disputed_first)

    def _fold(self, t_ms: int) -> None:
        """Count the run payments settled by ``t_ms`` into their pairs (every later lookup
        counts them) and forget the disputed payments disputed by then."""
        tracker = self._tracker
        for run in self._runs:
            folded = run.fold(t_ms - SETTLE_MS)
            if folded is not None:
                codes, counts = folded
                tracker._pair_settled[np.searchsorted(tracker._pair_codes, codes)] += counts
        self._runs = [run for run in self._runs if len(run.t)]
        self._disputed.forget(t_ms)
