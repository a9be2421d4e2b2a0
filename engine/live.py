"""The live decision path: one writer thread deciding and committing payments in groups.

Requests queue up while the previous group commits; the writer takes everything queued (up to
``max_batch``, waiting up to ``GROUP_LINGER_S`` for a group as large as the last one), computes
features in arrival order, decides the group with the one vectorized decision function, appends
its rows in one DuckDB commit (one autocommitted INSERT unless idempotency keys or latency
write-backs join it), updates the in-memory live totals (:class:`~engine.live_totals.LiveTotals`)
and only then answers each request. One commit per group instead of per payment is what makes
thousands of durable payments per second possible. A payment's audit entry is read from its row,
which this commit writes.

Deciding and committing stay on one thread. DuckDB's Python binding takes the GIL back several
times within one ``execute`` (about six for this INSERT), so a second Python thread deciding the
next group while this one commits made every commit wait for it: c=32 fell from ~1,450 to ~1,080
payments/s (``benchmarks/bench_live_insert.py`` and benchmarks/README.md, "The GIL").

``latency_ms`` is measured from the request reaching the engine (``submit``) to its group's
commit returning. It is only known after the commit, so it is written back to the row later:
inside a group's transaction once ``LATENCY_FLUSH_ROWS`` latencies are pending, or on its own when
no request has arrived for ``LATENCY_IDLE_FLUSH_S``. Until then lookups answer it from memory
(:meth:`LiveWriter.pending_latency`); the live totals count it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta

import numpy as np
import pandas  # noqa: F401  # pyarrow imports it on first use; pay that at start-up, not on a payment
import pyarrow as pa

from engine.cards import CardFingerprint
from engine.decision import (
    ACTION_LABELS,
    REASON_NAMES,
    ChallengeInputs,
    Decider,
    Decisions,
    explain,
    risk_score,
)
from engine.errors import StoreError
from engine.experiments import LiveExperiments, routed
from engine.features import (
    DAY_MS,
    NO_GBP,
    SETTLE_MS,
    WEEK_MS,
    FeatureColumns,
    FeatureState,
    HistoryCounts,
    PairHistory,
    normalize,
)
from engine.fx import pence_in_gbp
from engine.geo import country_of
from engine.history import GBP_PENCE_SQL, attribute_columns
from engine.ids import IdAllocator
from engine.issuers import bin_country
from engine.live_totals import LiveTotals
from engine.models import FRAUD_DISPUTE_REASONS, Features, PaymentRequest, PaymentResult
from engine.policy import Policy
from engine.rule_inputs import BatchFacts, rule_inputs
from engine.store import Store

_TRUST_REASONS = ", ".join(f"'{reason}'" for reason in FRAUD_DISPUTE_REASONS)
# payments whose dispute stops them counting for device trust
_TRUST_DISPUTES = f"SELECT transaction_id FROM disputes WHERE reason IN ({_TRUST_REASONS})"
LIVE_ACTIVE_WINDOW_S = 1.0  # a group this recent means live clients are waiting on the writer

log = logging.getLogger("ptsim.live")
_STOP = object()
_EPOCH = datetime(1970, 1, 1)
LATENCY_FLUSH_ROWS = 512  # write latencies back inside a group's transaction from this many on
LATENCY_IDLE_FLUSH_S = 0.05  # ... or on their own after this long without a new request
GROUP_LINGER_S = 0.001  # longest wait for a group to reach the size of the previous one


@dataclass(slots=True)
class _Exclusive:
    """A job the writer thread runs between two groups (a reset), and its completion."""

    job: Callable[[], None]
    done: Future[None]


@dataclass(slots=True)
class PendingPayment:
    """A validated request waiting for the writer."""

    request: PaymentRequest
    card: CardFingerprint
    received_ns: int
    idempotency: tuple[str, str] | None = None  # (Idempotency-Key, request hash)
    future: Future[PaymentResult] | asyncio.Future[PaymentResult] | None = None  # set on submit


class LiveWriter:
    """Owns the live feature state, the live RNG and the writer thread."""

    def __init__(
        self,
        store: Store,
        rng: np.random.Generator,
        ids: IdAllocator,
        active_decider: Callable[[], Decider],
        max_batch: int,
        experiments: Callable[[], LiveExperiments] = LiveExperiments,
    ) -> None:
        self._store = store
        self._rng = rng
        # challenge draws from a child stream: the first draws keep the sequence they always had
        self._challenge_rng = rng.spawn(1)[0]
        self._ids = ids
        self._active_decider = active_decider
        self._experiments = experiments  # the shadow and route in force, read once per group
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._accepting = True
        self._accepting_lock = threading.Lock()
        self._last_batch_size = 1
        self._last_group_at = -LIVE_ACTIVE_WINDOW_S  # monotonic time of the last group decided
        self._last_us = 0  # event time never runs back, even when the wall clock does
        # committed, not yet written back: id -> latency_ms (only the writer thread mutates it)
        self._pending_latency: dict[uuid.UUID, float] = {}
        self.totals = LiveTotals()
        self.features = FeatureState()
        self._load_history()
        self._thread = threading.Thread(target=self._run, name="ptsim-writer", daemon=True)
        self._thread.start()

    def submit(self, pending: PendingPayment) -> Future[PaymentResult]:
        """Queue a payment; the future resolves once it is committed (or fails)."""
        pending.future = Future()
        self._enqueue(pending)
        return pending.future  # type: ignore[return-value]

    def submit_async(self, pending: PendingPayment) -> asyncio.Future[PaymentResult]:
        """Queue a payment from a running event loop; await the returned future.

        The writer settles all of a group's futures on their loop with one thread-safe call
        (per-payment ``wrap_future`` wake-ups cost the loop a system call each)."""
        pending.future = asyncio.get_running_loop().create_future()
        self._enqueue(pending)
        return pending.future

    def _enqueue(self, pending: PendingPayment) -> None:
        with self._accepting_lock:  # never queued after stop(): nothing is left unanswered
            if self._accepting and self._thread.is_alive():
                self._queue.put(pending)
                return
        error = StoreError("The payment writer has stopped (the engine is closing); retry later.")
        pending.future.set_exception(error)  # type: ignore[union-attr]

    def stop(self) -> None:
        """Stop taking payments, finish the queued ones, write back the last latencies and stop
        the thread."""
        with self._accepting_lock:
            if not self._accepting:
                return
            self._accepting = False
            self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def recently_active(self) -> bool:
        """True when a payment group was decided within :data:`LIVE_ACTIVE_WINDOW_S` (server
        runs then give way, see :mod:`engine.simulation.pacing`)."""
        return time.monotonic() - self._last_group_at < LIVE_ACTIVE_WINDOW_S

    def pending_latency(self, transaction_id: uuid.UUID) -> float | None:
        """The measured latency of a committed payment not yet written back, if any."""
        return self._pending_latency.get(transaction_id)

    def reset(self, clear_store: Callable[[], None]) -> None:
        """Run ``clear_store`` on the writer thread between two groups, then forget live history
        and totals: no group can be half-decided on history the reset deletes. Waits for it."""
        job = _Exclusive(lambda: self._reset_now(clear_store), Future())
        with self._accepting_lock:
            running = self._accepting and self._thread.is_alive()
            if running:
                self._queue.put(job)
        if not running:  # the writer has stopped: nothing else writes live rows
            self._reset_now(clear_store)
            return
        job.done.result()

    def _reset_now(self, clear_store: Callable[[], None]) -> None:
        clear_store()
        self.features = FeatureState()
        self._pending_latency = {}
        self.totals.clear()

    def _load_history(self) -> None:
        """Rebuild the in-memory feature state and totals from live rows already on disk: totals
        and per-card and per-pair aggregates over every live row, and only the rows the windows
        can still hold (the last week's pairs, the last day's payments) one by one. Times are
        read as the writer stamps them, ``created_at`` floored to the millisecond (DuckDB's
        ``epoch_ms`` rounds)."""
        with self._store.read() as tx:
            total, approved, cents = tx.one(
                "SELECT count(*), count(*) FILTER (status = 'Approved'), "
                "coalesce(sum(CAST(amount * 100 AS BIGINT)), 0) FROM transactions "
                "WHERE run_id IS NULL"
            )
            latencies = tx.numpy(
                "SELECT latency_ms FROM transactions WHERE run_id IS NULL "
                "AND latency_ms IS NOT NULL"
            )["latency_ms"]
            (newest_us,) = tx.one(
                "SELECT coalesce(epoch_us(max(created_at)), 0) FROM transactions "
                "WHERE run_id IS NULL"
            )
            newest = newest_us // 1000
            first = tx.rows(
                "SELECT card_hash, (epoch_us(arg_min(created_at, id)) // 1000), "
                "CAST(arg_min(currency, id) AS VARCHAR) FROM transactions "
                "WHERE run_id IS NULL GROUP BY card_hash"
            )
            pairs = tx.rows(
                "SELECT device_id, card_hash, count(*), max(epoch_us(created_at)) // 1000 "
                "FROM transactions WHERE run_id IS NULL AND device_id IS NOT NULL GROUP BY ALL"
            )
            trusted = tx.rows(  # approved payments count for trust once settled, until disputed
                "SELECT card_hash, device_id, count(*) FILTER (ms <= ?), min(ms), "
                "list(ms ORDER BY id) FILTER (ms > ?) FROM ("
                "  SELECT id, card_hash, device_id, epoch_us(created_at) // 1000 AS ms "
                "  FROM transactions WHERE run_id IS NULL AND device_id IS NOT NULL "
                f"  AND status = 'Approved' AND id NOT IN ({_TRUST_DISPUTES})) GROUP BY ALL",
                [newest - SETTLE_MS, newest - SETTLE_MS],
            )
            week_pairs = tx.rows(
                "SELECT card_hash, device_id, max(epoch_us(created_at)) // 1000 AS last "
                "FROM transactions WHERE run_id IS NULL AND device_id IS NOT NULL "
                "AND epoch_us(created_at) // 1000 > ? GROUP BY ALL ORDER BY last",
                [newest - WEEK_MS],
            )
            day = tx.rows(
                "SELECT card_hash, device_id, (epoch_us(created_at) // 1000), "
                f"coalesce({GBP_PENCE_SQL}, {NO_GBP}) FROM transactions "
                "WHERE run_id IS NULL AND (epoch_us(created_at) // 1000) > ? ORDER BY id",
                [newest - DAY_MS],
            )
        self.totals.load(int(total), int(approved), int(cents), np.asarray(latencies))
        self._last_us = max(self._last_us, newest_us)
        self.features.restore(  # UUID columns -> the live hex keys
            [(card.hex, t, currency) for card, t, currency in first],
            [(device, card.hex, n, last) for device, card, n, last in pairs],
            [(card.hex, device, t) for card, device, t in week_pairs],
            [(card.hex, device, t, pence) for card, device, t, pence in day],
            [(card.hex, device, n, first, times) for card, device, n, first, times in trusted],
        )

    def dispute_recorded(self, transaction_id: uuid.UUID, reason: str) -> None:
        """A dispute was just stored: when it is the first of a fraud reason
        (:data:`~engine.models.FRAUD_DISPUTE_REASONS`) about an approved live payment with a
        device, that payment stops counting for its pair's device trust, for every payment
        decided after this call returns (applied on the writer thread, between two groups)."""
        if reason not in FRAUD_DISPUTE_REASONS:
            return
        job = _Exclusive(lambda: self._apply_dispute(transaction_id, reason), Future())
        with self._accepting_lock:
            running = self._accepting and self._thread.is_alive()
            if running:
                self._queue.put(job)
        if not running:  # nothing decides live payments any more; a restart restores it
            return
        job.done.result()

    def _apply_dispute(self, transaction_id: uuid.UUID, reason: str) -> None:
        with self._store.read() as tx:
            row = tx.one(
                "SELECT card_hash, device_id, epoch_us(created_at) // 1000, ("
                "  SELECT arg_min(reason::VARCHAR, (recorded_at, reason::VARCHAR)) "
                "  FROM disputes d WHERE d.transaction_id = t.id "
                f"  AND d.reason IN ({_TRUST_REASONS})) "
                "FROM transactions t WHERE id = ? AND run_id IS NULL "
                "AND device_id IS NOT NULL AND status = 'Approved'",
                [transaction_id],
            )
            if row is None or row[3] != reason:  # only the first such dispute counts
                return
            (first_left,) = tx.one(  # the pair's earliest approved payment still undisputed
                "SELECT min(epoch_us(created_at)) // 1000 FROM transactions WHERE run_id IS NULL "
                "AND card_hash = ? AND device_id = ? AND status = 'Approved' "
                f"AND id NOT IN ({_TRUST_DISPUTES})",
                [row[0], row[1]],
            )
        self.features.dispute(row[0].hex, row[1], int(row[2]), first_left)

    # -- writer thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(
                    timeout=LATENCY_IDLE_FLUSH_S if self._pending_latency else None
                )
            except queue.Empty:
                self._flush_latency()
                continue
            if first is _STOP:
                break
            if isinstance(first, _Exclusive):
                _run_exclusive(first)
                continue
            batch, after = self._gather(first)  # type: ignore[arg-type]
            self._process(batch)
            if after is _STOP:
                break
            if after is not None:
                _run_exclusive(after)
        self._flush_latency()

    def _gather(self, first: PendingPayment) -> tuple[list[PendingPayment], object]:
        """The next group: ``first`` and what is queued, lingering up to ``GROUP_LINGER_S`` while
        the group is smaller than the last one. The clients the last commit answered are sending
        their next payments right now, and a commit costs about as much for 1 row as for 32: not
        waiting split 32 clients into groups of 31 and 1 (PostgreSQL's ``commit_delay`` idea).
        Returns (group, the stop request or exclusive job that ended it, else None)."""
        batch = [first]
        wanted = min(self._last_batch_size, self._max_batch)
        deadline = time.monotonic() + GROUP_LINGER_S
        while len(batch) < self._max_batch:
            remaining = deadline - time.monotonic() if len(batch) < wanted else 0.0
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is _STOP or isinstance(item, _Exclusive):
                return batch, item
            batch.append(item)  # type: ignore[arg-type]
        self._last_batch_size = len(batch)
        return batch, None

    def _flush_latency(self) -> None:
        if not self._pending_latency:
            return
        try:
            with self._store.write() as tx:
                tx.set_latencies(*self._latencies_to_write())
        except Exception:
            log.exception("could not write back latencies")
        self._pending_latency = {}

    def _latencies_to_write(self) -> tuple[list[uuid.UUID], list[float]]:
        """(ids, latencies) of every committed payment whose latency is not on disk yet."""
        return list(self._pending_latency), list(self._pending_latency.values())

    def _process(self, batch: list[PendingPayment]) -> None:
        self._last_group_at = time.monotonic()
        try:
            results = self._decide_and_commit(batch)
        except Exception as exc:
            log.exception("payment batch failed; reloading live history")
            self.features = FeatureState()
            try:
                self._load_history()
            except Exception:
                log.exception("could not reload live history")
            _settle(batch, [exc] * len(batch))
            return
        _settle(batch, results)

    def _decide_and_commit(self, batch: list[PendingPayment]) -> list[PaymentResult]:
        """Decide a group, commit it, count it in the live totals and build its answers."""
        decider = self._active_decider()
        policy = decider.policy
        now_us = self._last_us = max(time.time_ns() // 1000, self._last_us)
        now = _EPOCH + timedelta(microseconds=now_us)
        pence = _gbp_pence(batch)
        t_ms = now_us // 1000  # created_at as on disk
        history = self._observe(batch, t_ms, pence)
        keys = [(p.card.card_hash, p.request.device_id) for p in batch]
        pairs = self.features.pair_history(keys, t_ms)
        draws = self._rng.random(len(batch))
        challenge_draws = self._challenge_rng.random(len(batch))
        decided = _decide(
            batch, history, pairs, (draws, challenge_draws), pence, t_ms, decider,
            self._experiments(),
        )  # fmt: skip
        ids = [self._ids.next_id() for _ in batch]
        self._commit(batch, ids, now, decided.rows(batch, ids, now, history, pence, policy))
        self.features.approve(keys, decided.decisions.approved, t_ms)
        committed_ns = time.perf_counter_ns()
        latencies = [round((committed_ns - p.received_ns) / 1e6, 3) for p in batch]
        self.totals.add_decisions(decided.decisions.approved, decided.amount_cents)
        self.totals.add_latencies(np.asarray(latencies))
        self._pending_latency.update(zip(ids, latencies, strict=True))
        return decided.results(ids, latencies, now)

    def _observe(self, batch: list[PendingPayment], t_ms: int, pence: np.ndarray) -> HistoryCounts:
        """Each payment's history counts in arrival order, then the payment joins the history."""
        payments = [
            (p.card.card_hash, p.request.device_id, p.request.currency, gbp)
            for p, gbp in zip(batch, pence.tolist(), strict=True)
        ]
        return self.features.observe_group(payments, t_ms)

    def _commit(
        self, batch: list[PendingPayment], ids: list[uuid.UUID], now: datetime, rows: pa.Table
    ) -> None:
        """One commit: the group's rows, its idempotency keys, and the latencies of earlier
        groups once ``LATENCY_FLUSH_ROWS`` are pending (cleared only if the commit succeeds)."""
        write_back = len(self._pending_latency) >= LATENCY_FLUSH_ROWS
        keyed = [(p.idempotency, ids[i]) for i, p in enumerate(batch) if p.idempotency]
        latencies = self._latencies_to_write() if write_back else None
        self._store.append_live_group(rows, latencies, keyed, now)  # type: ignore[arg-type]
        if write_back:
            self._pending_latency = {}


@dataclass(frozen=True, slots=True)
class _DecidedGroup:
    """A group's features and decisions, before it has ids."""

    features: FeatureColumns
    amount_cents: np.ndarray
    draws: np.ndarray
    challenge_draws: np.ndarray
    decisions: Decisions
    world: dict[str, list[str | None]]
    policies: list[Policy]  # the policy that decided each payment (active, or routed challenger)
    shadow: tuple[Policy, Decisions] | None  # the shadow policy's decisions, never enforced

    def rows(
        self,
        batch: list[PendingPayment],
        ids: list[uuid.UUID],
        now: datetime,
        history: HistoryCounts,
        gbp_pence: np.ndarray,
        policy: Policy,
    ) -> pa.Table:
        """The group as ``transactions`` rows."""
        table = _transaction_rows(
            batch, ids, now, history, self.features, self.decisions, self.draws, policy
        )
        for name, column in attribute_columns(history, gbp_pence).items():
            table = table.append_column(name, column)
        mcc = [None if code is None else int(code) for code in self.world["merchant_category"]]
        table = table.append_column("merchant_category", pa.array(mcc, pa.int16()))
        for name in ("merchant_country", "card_country"):
            table = table.append_column(name, pa.array(self.world[name], pa.string()))
        ips = [p.request.ip_address for p in batch]
        table = table.append_column("ip_address", pa.array(ips, pa.string()))
        table = table.append_column("ip_country", pa.array(self.world["ip_country"], pa.string()))
        table = table.append_column("challenge_draw", pa.array(self.challenge_draws, pa.float64()))
        if any(p is not policy for p in self.policies):  # routed: the challenger decided some
            versions = pa.array([p.version for p in self.policies], pa.int32())
            table = table.set_column(_VERSION_COLUMN, "policy_version", versions)
        for name, column in _shadow_columns(self.shadow, len(batch)):
            table = table.append_column(name, column)
        return table

    def results(
        self, ids: list[uuid.UUID], latencies: list[float], now: datetime
    ) -> list[PaymentResult]:
        """The answers. ``model_construct``: every field is built here from checked values;
        skipping validation halves the per-payment cost of the answer on the hot path."""
        d, f = self.decisions, self.features
        answers = []
        for i in range(len(ids)):
            policy = self.policies[i]
            said = explain(policy, int(d.rule_index[i]), int(d.flag_rule[i]), int(d.reason[i]))
            answers.append(
                PaymentResult.model_construct(
                    transaction_id=ids[i],
                    status="Approved" if d.approved[i] else "Declined",
                    decision_reason=said.decision_reason,
                    reason_code=str(REASON_NAMES[d.reason[i]]),
                    score=round(float(d.score[i]), 4),
                    latency_ms=latencies[i],
                    features=Features.model_construct(
                        spending_velocity=float(f.spending_velocity[i]),
                        device_trust_score=float(f.device_trust_score[i]),
                        ip_risk_score=float(f.ip_risk_score[i]),
                    ),
                    policy_version=policy.version,
                    risk_flag=said.risk_flag,
                    flagged_by_risk_rule=said.risk_flag is not None,
                    action=said.action,
                    rule=said.rule,
                    review=said.review,
                    challenge=said.challenge,
                    created_at=now,
                )
            )
        return answers


def _decide(
    batch: list[PendingPayment],
    history: HistoryCounts,
    pairs: PairHistory,
    draws: tuple[np.ndarray, np.ndarray],
    gbp_pence: np.ndarray,
    t_ms: int,
    decider: Decider,
    experiments: LiveExperiments,
) -> _DecidedGroup:
    """Features and the one vectorized decision for a group (``draws``: its uniform draws and
    its challenge draws): by the active policy, or by the challenger for the cards a route
    sends to it, and by the shadow policy too (same attributes, same draws)."""
    draws, challenge_draws = draws
    n = len(batch)
    world = _world_values(batch)
    has_device = np.array([p.request.device_id is not None for p in batch])
    channel = np.array([p.request.channel for p in batch])
    features = normalize(history, has_device, channel, pairs)
    amount_cents = np.array([int(p.request.amount * 100) for p in batch], dtype=np.int64)
    score = risk_score(
        amount_cents,
        features.spending_velocity,
        features.device_trust_score,
        features.ip_risk_score,
        decider.policy.score_weights,
    )
    facts = BatchFacts(
        amount_cents=amount_cents,
        gbp_pence=gbp_pence,
        has_device=has_device,
        card_bin=np.array([int(p.card.bin) for p in batch], dtype=np.int64),
        counts=history,
        features=features,
        score=score,
        t_ms=np.full(n, t_ms, dtype=np.int64),
        draw=draws,
        text={
            "currency": lambda: np.array([p.request.currency for p in batch], dtype=object),
            "merchant": lambda: np.array([p.request.merchant for p in batch], dtype=object),
            "channel": lambda: channel.astype(object),
            "device_id": lambda: np.array([p.request.device_id for p in batch], dtype=object),
            "card": lambda: np.array([p.card.digest for p in batch], dtype="S16"),
            **{name: (lambda v=v: np.array(v, dtype=object)) for name, v in world.items()},
        },
    )
    values, missing = rule_inputs(facts, decider.attributes)
    challenge = ChallengeInputs(challenge_draws, channel == "ecommerce")  # live: no ground truth
    decisions = decider.decide(score, values, missing, challenge)
    policies = [decider.policy] * n
    if (route := experiments.route) is not None:
        to_challenger = routed([p.card.digest for p in batch], route.share)  # type: ignore[arg-type]
        if to_challenger.any():
            by_challenger = _decided_by(route.decider, facts, challenge)
            decisions = _merged(decisions, by_challenger, to_challenger)
            policies = [route.policy if c else decider.policy for c in to_challenger.tolist()]
    shadow = experiments.shadow
    shadowed = (
        None if shadow is None else (shadow.policy, _decided_by(shadow.decider, facts, challenge))
    )
    return _DecidedGroup(
        features, amount_cents, draws, challenge_draws, decisions, world, policies, shadowed
    )


def _decided_by(decider: Decider, facts: BatchFacts, challenge: ChallengeInputs) -> Decisions:
    """``decider``'s decisions of a group already described by ``facts`` (scored with its own
    weights): how a shadow or a challenger decides the same payments with the same draws."""
    f = facts.features
    score = risk_score(
        facts.amount_cents,
        f.spending_velocity,
        f.device_trust_score,
        f.ip_risk_score,
        decider.policy.score_weights,
    )
    values, missing = rule_inputs(replace(facts, score=score), decider.attributes)
    return decider.decide(score, values, missing, challenge)


def _merged(active: Decisions, challenger: Decisions, challenged: np.ndarray) -> Decisions:
    """The challenger's decisions where ``challenged``, else the active policy's."""
    return Decisions(
        *(
            np.where(challenged, getattr(challenger, f.name), getattr(active, f.name))
            for f in fields(Decisions)
        )
    )


def _shadow_columns(shadow: tuple[Policy, Decisions] | None, n: int) -> list[tuple[str, pa.Array]]:
    """The ``shadow_*`` columns of a group (NULL when nothing shadowed it)."""
    if shadow is None:
        return [(name, pa.nulls(n, kind)) for name, kind in _SHADOW_SCHEMA]
    policy, d = shadow
    values = (np.full(n, policy.version, np.int32), d.action, d.rule_index, d.flag_rule, d.score)
    return [
        (name, pa.array(v, kind)) for (name, kind), v in zip(_SHADOW_SCHEMA, values, strict=True)
    ]


def _ip_country(ip_address: str | None) -> str | None:
    return None if ip_address is None else country_of(ip_address)


def _world_values(batch: list[PendingPayment]) -> dict[str, list[str | None]]:
    """The group's world attributes: what the requests sent, the card's issuing country from
    its BIN and the IP address's country (None where unknown)."""
    requests = [p.request for p in batch]
    return {
        "merchant_category": [r.merchant_category for r in requests],
        "merchant_country": [r.merchant_country for r in requests],
        "card_country": [bin_country(p.card.bin) for p in batch],
        "ip_country": [_ip_country(r.ip_address) for r in requests],
    }


def _gbp_pence(batch: list[PendingPayment]) -> np.ndarray:
    """Each payment's amount in GBP pence (:data:`~engine.features.NO_GBP` without a rate)."""
    pence = [pence_in_gbp(int(p.request.amount * 100), p.request.currency) for p in batch]
    return np.array([NO_GBP if value is None else value for value in pence], dtype=np.int64)


def _run_exclusive(item: _Exclusive) -> None:
    try:
        item.job()
    except BaseException as exc:
        item.done.set_exception(exc)
    else:
        item.done.set_result(None)


def _settle(batch: list[PendingPayment], outcomes: list[PaymentResult | BaseException]) -> None:
    """Resolve each payment's future with its result or error: asyncio futures first, with one
    ``call_soon_threadsafe`` per event loop, then thread futures. A future its caller cancelled
    (the client went away) is skipped: the payment is committed all the same."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, object]]] = {}
    for pending, outcome in zip(batch, outcomes, strict=True):
        if isinstance(pending.future, asyncio.Future):
            by_loop.setdefault(pending.future.get_loop(), []).append((pending.future, outcome))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle_on_loop, settled)
    for pending, outcome in zip(batch, outcomes, strict=True):
        if not isinstance(pending.future, asyncio.Future):
            _settle_one(pending.future, outcome)  # type: ignore[arg-type]


def _settle_one(future: Future[PaymentResult] | asyncio.Future, outcome: object) -> None:
    if future.done():
        return
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except (InvalidStateError, asyncio.InvalidStateError):  # cancelled meanwhile
        pass


def _settle_on_loop(settled: list[tuple[asyncio.Future, object]]) -> None:
    for future, outcome in settled:
        _settle_one(future, outcome)


def _transaction_rows(
    batch: list[PendingPayment],
    ids: list[uuid.UUID],
    now: datetime,
    history: HistoryCounts,
    features: FeatureColumns,
    decisions: Decisions,
    draws: np.ndarray,
    policy: Policy,
) -> pa.Table:
    """The group's ``transactions`` columns before the history attributes. Built for a small
    group's speed: fixed-width columns from joined bytes, text straight from lists, and the
    schema given, so Arrow infers nothing."""
    n = len(batch)
    requests = [p.request for p in batch]
    cards = [p.card for p in batch]
    now_us = (now - _EPOCH) // _ONE_US
    columns = [
        _fixed_binary(b"".join([i.bytes for i in ids]), n),
        pa.Array.from_buffers(_TIMESTAMP, n, [None, pa.py_buffer(np.full(n, now_us, np.int64))]),
        _fixed_binary(b"".join([c.digest for c in cards]), n),
        pa.array([int(c.bin) for c in cards], pa.int32()),
        pa.array([int(c.last4) for c in cards], pa.int16()),
        pa.array([c.length for c in cards], pa.int8()),
        pa.array([r.amount for r in requests], pa.decimal128(18, 2)),
        pa.array([r.currency for r in requests], pa.string()),
        pa.array([r.merchant for r in requests], pa.string()),
        pa.array([r.channel for r in requests], pa.string()),
        pa.array([r.device_id for r in requests], pa.string()),
        pa.array([_STATUS_TEXT[a] for a in decisions.approved.tolist()], pa.string()),
        pa.array([_REASON_TEXT[r] for r in decisions.reason.tolist()], pa.string()),
        pa.array(decisions.risk_flag, pa.bool_()),
        pa.array(decisions.rule_index, pa.int16()),
        pa.array([_ACTION_TEXT[a] for a in decisions.action.tolist()], pa.string()),
        pa.array(decisions.flag_rule, pa.int16()),
        pa.array(decisions.score, pa.float64()),
        pa.array(features.spending_velocity, pa.float64()),
        pa.array(features.device_trust_score, pa.float64()),
        pa.array(features.ip_risk_score, pa.float64()),
        pa.array(history.velocity_count.astype(np.int32), pa.int32()),
        pa.array(history.device_seen_count.astype(np.int32), pa.int32()),
        pa.array(history.device_other_cards.astype(np.int32), pa.int32()),
        pa.array(draws, pa.float64()),
        pa.array(np.full(n, policy.version, dtype=np.int32), pa.int32()),
    ]
    return pa.Table.from_arrays(columns, schema=_ROW_SCHEMA)


_ONE_US = timedelta(microseconds=1)
_TIMESTAMP = pa.timestamp("us")
_STATUS_TEXT = ("Declined", "Approved")  # indexed by approved (False/True)
_REASON_TEXT: tuple[str, ...] = tuple(REASON_NAMES.tolist())  # indexed by reason code
_ACTION_TEXT: tuple[str, ...] = tuple(ACTION_LABELS.tolist())  # indexed by action code
_ROW_SCHEMA = pa.schema(
    [
        ("id", pa.binary(16)),
        ("created_at", _TIMESTAMP),
        ("card_hash", pa.binary(16)),
        ("card_bin", pa.int32()),
        ("card_last4", pa.int16()),
        ("card_length", pa.int8()),
        ("amount", pa.decimal128(18, 2)),
        ("currency", pa.string()),
        ("merchant", pa.string()),
        ("channel", pa.string()),
        ("device_id", pa.string()),
        ("status", pa.string()),
        ("reason_code", pa.string()),
        ("risk_flag", pa.bool_()),
        ("rule_index", pa.int16()),
        ("action", pa.string()),
        ("flag_rule", pa.int16()),
        ("score", pa.float64()),
        ("spending_velocity", pa.float64()),
        ("device_trust_score", pa.float64()),
        ("ip_risk_score", pa.float64()),
        ("velocity_count", pa.int32()),
        ("device_seen_count", pa.int32()),
        ("device_other_cards", pa.int32()),
        ("draw", pa.float64()),
        ("policy_version", pa.int32()),
    ]
)


_VERSION_COLUMN = _ROW_SCHEMA.get_field_index("policy_version")
_SHADOW_SCHEMA = (
    ("shadow_version", pa.int32()),
    ("shadow_action", pa.int8()),
    ("shadow_rule_index", pa.int16()),
    ("shadow_flag_rule", pa.int16()),
    ("shadow_score", pa.float64()),
)


def _fixed_binary(joined: bytes, n: int) -> pa.Array:
    """``n`` values of 16 bytes each from their concatenation, without a copy per value."""
    return pa.Array.from_buffers(pa.binary(16), n, [None, pa.py_buffer(joined)])
