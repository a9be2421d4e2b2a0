"""The engine facade: the one object every front-end (API, dashboard, CLI, notebooks) uses."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np

from engine import analytics
from engine.analytics import Dashboard, FilterOptions
from engine.backtest import BacktestResult, run_backtest
from engine.cards import fingerprint, load_or_create_key, mask
from engine.config import Settings, get_settings
from engine.decision import REASON_TEXT, Reason
from engine.errors import NotFoundError
from engine.filters import RowFilter
from engine.idempotency import KEY_RETENTION, IdempotencyGuard, request_hash
from engine.ids import IdAllocator, parse_id
from engine.live import LiveWriter, PendingPayment
from engine.models import (
    AuditEntry,
    Features,
    PaymentRequest,
    PaymentResult,
    Stats,
    StoredTransaction,
)
from engine.policy import DEFAULT_POLICY, Policy
from engine.simulation.facade import SimulationMixin
from engine.store import Store, utc_now

log = logging.getLogger("ptsim.engine")


class Engine(SimulationMixin):
    """Scores, decides and persists payments; answers stats, lookups and audit trails.

    Create one per process (it owns the database file) and :meth:`close` it on shutdown.
    Thread-safe: any thread may call any method.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.store = Store(self.settings.db_path, self.settings.memory_limit)
        key_file = (
            None
            if self.settings.db_path is None
            else self.settings.db_path.with_name(self.settings.db_path.name + ".cardkey")
        )
        configured = self.settings.card_key.get_secret_value() if self.settings.card_key else None
        try:
            self._card_key = load_or_create_key(
                key_file, configured, holds_fingerprints=key_file is not None and self._has_rows()
            )
        except BaseException:
            self.store.close()  # a refused key must not leave the file open in this process
            raise
        self.ids = IdAllocator()
        self._policy_lock = threading.Lock()
        self._policy = self._load_or_create_policy()
        self._init_simulations()
        for problem in self.store.problems:
            print(f"WARNING: {problem}", flush=True)
        self._backups = _PeriodicBackup(self.store, self.settings.backup_interval_s)
        self._idempotency = IdempotencyGuard(self.store, self._replay)
        self.store.purge_idempotency_keys(utc_now() - KEY_RETENTION)
        self._live = LiveWriter(
            self.store,
            np.random.default_rng(self.settings.seed),
            self.ids,
            self.active_policy,
            self.settings.max_batch,
        )

    def _has_rows(self) -> bool:
        """Whether any transaction (live or simulated, each with a card fingerprint) is stored."""
        return bool(self.store.query("SELECT EXISTS (SELECT 1 FROM transactions)")[0][0])

    @classmethod
    def open(cls, db: str | Path = ":memory:", **settings: Any) -> Engine:
        """Convenience for notebooks and tests: an engine on ``db`` with settings overrides."""
        return cls(get_settings(db=str(db), **settings))

    def close(self) -> None:
        """Stop simulation runs, drain queued payments, checkpoint and close the database."""
        self._stop_simulations()
        self._backups.stop()
        self._live.stop()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- payments ------------------------------------------------------------------------------

    def submit(self, request: PaymentRequest) -> Future[PaymentResult]:
        """Queue a validated payment; the future resolves after its decision is committed."""
        return self._live.submit(self._pending(request))

    def submit_async(self, request: PaymentRequest) -> asyncio.Future[PaymentResult]:
        """:meth:`submit` for callers on a running asyncio event loop: await the result."""
        return self._live.submit_async(self._pending(request))

    def submit_idempotent(
        self, request: PaymentRequest, key: str
    ) -> tuple[Future[PaymentResult], bool]:
        """Like :meth:`submit`, under an Idempotency-Key: returns (future, replayed).

        Raises :class:`IdempotencyConflictError` when the key was used for another request.
        """
        pending = self._pending(request)
        digest = request_hash(request, pending.card)
        pending.idempotency = (key, digest)
        return self._idempotency.run(key, digest, lambda: self._live.submit(pending))

    def _pending(self, request: PaymentRequest) -> PendingPayment:
        """The request as the writer takes it: received now, its card reduced to a fingerprint."""
        received_ns = time.perf_counter_ns()
        return PendingPayment(
            request, fingerprint(request.card_number, self._card_key), received_ns
        )

    def _replay(self, transaction_id: uuid.UUID) -> PaymentResult:
        stored = self.get_transaction(transaction_id)
        fields = stored.model_dump(include=set(PaymentResult.model_fields) - {"latency_ms"})
        return PaymentResult(
            transaction_id=stored.id, latency_ms=stored.latency_ms or 0.0, **fields
        )

    def authorize(self, request: PaymentRequest | dict[str, Any]) -> PaymentResult:
        """Decide one payment and wait until it is on disk (validates dicts first)."""
        if not isinstance(request, PaymentRequest):
            request = PaymentRequest.model_validate(request)
        return self.submit(request).result()

    # -- lookups -------------------------------------------------------------------------------

    def get_transaction(self, transaction_id: str | uuid.UUID) -> StoredTransaction:
        """One stored transaction, card masked. Raises :class:`NotFoundError`."""
        row = self._row(transaction_id)
        return _stored_transaction(row)

    def get_audit(self, transaction_id: str | uuid.UUID) -> list[AuditEntry]:
        """The audit trail of a transaction, oldest first. Raises :class:`NotFoundError`.

        The decision entry (``payment.decided`` live, ``simulation.decided`` in a run) is read
        from the transaction row itself, which was written once, in the transaction that
        committed the decision, and holds every fact of it: masked request, decision, draw,
        features, policy version, latency. Other events about the transaction stored in
        ``audit_log`` follow it.
        """
        parsed = _as_uuid(transaction_id)
        try:
            row = self._row(parsed)
        except NotFoundError:
            raise NotFoundError(f"No audit trail for transaction {transaction_id}.") from None
        stored = _stored_transaction(row)
        live = row["run_id"] is None
        decision = AuditEntry(
            event="payment.decided" if live else "simulation.decided",
            created_at=row["created_at"],
            policy_version=row["policy_version"],
            request={
                "card": stored.card_masked,
                "amount": f"{row['amount']:.2f}",
                "currency": row["currency"],
                "merchant": row["merchant"],
                "channel": row["channel"],
                "device_id": row["device_id"],
            },
            decision={
                "status": row["status"],
                "reason_code": row["reason_code"],
                "decision_reason": stored.decision_reason,
                "score": row["score"],
                "risk_flag": row["risk_flag"],
                "draw": row["draw"],
            },
            features=stored.features.model_dump(),
            latency_ms=row["latency_ms"],
            source="live" if live else f"simulation run {row['run_id']}",
        )
        others = [  # files written before v0.1's derived entries also stored the decision
            AuditEntry(**entry, latency_ms=row["latency_ms"], source=decision.source)
            for entry in self.store.fetch_audit(parsed)
            if entry["event"] != "payment.decided"
        ]
        return [decision, *others]

    def _row(self, transaction_id: str | uuid.UUID) -> dict[str, Any]:
        row = self.store.fetch_transaction(_as_uuid(transaction_id))
        if row is None:
            raise NotFoundError(f"Transaction {transaction_id} not found.")
        if row["latency_ms"] is None and row["run_id"] is None:
            row["latency_ms"] = self._live.pending_latency(row["id"])
        return row

    def latest_transaction_id(self) -> uuid.UUID | None:
        """The most recent transaction's id (ids grow with insertion), or None."""
        rows = self.store.query("SELECT max(id) FROM transactions")
        return rows[0][0] if rows else None

    # -- stats ---------------------------------------------------------------------------------

    def stats(self) -> Stats:
        """Totals, approval rate, average ticket and latency percentiles (one snapshot).

        Read from running totals kept in the same transactions as the rows, so the cost does not
        grow with the table; percentiles come from a 4-significant-digit latency histogram.
        """
        snap = self.store.rollup_snapshot(self._live.totals.snapshot())
        total = snap["total"]
        avg = (
            (snap["amount_sum"] / total).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
            if total
            else Decimal("0.00")
        )
        return Stats(
            total=total,
            approved=snap["approved"],
            declined=snap["declined"],
            approval_rate=round(snap["approved"] / total, 4) if total else 0.0,
            avg_amount=avg,
            p50_latency=snap["p50"],
            p95_latency=snap["p95"],
            p99_latency=snap["p99"],
        )

    def reset(self) -> Stats:
        """Delete every transaction, audit entry and run in one transaction; return the stats.

        Background simulation runs are cancelled first (each stops after its current chunk), so
        none keeps writing rows for a run record the reset deleted."""
        self._stop_simulations()
        with self.store.write_lock:
            self.store.reset()
            self._live.reset_state()
        log.warning("all transactions, audit entries and runs were deleted")
        return self.stats()

    def health(self) -> dict[str, Any]:
        """Whether the database answers, what start-up found damaged or lost (``storage``),
        plus where it is. ``degraded`` while any storage problem stands."""
        try:
            self.store.query("SELECT 1")
            reachable = True
        except Exception:
            reachable = False
        recovery = self.store.recovery
        problems = list(self.store.problems)
        if self.store.integrity_error:
            problems.append(
                f"A block of the database file failed its checksum ({self.store.integrity_error})"
                "; stop the server and restore a backup with `ptsim restore`."
            )
        return {
            "status": "ok" if reachable and not problems else "degraded",
            "database": "reachable" if reachable else "unreachable",
            "storage": problems,
            "recovered_from_backup": recovery.message() if recovery else None,
            "db_path": str(self.store.path) if self.store.path else ":memory:",
            "policy_version": self.active_policy().version,
        }

    # -- policy --------------------------------------------------------------------------------

    def active_policy(self) -> Policy:
        """The policy new decisions use."""
        return self._policy

    def activate_policy(self, candidate: Policy, note: str = "activated") -> Policy:
        """Store ``candidate`` as a new version (with an audit entry) and make it active."""
        with self.store.write_lock, self._policy_lock:
            version = self.store.insert_policy(candidate.knobs(), note)
            self._policy = Policy(**candidate.knobs(), version=version)
        log.info("policy version %s is active (%s)", version, note)
        return self._policy

    def reset_policy(self) -> Policy:
        """Make the original heuristic active again (as a new version)."""
        return self.activate_policy(DEFAULT_POLICY, note="reset to default")

    def policy_history(self) -> list[dict[str, Any]]:
        """Every stored policy version, newest first."""
        return self.store.list_policies()

    # -- backtests and dashboard reads -----------------------------------------------------------

    def backtest(
        self, candidate: Policy, filters: RowFilter | None = None, **filter_fields: Any
    ) -> BacktestResult:
        """Re-decide stored rows under ``candidate`` and the active policy with the stored draws
        (common random numbers) and compare them. Select rows with ``filters`` or its fields
        (``run="live" | "all" | <run id>``, ``since``, ``until``, ``channels``, ``currencies``).
        """
        chosen = filters if filters is not None else RowFilter(**filter_fields)
        return run_backtest(self.store, candidate, self.active_policy(), chosen)

    def dashboard(self, filters: RowFilter | None = None, **filter_fields: Any) -> Dashboard:
        """KPIs, approval rate and latency over time, decline reasons and the amount
        distribution of the selected rows, aggregated in the database from one snapshot."""
        chosen = filters if filters is not None else RowFilter(**filter_fields)
        return analytics.dashboard(self.store, chosen)

    def filter_options(self) -> FilterOptions:
        """The channels, currencies, runs and time span present in the data (for filter UIs)."""
        return analytics.filter_options(self.store)

    def _load_or_create_policy(self) -> Policy:
        latest = self.store.latest_policy_row()
        if latest is None:
            version = self.store.insert_policy(DEFAULT_POLICY.knobs(), "default policy")
            return Policy(**DEFAULT_POLICY.knobs(), version=version)
        version, knobs = latest
        return Policy(**json.loads(knobs), version=version)


class _PeriodicBackup:
    """Takes an online backup every ``interval_s`` seconds (0 = never; never in memory)."""

    def __init__(self, store: Store, interval_s: float) -> None:
        self._store = store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval_s > 0 and store.path is not None:
            self._thread = threading.Thread(
                target=self._run, args=(interval_s,), name="ptsim-backup", daemon=True
            )
            self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self._store.backup()
            except Exception:
                log.exception("periodic backup failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


def _as_uuid(transaction_id: str | uuid.UUID) -> uuid.UUID:
    if isinstance(transaction_id, uuid.UUID):
        return transaction_id
    parsed = parse_id(transaction_id)
    if parsed is None:
        raise NotFoundError(f"Transaction {transaction_id[:64]!r} not found.")
    return parsed


_COPIED_COLUMNS = (  # StoredTransaction fields stored under the same name
    "id", "card_last4", "amount", "currency", "merchant", "channel", "device_id", "status",
    "risk_flag", "created_at", "reason_code", "draw", "policy_version", "latency_ms", "run_id",
    "is_fraud", "fraud_scenario",
)  # fmt: skip


def _stored_transaction(row: dict[str, Any]) -> StoredTransaction:
    return StoredTransaction(
        **{name: row[name] for name in _COPIED_COLUMNS},
        card_masked=mask(row["card_bin"], row["card_last4"], row["card_length"]),
        decision_reason=REASON_TEXT[Reason[row["reason_code"]]],
        score=round(row["score"], 4),
        features=Features(**{name: row[name] for name in Features.model_fields}),
    )
