"""The engine facade: the one object every front-end (API, dashboard, CLI, notebooks) uses."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pydantic import ValidationError

from engine import analytics
from engine.analytics import Dashboard, FilterOptions
from engine.backtest import BacktestResult, Grouped, run_backtest
from engine.cards import fingerprint, load_or_create_key, mask
from engine.challenge import ChallengeModel
from engine.compare import (
    DEFAULT_REPLICATES,
    Comparison,
    label_maturity,
    run_comparison,
    run_shadow_comparison,
)
from engine.config import Settings, get_settings
from engine.costs import CostModel
from engine.decision import REASON_TEXT, Decider, Reason, explain
from engine.disputes import DisputeReport, Recorded, record_dispute
from engine.errors import InvalidRequestError, NotFoundError, StoreError, UsageError
from engine.experiments import Experiment, Experiments, ShadowReport
from engine.files import written_aside
from engine.filters import RowFilter, RunSelector
from engine.idempotency import KEY_RETENTION, IdempotencyGuard, request_hash
from engine.ids import IdAllocator, parse_id
from engine.lake.catalog import LakeCatalog
from engine.lake.export import StitchedFile
from engine.lake.export import plan as plan_stitched
from engine.lake.layout import LAKE_RUN_BASE, Lake
from engine.lake.manifest import PARTITION_TARGET_ROWS
from engine.lake.sharded import ShardRunner
from engine.lake.writer import generate_into_lake
from engine.lists import Lists, PutOutcome
from engine.live import LiveWriter, PendingPayment
from engine.models import (
    AuditDecision,
    AuditEntry,
    AuditRequest,
    Features,
    LatencySummary,
    PaymentRequest,
    PaymentResult,
    ShadowDecision,
    Stats,
    StatsSelection,
    StoredTransaction,
    TransactionAttributes,
)
from engine.policies import Policies
from engine.policy import DEFAULT_POLICY, Policy, ScoreWeights
from engine.rules import ACTION_NAMES
from engine.simulation.facade import Simulations, content_hash
from engine.simulation.pacing import RunPacer
from engine.simulation.params import RunRecord, SimulationParams
from engine.simulation.runner import Progress
from engine.stats import Percentiles, selection_totals
from engine.store import Store, utc_now
from engine.throttle import admin_failure_buckets
from engine.transaction_row import COLUMNS, NAMES
from engine.validation import describe_first, quoted_field

T = TypeVar("T")
log = logging.getLogger("ptsim.engine")


class Engine:
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
        self.lists = Lists(self.store, self._card_key)  # named lists for rules (@name)
        self.ids = IdAllocator()
        self.admin_failures = admin_failure_buckets(self.settings.admin_failure_limit)
        """Wrong admin tokens per client, shared by the API and the dashboard."""
        self.policies = Policies(self.store, self.lists)
        self._policy_lock = threading.Lock()
        self._decider = self._load_or_create_decider()
        self.experiments = Experiments(
            self.store, lambda version: self.policies.decider(self.policies.get(version))
        )
        """The shadow and route in force (restored from the store)."""
        self.lake = self._attach_lake()
        """The attached Parquet lake (``PTSIM_LAKE``), or None: its finished runs are sources."""
        self._cluster: Any = None  # engine.lake.cluster.ClusterReads once attach_cluster is called
        self._owned_client: Any = None  # the client of PTSIM_DASK_SCHEDULER, once connected
        self.simulations = Simulations(
            self.store,
            self.ids,
            self._card_key,
            self.active_decider,
            self.settings.max_concurrent_simulations,
            RunPacer(lambda: self._live.recently_active(), self.settings.run_pacing),
        )
        for problem in self.store.problems:
            print(f"WARNING: {problem}", flush=True)
        self._backups = _PeriodicBackup(self.store, self.settings.backup_interval_s)
        self._idempotency = IdempotencyGuard(self.store, self._replay)
        self.store.purge_idempotency_keys(utc_now() - KEY_RETENTION)
        self._live = LiveWriter(
            self.store,
            np.random.default_rng(self.settings.seed),
            self.ids,
            self.active_decider,
            self.settings.max_batch,
            lambda: self.experiments.live,
        )

    def _attach_lake(self) -> LakeCatalog | None:
        if self.settings.lake is None:
            return None
        try:
            return LakeCatalog(Lake(self.settings.lake), self.store)
        except BaseException:
            self.store.close()
            raise

    def _reading(self, run: RunSelector) -> contextlib.AbstractContextManager[None]:
        """Reads of ``run``'s rows: from the lake for a lake run, else from the file."""
        if self.lake is None:
            return contextlib.nullcontext()
        return self.lake.reading(run)

    def _has_rows(self) -> bool:
        """Whether any transaction (live or simulated, each with a card fingerprint) is stored."""
        return bool(self.store.query("SELECT EXISTS (SELECT 1 FROM transactions)")[0][0])

    @classmethod
    def open(cls, db: str | Path = ":memory:", **settings: Any) -> Engine:
        """Convenience for notebooks and tests: an engine on ``db`` with settings overrides."""
        return cls(get_settings(db=str(db), **settings))

    def close(self) -> None:
        """Stop simulation runs, drain queued payments, checkpoint and close the database."""
        self.simulations.stop_all()
        self._backups.stop()
        self._live.stop()
        if self._owned_client is not None:
            self._owned_client.close()
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

    # -- simulation runs (delegated to :class:`~engine.simulation.facade.Simulations`) ---------

    def simulate(
        self, params: SimulationParams | dict, progress: Progress | None = None
    ) -> RunRecord:
        """Generate a run synchronously and return its record (see :meth:`Simulations.simulate`)."""
        return self.simulations.simulate(params, progress)

    def start_simulation(self, params: SimulationParams | dict) -> int:
        """Start a run in a background thread and return its id at once."""
        return self.simulations.start_simulation(params)

    def start_simulation_idempotent(
        self, params: SimulationParams | dict, key: str
    ) -> tuple[int, bool]:
        """:meth:`start_simulation` under an Idempotency-Key: (run id, replayed?)."""
        return self.simulations.start_simulation_idempotent(params, key)

    def cancel_simulation(self, run_id: int) -> bool:
        """Ask a background run to stop; False when it is not running in this process."""
        return self.simulations.cancel_simulation(run_id)

    def simulate_into_lake(
        self,
        lake: str | Path,
        params: SimulationParams | dict,
        progress: Progress | None = None,
        partition_rows: int = PARTITION_TARGET_ROWS,
        runner: ShardRunner | None = None,
        shard_rows: int | None = None,
    ) -> RunRecord:
        """Generate a run into the Parquet lake at ``lake`` (a directory or an fsspec URL) with
        the active policy and this engine's card key; its rows equal those :meth:`simulate`
        writes for the same parameters. Ctrl-C or an exception from ``progress`` (called after
        each committed partition) stops it: the manifest records it interrupted (or failed)
        with its committed rows, and the exception propagates (:mod:`engine.lake.writer`).
        ``runner`` runs the shards elsewhere (a Dask cluster: :mod:`engine.lake.cluster`);
        ``shard_rows`` (tests) is the most rows per shard."""
        if not isinstance(params, SimulationParams):
            params = SimulationParams.model_validate(params)
        manifest = generate_into_lake(
            Lake(lake), params, self._card_key, self.active_decider(), progress,
            partition_target=partition_rows, runner=runner, shard_rows=shard_rows,
        )  # fmt: skip
        return manifest.record()

    def attach_cluster(self, client: Any | None) -> None:
        """Run backtests and comparisons over the attached lake's runs on a Dask cluster
        (``client``: a ``distributed.Client``; None: in this process again). Its workers must
        reach the lake's files at the same paths (a shared volume)."""
        from engine.lake.cluster import ClusterReads

        if client is not None and self.lake is None:
            raise UsageError("A cluster reads lake runs: attach a lake first (PTSIM_LAKE).")
        self._cluster = None if client is None else ClusterReads(client, self.lake, self.store)

    def _grouped(self, run: object) -> Grouped | None:
        """Where a read of ``run`` aggregates: on the cluster for a finished lake run when one
        is attached, else in the store (None)."""
        manifest = None if self.lake is None else self.lake.find(run)
        if manifest is None or not manifest.readable:
            return None
        if self._cluster is None and self.settings.dask_scheduler:
            from distributed import Client  # connected once, at the first read of a lake run

            self.attach_cluster(Client(self.settings.dask_scheduler, timeout="10s"))
            self._owned_client = self._cluster.client  # closed with the engine
        return None if self._cluster is None else self._cluster.grouped(run)  # type: ignore[arg-type]

    def _scored_with(self, run: object) -> ScoreWeights | None:
        """The weights that scored every row of ``run`` when it was decided (one policy
        version decides a whole run: the lake's manifest carries its definition), or None
        for a selection of live traffic, whose rows several versions may have decided."""
        if not isinstance(run, int) or isinstance(run, bool):
            return None
        manifest = None if self.lake is None else self.lake.find(run)
        if manifest is not None:
            return ScoreWeights.model_validate(manifest.policy["score_weights"])
        return self.policies.get(self.simulations.get_run(run).policy_version).score_weights

    def get_run(self, run_id: int) -> RunRecord:
        """A run's record (the database's, or the attached lake's). Raises
        :class:`NotFoundError`."""
        if self.lake is not None and run_id > LAKE_RUN_BASE:
            return self.lake.manifest(run_id).record()
        return self.simulations.get_run(run_id)

    def list_runs(self) -> list[RunRecord]:
        """Every run, the database's and the attached lake's, newest first."""
        runs = self.simulations.list_runs()
        if self.lake is not None:
            runs = sorted([*runs, *self.lake.records()], key=lambda r: r.created_at, reverse=True)
        return runs

    def run_content_hash(self, run_id: int) -> str:
        """SHA-256 over a run's deterministic columns in event order (id and run_id excluded);
        a lake run's equals the database's run of the same seed and parameters."""
        if self.lake is not None and run_id > LAKE_RUN_BASE:
            self._require_run(run_id, "run_id")
            with self.lake.reading(run_id):
                return content_hash(self.store, run_id)
        return self.simulations.run_content_hash(run_id)

    def export_run(self, run: RunSelector, target: str | Path) -> int:
        """Write run ``run`` (a database or lake run id, or ``"live"`` for live traffic) to the
        Parquet file ``target``: every stored column in event order (``id`` order), the amount
        also in integer minor units (``amount_minor``), cards only as fingerprint, BIN and last
        four, with the Arrow types of :data:`engine.lake.export.EXPORT_SCHEMA`; the rows
        written. Reads one snapshot, so it runs while payments and runs are being written. The
        file is written aside and renamed into place: ``target`` never holds part of an export.

        A lake run's file is stitched from its partition files' row groups, unchanged, under
        one new footer (:mod:`engine.lake.export`: the speed of a file copy); a database run,
        live traffic, and a lake written before the lake stored the export's types go through
        DuckDB's Parquet writer. Both hold the same columns, types and values (tested).
        Raises :class:`InvalidRequestError` (naming ``run``) for an unknown run or a lake run
        still being written."""
        stitched = self.stitched_export(run)
        if stitched is not None:
            return self._lake_io(written_aside, Path(target), stitched.write)
        where, params = RowFilter(run=run).where()
        sql = f"SELECT {EXPORT_COLUMNS} FROM transactions {where}"
        with self._reading(run):
            return written_aside(
                Path(target), lambda aside: self.store.copy_to_parquet(sql, params, aside)
            )

    def stitched_export(self, run: RunSelector) -> StitchedFile | None:
        """Check ``run`` as :meth:`export_run` does; for a lake run whose files the stitcher
        recognizes, its export planned from them (stream :meth:`StitchedFile.blocks`), else
        None (export it with :meth:`export_run`)."""
        if run != "live":
            self._require_run(run, "run")
        manifest = None if self.lake is None else self.lake.find(run)
        if manifest is None:
            return None
        return self._lake_io(plan_stitched, self.lake.lake, manifest)

    @staticmethod
    def _lake_io(work: Callable[..., T], *args: Any) -> T:
        """``work(*args)``, a lake file that cannot be read said in one sentence."""
        try:
            return work(*args)
        except OSError as exc:
            raise StoreError(
                f"A file of the lake could not be read or written ({exc}); check the lake's "
                "directory and its free space, then retry."
            ) from exc

    # -- lookups -------------------------------------------------------------------------------

    def get_transaction(self, transaction_id: str | uuid.UUID) -> StoredTransaction:
        """One stored transaction, card masked. Raises :class:`NotFoundError`."""
        row = self._row(transaction_id)
        return _stored_transaction(row, self.policies.get(row["policy_version"]))

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
        stored = _stored_transaction(row, self.policies.get(row["policy_version"]))
        live = row["run_id"] is None
        decision = AuditEntry(
            transaction_id=stored.id,
            event="payment.decided" if live else "simulation.decided",
            created_at=row["created_at"],
            policy_version=row["policy_version"],
            request=AuditRequest(
                card=stored.card_masked,
                **stored.model_dump(include=set(AuditRequest.model_fields) - {"card"}),
            ),
            decision=AuditDecision(
                **stored.model_dump(include=_AUDITED_DECISION_FIELDS),
                reason_text=REASON_TEXT[Reason[row["reason_code"]]],
                score=row["score"],
            ),
            features=stored.features.model_dump(),
            latency_ms=row["latency_ms"],
            source="live" if live else f"simulation run {row['run_id']}",
            shadow=self._shadow_decision(row),
        )
        others = [
            AuditEntry(
                **{**_NOT_A_DECISION, **entry},
                transaction_id=parsed,
                latency_ms=row["latency_ms"],
                source=decision.source,
            )
            for entry in self.store.fetch_audit(parsed)
        ]
        return [decision, *others]

    def _shadow_decision(self, row: dict[str, Any]) -> ShadowDecision | None:
        """The shadow decision a live row stores, in words (None when nothing shadowed it)."""
        if row["shadow_version"] is None:
            return None
        policy = self.policies.get(row["shadow_version"])
        action = ACTION_NAMES[row["shadow_action"]]
        reason = Reason.APPROVED
        if action == "challenge":  # its outcome from the row's second draw, as the live path
            ecommerce = np.array([row["channel"] == "ecommerce"])
            outcome = policy.challenge.outcomes(np.array([row["challenge_draw"]]), ecommerce)
            reason = Reason(Reason.CHALLENGE_PASSED + int(outcome[0]))
        said = explain(policy, row["shadow_rule_index"], row["shadow_flag_rule"], reason)
        declined = action == "block" or (action == "challenge" and said.challenge != "passed")
        return ShadowDecision(
            policy_version=policy.version,
            status="Declined" if declined else "Approved",
            action=action,  # type: ignore[arg-type]
            rule=said.rule,
            decision_reason=said.decision_reason,
            risk_flag=said.risk_flag,
            score=row["shadow_score"],
            challenge=said.challenge,  # type: ignore[arg-type]
        )

    def dispute(
        self, transaction_id: str | uuid.UUID, report: DisputeReport | dict[str, Any]
    ) -> Recorded:
        """Record a dispute about a stored payment (live or simulated) with an audit entry
        ``transaction.disputed``; a repeated report of the same reason answers the stored
        dispute and stores nothing (:func:`engine.disputes.record_dispute`). Raises
        :class:`NotFoundError` and :class:`InvalidRequestError` (naming ``reported_at``)."""
        if not isinstance(report, DisputeReport):
            try:
                report = DisputeReport.model_validate(report)
            except ValidationError as exc:
                raise InvalidRequestError(*describe_first(exc)) from None
        recorded = record_dispute(self.store, _as_uuid(transaction_id), report)
        if recorded.created:  # a live payment's device trust counts it from now on
            self._live.dispute_recorded(recorded.dispute.transaction_id, report.reason)
        return recorded

    def _row(self, transaction_id: str | uuid.UUID) -> dict[str, Any]:
        row = self.store.fetch_transaction(_as_uuid(transaction_id))
        if row is None:
            raise NotFoundError(f"Transaction {transaction_id} not found.")
        if row["latency_ms"] is None and row["run_id"] is None:
            pending = self._live.pending_latency(row["id"])
            if pending is None:  # written back between the two reads: it is on disk now
                return self.store.fetch_transaction(row["id"]) or row
            row["latency_ms"] = pending
        return row

    def latest_transaction_id(self) -> uuid.UUID | None:
        """The most recent transaction's id (ids grow with insertion), or None."""
        rows = self.store.query("SELECT max(id) FROM transactions")
        return rows[0][0] if rows else None

    # -- stats ---------------------------------------------------------------------------------

    def stats(
        self,
        source: RunSelector = "all",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Stats:
        """Totals, approval rate, average ticket and latency percentiles of the rows ``source``
        (``"all"``, ``"live"`` or a run id) selects in ``[since, until)``, from one snapshot.

        A whole source is read from running totals, so the cost does not grow with the table;
        a time range is aggregated over its rows. Measured (live) and modelled (simulation)
        latency are reported apart as well as together (:mod:`engine.stats`). Invalid values,
        or a run that does not exist, raise :class:`InvalidRequestError` naming the argument.
        """
        try:
            filters = RowFilter(run=source, since=since, until=until)
        except ValidationError as exc:
            field, message = describe_first(exc, name=lambda f: quoted_field(_STATS_ARGS.get(f, f)))
            raise InvalidRequestError(_STATS_ARGS.get(field, field), message) from None
        self._require_run(filters.run, "source")
        with self._reading(filters.run), self.store.read() as tx:
            totals = selection_totals(tx, self._live.totals.snapshot(), filters)
        return Stats(
            total=totals.total,
            approved=totals.approved,
            declined=totals.declined,
            approval_rate=round(totals.approved / totals.total, 4) if totals.total else 0.0,
            avg_amount=totals.avg_amount,
            p50_latency=totals.latency.p50,
            p95_latency=totals.latency.p95,
            p99_latency=totals.latency.p99,
            latency_kind=totals.latency_kind,
            latency_measured=_latency_summary(totals.measured),
            latency_modelled=_latency_summary(totals.modelled),
            selection=StatsSelection(
                source=filters.run, since=filters.since, until=filters.until, rows=totals.total
            ),
        )

    def _require_run(self, run: RunSelector, field: str) -> None:
        """Refuse a run id that names no simulation run (a selection of nothing by mistake), or
        a lake run still being written (a reader never sees half a run)."""
        found = self.lake.find(run) if self.lake is not None else None
        if found is not None:
            found.require_readable(field)
            return
        if isinstance(run, int) and not self.store.query("SELECT 1 FROM runs WHERE id = ?", [run]):
            raise InvalidRequestError(
                field,
                f"{quoted_field(field)} names no simulation run (GET /simulations lists them).",
            )

    def reset(self) -> Stats:
        """Delete every transaction, audit entry, dispute and run in one transaction, and end
        the shadow and route in force (their comparison windows and audit entries would be
        gone); return the stats. Policies and lists are kept.

        Background simulation runs are cancelled first (each stops after its current chunk) and
        none starts until the store is cleared, so no row names a run record the reset deleted;
        run ids are never reused afterwards."""

        def clear() -> None:
            self.store.reset()
            self.experiments.cleared()

        with self.simulations.stopped():
            self._live.reset(clear)
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
        return self._decider.policy

    def active_decider(self) -> Decider:
        """The active policy compiled with its pinned lists (what the live path and new runs
        decide with)."""
        return self._decider

    def policy(self, version: int) -> Policy:
        """Stored policy version ``version``; :class:`NotFoundError` when there is none."""
        return self.policies.get(version)

    def policy_history(self) -> list[Policy]:
        """Every stored policy version, newest first."""
        return self.policies.all()

    def draft_policy(
        self,
        rules: Sequence[Any],
        score_weights: ScoreWeights | None = None,
        note: str = "",
        challenge: ChallengeModel | None = None,
    ) -> Policy:
        """A checked policy that is not stored (version 0), pinning the lists' newest
        versions; ``challenge``: its challenge rules' pass probabilities (default: the
        documented ones). Raises :class:`~engine.rules.RuleError` naming the rule and
        position."""
        return self.policies.draft(rules, score_weights, note, challenge=challenge)

    def create_policy(
        self,
        rules: Sequence[Any],
        score_weights: ScoreWeights | None = None,
        note: str = "",
        challenge: ChallengeModel | None = None,
    ) -> Policy:
        """Check and store a policy as a new version; nothing becomes active."""
        return self.policies.store(self.draft_policy(rules, score_weights, note, challenge))

    def activate_version(self, version: int, note: str = "activated") -> Policy:
        """Make stored version ``version`` active (an audit entry records it)."""
        with self._policy_lock:
            policy = self.policies.activate(version, note)
            self._decider = self.policies.decider(policy)
        log.info("policy version %s is active (%s)", version, note)
        return policy

    def activate_policy(self, candidate: Policy, note: str = "activated") -> Policy:
        """Store ``candidate`` (re-checked, its lists pinned as they are now) as a new version
        and make it active."""
        draft = self.policies.draft(
            [rule.model_dump() for rule in candidate.rules],
            candidate.score_weights,
            knobs=candidate.knobs,
            challenge=candidate.challenge,
        )
        return self.activate_version(self.policies.store(draft, note).version, note)

    def reset_policy(self) -> Policy:
        """Make the original heuristic active again (as a new version)."""
        return self.activate_policy(DEFAULT_POLICY, note="reset to default")

    def put_list(self, name: str, kind: str, items: Sequence[object], note: str = "") -> PutOutcome:
        """Replace list ``name``'s items (:meth:`engine.lists.Lists.put`). When the active
        policy reads the list, a copy pinning its new version is stored and activated, so
        decisions from now on use the new items and older ones stay reproducible."""
        outcome = self.lists.put(name, kind, items, note)
        if outcome.changed and name in dict(self.active_policy().lists):
            with self._policy_lock:
                active = self.active_policy()
                fresh = self.policies.repin(active)
            if fresh is not None:
                reason = f"list {name} changed (version {outcome.summary.version})"
                stored = self.policies.store(fresh, f"{active.note} [{reason}]".strip())
                self.activate_version(stored.version, reason)
        return outcome

    # -- backtests and dashboard reads -----------------------------------------------------------

    def start_shadow(self, version: int) -> Experiment:
        """Shadow live traffic with stored version ``version`` (replacing any shadow): every
        live payment from now on is also decided by it and the decision stored, never
        enforced. Audited (``policy.shadow_started``); :class:`NotFoundError` when unknown."""
        started = self.experiments.start_shadow(version)
        log.info("policy version %s shadows live traffic", version)
        return started

    def stop_shadow(self) -> Experiment | None:
        """Stop shadowing (audited); the shadow that was in force, None when there was none."""
        return self.experiments.stop_shadow()

    def route(self, version: int, share: float) -> Experiment | None:
        """Route ``share`` of live cards to challenger version ``version`` (0 ends the route):
        :meth:`engine.experiments.Experiments.route`."""
        return self.experiments.route(version, share)

    def shadow_report(
        self,
        costs: CostModel | None = None,
        replicates: int = DEFAULT_REPLICATES,
        seed: int = 0,
    ) -> ShadowReport:
        """The shadow and route in force, and the shadow's comparison with what was enforced on
        the live payments it decided since it started (POST /compare's metrics)."""
        live = self.experiments.live
        if live.shadow is None:
            return ShadowReport.of(live, None)
        shadow = live.shadow.policy
        chosen = RowFilter(run="live", since=live.shadow.started_at)
        comparison = run_shadow_comparison(
            self.store, shadow.version, self.active_policy(), shadow, chosen, costs, replicates,
            seed=seed,
        )  # fmt: skip
        return ShadowReport.of(live, comparison)

    def backtest(
        self,
        candidate: Policy,
        filters: RowFilter | None = None,
        costs: CostModel | None = None,
        **filter_fields: Any,
    ) -> BacktestResult:
        """Re-decide stored rows under ``candidate`` and the active policy with the stored draws
        (common random numbers) and compare them, each priced with ``costs`` (default: the
        default :class:`~engine.costs.CostModel`) as :meth:`compare` prices them, review
        capacity and challenges included; the answer carries the model (``cost_model``) and
        the difference in each cost (``cost_difference``). Select rows with ``filters`` or its
        fields (``run="live" | "all" | <run id>``, ``since``, ``until``, ``channels``,
        ``currencies``; ``labels_as_of`` counts only the labels known then:
        :func:`engine.backtest.label_sql`).
        """
        chosen = filters if filters is not None else RowFilter(**filter_fields)
        self._require_run(chosen.run, "filters.run")
        decider = self.policies.decider(candidate)
        with self._reading(chosen.run):
            return run_backtest(
                self.store, self.lists, decider, self.active_decider(), chosen,
                self._grouped(chosen.run), costs, self._scored_with(chosen.run),
            )  # fmt: skip

    def compare(
        self,
        a: Policy,
        b: Policy,
        filters: RowFilter | None = None,
        costs: CostModel | None = None,
        replicates: int = DEFAULT_REPLICATES,
        seed: int = 0,
        maturity_days: Sequence[int] = (),
        **filter_fields: Any,
    ) -> Comparison:
        """Re-decide the selected rows under policies ``a`` and ``b`` (stored versions or
        drafts) with the stored draws, price both with ``costs`` and give every difference
        (B − A) a paired day-block bootstrap interval (:mod:`engine.compare`). Select rows
        with ``filters`` or its fields, as :meth:`backtest` does. ``maturity_days`` adds the
        same comparison with the labels known that many days after the last selected payment
        (one more scan per point)."""
        chosen = filters if filters is not None else RowFilter(**filter_fields)
        self._require_run(chosen.run, "filters.run")
        deciders = self.policies.decider(a), self.policies.decider(b)
        costs = costs or CostModel()
        scored_with = self._scored_with(chosen.run)
        with self._reading(chosen.run):
            result = run_comparison(
                self.store, self.lists, *deciders, chosen, costs, replicates=replicates, seed=seed,
                grouped=self._grouped(chosen.run), scored_with=scored_with,
            )  # fmt: skip
            if maturity_days:
                points = label_maturity(
                    self.store,
                    self.lists,
                    *deciders,
                    chosen,
                    costs,
                    maturity_days,
                    replicates,
                    seed,
                    scored_with,
                )
                result = result.model_copy(update={"maturity": points})
        return result

    def transactions_frame(
        self, filters: RowFilter | None = None, limit: int | None = None, **filter_fields: Any
    ) -> pd.DataFrame:
        """The selected rows (``filters`` or its fields, as :meth:`backtest` takes them; a lake
        run too) as a DataFrame in event order, at most ``limit`` rows: every stored column,
        the amount exact (``amount``: ``Decimal`` objects) and numeric beside it, in forms
        pandas computes with natively: ``amount_minor`` (int64 minor units, exact) and
        ``amount_float`` (float64, for plots and statistics)."""
        chosen = filters if filters is not None else RowFilter(**filter_fields)
        self._require_run(chosen.run, "filters.run")
        where, params = chosen.where()
        sql = f"SELECT {FRAME_COLUMNS} FROM transactions {where} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._reading(chosen.run), self.store.read() as tx:
            return tx.arrow(sql, params).to_pandas()

    def dashboard(self, filters: RowFilter | None = None, **filter_fields: Any) -> Dashboard:
        """KPIs, approval rate and latency over time, decline reasons and the amount
        distribution of the selected rows, aggregated in the database from one snapshot."""
        chosen = filters if filters is not None else RowFilter(**filter_fields)
        with self._reading(chosen.run):
            return analytics.dashboard(self.store, chosen, self._live.totals.snapshot)

    def filter_options(self) -> FilterOptions:
        """The channels, currencies, runs and time span present in the data (for filter UIs);
        the attached lake's finished runs are offered beside the database's."""
        options = analytics.filter_options(self.store)
        if self.lake is None:
            return options
        lake_runs = [r.id for r in self.lake.records() if r.status != "running" and r.rows_written]
        return dataclasses.replace(options, runs=sorted({*options.runs, *lake_runs}))

    def _load_or_create_decider(self) -> Decider:
        active = self.policies.active_version()
        if active is None:
            stored = self.policies.store(DEFAULT_POLICY, "default policy")
            return self.policies.decider(self.policies.activate(stored.version, "default policy"))
        return self.policies.decider(self.policies.get(active))


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


# Entries of audit_log other than decisions hold no request, decision or features.
_NOT_A_DECISION: dict[str, Any] = {"request": None, "decision": None, "features": {}}
_STATS_ARGS = {"run": "source"}  # RowFilter's names for what stats() calls its arguments
# an export's columns: every stored one, and the amount in minor units for tools without decimals
EXPORT_COLUMNS = ", ".join(NAMES) + ", CAST(amount * 100 AS BIGINT) AS amount_minor"
# a frame's columns: ENUMs as text (a lake run's are text already: one dtype from either source)
FRAME_COLUMNS = (
    ", ".join(
        f"CAST({c.name} AS VARCHAR) AS {c.name}" if c.sql_type.islower() else c.name  # ENUM types
        for c in COLUMNS  # are the schema's lower-case names
    )
    + ", CAST(amount * 100 AS BIGINT) AS amount_minor, CAST(amount AS DOUBLE) AS amount_float"
)


def _latency_summary(percentiles: Percentiles) -> LatencySummary | None:
    if not percentiles.count:
        return None
    return LatencySummary(
        count=percentiles.count, p50=percentiles.p50, p95=percentiles.p95, p99=percentiles.p99
    )


def _as_uuid(transaction_id: str | uuid.UUID) -> uuid.UUID:
    if isinstance(transaction_id, uuid.UUID):
        return transaction_id
    parsed = parse_id(transaction_id)
    if parsed is None:
        raise NotFoundError(f"Transaction {transaction_id[:64]!r} not found.")
    return parsed


_AUDITED_DECISION_FIELDS = {  # AuditDecision's other fields: reason_text and the unrounded score
    "status", "reason_code", "decision_reason", "risk_flag", "flagged_by_risk_rule", "draw",
    "action", "rule", "review", "challenge", "challenge_draw",
}  # fmt: skip
# StoredTransaction fields stored under the same name (engine/transaction_row.py); the score is
# answered rounded to 4 decimals and risk_flag as text (the column holds the rule's boolean)
_COPIED_COLUMNS = tuple(
    name
    for name in StoredTransaction.model_fields
    if name in NAMES and name not in {"score", "risk_flag", "action"}
)  # merchant_category: read back as four digits by the store


def _stored_transaction(row: dict[str, Any], policy: Policy) -> StoredTransaction:
    """A stored row in the documented words; ``policy`` is the version that decided it (its
    rules name the deciding and flagging rules the row records by index)."""
    said = explain(policy, row["rule_index"], row["flag_rule"], Reason[row["reason_code"]])
    return StoredTransaction(
        **{name: row[name] for name in _COPIED_COLUMNS},
        card_masked=mask(row["card_bin"], row["card_last4"], row["card_length"]),
        decision_reason=said.decision_reason,
        risk_flag=said.risk_flag,  # the column holds the boolean
        flagged_by_risk_rule=row["risk_flag"],
        action=said.action,
        rule=said.rule,
        review=said.review,
        challenge=said.challenge,
        score=round(row["score"], 4),
        features=Features(**{name: row[name] for name in Features.model_fields}),
        attributes=_attributes(row),
    )


def _attributes(row: dict[str, Any]) -> TransactionAttributes:
    """The stored attributes; the 1-hour card count and the new-device flag are read from
    ``velocity_count`` and ``device_seen_count``, which have always been stored."""
    stored = {name: row[name] for name in TransactionAttributes.model_fields if name in row}
    return TransactionAttributes(
        **stored,
        payments_per_card_1h=row["velocity_count"],
        is_new_device=row["device_id"] is not None and row["device_seen_count"] == 0,
    )
