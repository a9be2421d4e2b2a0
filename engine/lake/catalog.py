"""A lake attached to an engine: its finished runs readable with the same SQL as the file's.

The store holds an in-memory catalog (:meth:`engine.store.Store.attach_lake`) with a
``transactions`` view over the finished runs' files (exactly the files their manifests list,
each column cast to the file's type, ENUMs as their text labels), and ``stats_rollup`` and
``latency_histogram`` tables from their manifests' totals. A read of a lake run runs inside
:meth:`LakeCatalog.reading`, which points unqualified names at that catalog first: stats,
backtests, comparisons, the dashboard and the content hash need no SQL of their own. DuckDB reads
the files with its built-in Parquet reader; nothing is copied into the database file.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Iterator
from decimal import Decimal

import numpy as np
import pyarrow as pa

from engine.errors import NotFoundError, StoreError
from engine.lake.layout import LAKE_RUN_BASE, Lake
from engine.lake.manifest import Manifest
from engine.simulation.params import RunRecord
from engine.store import LAKE_CATALOG, Store
from engine.transaction_row import BULK, COLUMNS

log = logging.getLogger("ptsim.lake")
# Rows one cluster task reads at most, where a run has more: a task's own cost (a connection,
# the view and the plan, the result to ship) is ~0.1 CPU-s, a third of a 1M-row shard's backtest;
# 5M rows amortize it and keep each task's hash tables small in a worker of 1.5 GiB.
TASK_ROWS = 5_000_000

_BUILT_IN = ("UUID", "INTEGER", "TIMESTAMP", "SMALLINT", "TINYINT", "DECIMAL", "VARCHAR",
             "BOOLEAN", "DOUBLE")  # fmt: skip


class LakeCatalog:
    """The runs of one lake as sources of an engine's reads; refreshed from its manifests."""

    def __init__(self, lake: Lake, store: Store) -> None:
        self.lake = lake
        self._store = store
        store.attach_lake(None if lake.local else lake.fs)
        abandoned = lake.recover()
        if abandoned:
            log.warning("lake runs %s were left running and are now interrupted", abandoned)
        self._types = {c.name: _sql_type(c.sql_type) for c in COLUMNS}
        self._lock = threading.Lock()
        self._signature: tuple[tuple[int, str, int], ...] | None = None
        self._manifests: dict[int, Manifest] = {}
        self._damaged: dict[int, str] = {}  # run id -> a committed file of it that is missing
        self.refresh()

    def refresh(self) -> dict[int, Manifest]:
        """Read the manifests; when a run finished or appeared since, redefine the relations.
        Every run by id (those still being written included, though their rows are not read)."""
        with self._lock:
            manifests = {m.run_id: m for m in self.lake.manifests()}
            readable = sorted((m for m in manifests.values() if m.readable), key=lambda m: m.run_id)
            signature = tuple((m.run_id, m.status, len(m.partitions)) for m in readable)
            if signature != self._signature:
                self._damaged = self._missing_files(readable)
                intact = [m for m in readable if m.run_id not in self._damaged]
                self._store.define_lake(self._script(intact), _rollup_tables(intact))
                self._signature = signature
            self._manifests = manifests
            return manifests

    def records(self) -> list[RunRecord]:
        """Every lake run as a run record, newest first."""
        return [m.record() for m in sorted(self.refresh().values(), key=lambda m: -m.run_id)]

    def manifest(self, run_id: int) -> Manifest:
        """A run's manifest. Raises :class:`NotFoundError`."""
        found = self.refresh().get(run_id)
        if found is None:
            raise NotFoundError(f"Simulation run {run_id} not found.")
        return found

    def find(self, run: object) -> Manifest | None:
        """The manifest of lake run ``run`` (finished or not), or None when it names none."""
        if not isinstance(run, int) or isinstance(run, bool) or run <= LAKE_RUN_BASE:
            return None
        return self.refresh().get(run)

    def _missing_files(self, runs: list[Manifest]) -> dict[int, str]:
        """The runs among ``runs`` a committed partition file of which is gone (deleted or
        moved by hand, a volume not mounted), each with one such file; logged once. They are
        left out of the relations, so the lake's other runs stay readable."""
        damaged = {}
        for manifest in runs:
            for partition in manifest.partitions:
                if not self.lake.fs.exists(self.lake.path(partition.path)):
                    damaged[manifest.run_id] = self.lake.path(partition.path)
                    break
        for run_id, path in damaged.items():
            log.error("lake run %s is not readable: its file %s is missing", run_id, path)
        return damaged

    @contextlib.contextmanager
    def reading(self, run: object) -> Iterator[None]:
        """Reads in the block see lake rows when ``run`` is a lake run; else a no-op. Raises
        :class:`StoreError` for a run a file of which is missing."""
        if isinstance(run, int) and run in self._damaged:
            raise StoreError(
                f"Lake run {run} cannot be read: its file {self._damaged[run]} is missing; "
                "restore the file (or remove the run's manifest to drop the run), then retry."
            )
        if isinstance(run, int) and run > LAKE_RUN_BASE:
            with self._store.reading_lake():
                yield
        else:
            yield

    def files(self, run_id: int) -> list[str]:
        """The committed files of a finished run, as DuckDB opens them."""
        manifest = self.manifest(run_id)
        return [self.lake.reader_path(p.path) for p in manifest.partitions]

    def task_views(self, run_id: int, workers: int = 1) -> list[str]:
        """Views defining ``transactions`` over a finished run's files in pieces a cluster task
        reads: whole shards (a card's rows are all in its shard, one file each, so per-card
        groups stay exact), consecutive ones together up to about :data:`TASK_ROWS` rows, in
        at least two pieces per one of ``workers`` where there are shards enough; all of a
        one-shard run's files in one."""
        manifest = self.manifest(run_id)
        parts = manifest.partitions
        pieces = [parts]
        if manifest.shards > 1:
            rows = sum(p.rows for p in parts)
            count = min(len(parts), max(2 * workers, -(-rows // TASK_ROWS)))
            bounds = [len(parts) * i // count for i in range(count + 1)]
            pieces = [parts[a:b] for a, b in itertools.pairwise(bounds)]
        return [
            "CREATE VIEW transactions AS "
            + self._branch(manifest.model_copy(update={"partitions": piece}))
            for piece in pieces
            if piece
        ]

    def _script(self, runs: list[Manifest]) -> str:
        """The ``transactions`` view: one branch per finished run (its id a constant, so a
        filter on run_id drops the other branches before any file is opened)."""
        branches = [self._branch(m) for m in runs if m.partitions]
        if not branches:
            items = ", ".join(f"CAST(NULL AS {self._types[c.name]}) AS {c.name}" for c in COLUMNS)
            branches = [f"SELECT {items} WHERE false"]
        body = "\nUNION ALL\n".join(branches)
        return f"CREATE OR REPLACE VIEW {LAKE_CATALOG}.main.transactions AS\n{body};"

    def _branch(self, manifest: Manifest) -> str:
        files = ", ".join(_literal(self.lake.reader_path(p.path)) for p in manifest.partitions)
        items = []
        for column in COLUMNS:
            source = str(manifest.run_id) if column.name == "run_id" else column.name
            if BULK not in column.set_by:  # set on live rows only: not in a run's files
                source = "NULL"
            items.append(f"CAST({source} AS {self._types[column.name]}) AS {column.name}")
        return f"SELECT {', '.join(items)} FROM read_parquet([{files}])"


def _sql_type(sql_type: str) -> str:
    """A column's type as the lake catalog casts it: built-in types as the file has them, the
    schema's ENUM types as text. Their labels are in alphabetical order (engine/schema.py v6),
    so text sorts, groups and compares as they do, and the content hash reads ENUMs as their
    labels; casting every row's text to an ENUM doubled a backtest's time over a lake run."""
    return sql_type if sql_type.startswith(_BUILT_IN) else "VARCHAR"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _rollup_tables(runs: list[Manifest]) -> dict[str, pa.Table]:
    """The finished runs' totals and latency histograms, shaped as the file's tables."""
    totals = [m.rollup for m in runs]
    buckets = [(m.run_id, int(b), n) for m in runs for b, n in sorted(m.rollup.latency.items())]
    return {
        "stats_rollup": pa.table(
            {
                "source": pa.array([m.run_id for m in runs], pa.int32()),
                "total": pa.array([t.total for t in totals], pa.int64()),
                "approved": pa.array([t.approved for t in totals], pa.int64()),
                "declined": pa.array([t.total - t.approved for t in totals], pa.int64()),
                "amount_sum": pa.array(
                    [Decimal(t.amount_cents).scaleb(-2) for t in totals], pa.decimal128(38, 2)
                ),
            }
        ),
        "latency_histogram": pa.table(
            {
                "source": pa.array([b[0] for b in buckets], pa.int32()),
                "bucket": pa.array([b[1] for b in buckets], pa.int32()),
                "n": pa.array(np.array([b[2] for b in buckets], dtype=np.int64)),
            }
        ),
    }
