"""The DuckDB store: one connection per process, a cursor per thread, writes serialized.

Driver errors never leave this module untranslated: they become :class:`StoreError` (or
:class:`StoreLockedError` when another process holds the file) with one sentence saying what to do.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from engine.backup import RecoveryReport, recover_if_damaged, take_backup
from engine.errors import StoreError, StoreLockedError
from engine.latency import histogram_counts
from engine.schema import SCHEMA_VERSION, migration_sql

_UUID_COLUMNS = ("id", "card_hash")  # sent as 16-byte binary, stored as UUID
LIVE_SOURCE = 0  # stats_rollup.source for live traffic; simulation runs use their run id


def utc_now() -> datetime:
    """Naive UTC timestamp, the form stored in TIMESTAMP columns."""
    return datetime.now(UTC).replace(tzinfo=None)


def _holder_description(message: str) -> str:
    """Name the process holding the lock, from DuckDB's message (it includes the PID)."""
    match = re.search(r"PID (\d+)", message)
    if not match:
        return "another process"
    pid = match.group(1)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        cmdline = ""
    return f"process {pid}" + (f" ({cmdline[:120]})" if cmdline else "")


def open_connection(path: Path | None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the database file (or memory), translating a held lock into one clear sentence."""
    target = ":memory:" if path is None else str(path)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(target, read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreLockedError(
                f"The database {target} is in use by {_holder_description(str(exc))}; "
                "use that server's API (POST /simulations, POST /payment) or pass another "
                "--db / PTSIM_DB."
            ) from None
        raise StoreError(f"Cannot open the database {target}: {exc}") from exc
    except duckdb.Error as exc:
        raise StoreError(
            f"Cannot open the database {target} ({exc}); check the path and its permissions."
        ) from exc


@dataclass(frozen=True, slots=True)
class RollupDelta:
    """What a batch of new rows adds to one source's running totals."""

    source: int
    total: int
    approved: int
    amount_cents: int
    latency_buckets: np.ndarray  # bucket keys
    latency_counts: np.ndarray

    @classmethod
    def from_columns(
        cls, source: int, approved: np.ndarray, amount_cents: np.ndarray, latency_ms: np.ndarray
    ) -> RollupDelta:
        """Aggregate a batch's decision, amount and latency columns."""
        buckets, counts = histogram_counts(latency_ms)
        return cls(
            source=source,
            total=len(approved),
            approved=int(np.count_nonzero(approved)),
            amount_cents=int(np.sum(amount_cents, dtype=np.int64)),
            latency_buckets=buckets,
            latency_counts=counts,
        )


@dataclass(frozen=True, slots=True)
class RunRollups:
    """Running totals of simulation runs, as persisted beside their rows."""

    total: int
    approved: int
    amount_sum: Decimal
    latency_buckets: np.ndarray  # ascending
    latency_counts: np.ndarray


class Store:
    """Owns the process's DuckDB connection. Thread-safe: reads use per-thread cursors, writes
    go through :meth:`write`, which holds the single writer lock for one transaction."""

    def __init__(self, path: Path | None, memory_limit: str | None = None) -> None:
        self.path = path
        self.recovery: RecoveryReport | None = None
        try:
            self._con = open_connection(path)
        except StoreLockedError:
            raise
        except StoreError as exc:
            if path is None or not path.exists():
                raise
            self.recovery = recover_if_damaged(path, exc.__cause__ or exc)
            self._con = open_connection(path)
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self.write_lock = threading.RLock()
        self._closed = False
        self.generation = 0  # committed writes so far: a cheap "has the data changed?" token
        if memory_limit:  # validated by Settings; without a cap DuckDB caches up to 80% of RAM
            self._con.execute(f"SET memory_limit = '{memory_limit}'")
        self._migrate()

    # -- connection plumbing -------------------------------------------------------------------

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the shared connection."""
        if self._closed:
            raise StoreError("The database is closed; restart the process.")
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cursor = cur
            with self._cursors_lock:
                self._cursors.append(cur)
        return cur

    @contextmanager
    def _transaction(self, failure: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN … COMMIT on this thread's cursor; roll back and translate driver errors."""
        cur = self.cursor()
        try:
            cur.begin()
            yield cur
            cur.commit()
        except BaseException as exc:
            with suppress(duckdb.Error):
                cur.rollback()
            if isinstance(exc, duckdb.Error):
                raise StoreError(failure.format(exc=exc)) from exc
            raise

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One serialized write transaction; rolled back if the block raises."""
        with self.write_lock:
            with self._transaction("The database write failed ({exc}); nothing was saved.") as cur:
                yield cur
            self.generation += 1

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A consistent snapshot for several queries (DuckDB MVCC)."""
        with self._transaction("The database read failed ({exc}).") as cur:
            yield cur

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one parameterized read and return all rows."""
        try:
            return self.cursor().execute(sql, params or []).fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"The database read failed ({exc}).") from exc

    def close(self) -> None:
        """Checkpoint (folds the WAL into the file) and close."""
        if self._closed:
            return
        with self.write_lock:
            self._closed = True
            try:
                if self.path is not None:
                    self._con.execute("CHECKPOINT")
            except duckdb.Error:
                pass
            with self._cursors_lock:
                for cur in self._cursors:
                    with suppress(duckdb.Error):
                        cur.close()
            self._con.close()

    # -- schema --------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version recorded in the file (0 for a new file)."""
        exists = self._con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
        ).fetchone()[0]
        if not exists:
            return 0
        return self._con.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0

    def _migrate(self, target: int = SCHEMA_VERSION) -> None:
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"The database was written by a newer ptsim (schema {current}, this one knows "
                f"{SCHEMA_VERSION}); upgrade ptsim or use another PTSIM_DB."
            )
        if current >= target:
            return
        with self.write() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            (storage,) = cur.execute(
                "SELECT tags['storage_version'] FROM duckdb_databases() "
                "WHERE database_name = current_database()"
            ).fetchone()
            if isinstance(storage, list):  # DuckDB 1.x answers a MAP lookup with a list
                storage = storage[0] if storage else None
            for version in range(current + 1, target + 1):
                cur.execute(migration_sql(version, storage or ""))
                if version == 2:
                    self._backfill_rollups(cur)
                cur.execute("INSERT INTO schema_version VALUES (?)", [version])

    def _backfill_rollups(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Build the v2 running totals and histograms of simulation runs already in the file
        (live totals are rebuilt from the rows at every start-up, so none are stored)."""
        sources = cur.execute(
            "SELECT DISTINCT run_id FROM transactions WHERE run_id IS NOT NULL"
        ).fetchall()
        for (source,) in sources:
            approved, cents, latency = (
                cur.execute(
                    "SELECT status = 'Approved', CAST(amount * 100 AS BIGINT), "
                    # unknown latency (killed before its write-back): NaN, skipped by the histogram
                    "coalesce(latency_ms, 'NaN'::DOUBLE) FROM transactions "
                    "WHERE run_id = ?",
                    [source],
                )
                .fetchnumpy()
                .values()
            )
            self.add_to_rollups(cur, RollupDelta.from_columns(source, approved, cents, latency))

    # -- writes --------------------------------------------------------------------------------

    @staticmethod
    def append_transactions(cur: duckdb.DuckDBPyConnection, rows: pa.Table) -> None:
        """Append rows (an Arrow table named like the columns; ``id`` and ``card_hash`` as
        ``binary(16)``, read as UUIDs through Arrow's UUID type: half the cost of a SQL cast).

        The SQL reads ``_new_rows`` through DuckDB's replacement scan of this frame's locals:
        on the live path (one call per group commit) that is cheaper than register/unregister,
        two more round trips into DuckDB per call."""
        for name in _UUID_COLUMNS:
            column = rows.column(name)
            uuids = [pa.ExtensionArray.from_storage(pa.uuid(), part) for part in column.chunks]
            rows = rows.set_column(
                rows.schema.get_field_index(name), name, pa.chunked_array(uuids, pa.uuid())
            )
        _new_rows = rows  # read by name from the SQL below
        columns = ", ".join(rows.column_names)
        cur.execute(f"INSERT INTO transactions ({columns}) SELECT {columns} FROM _new_rows")

    def append_transactions_committed(self, rows: pa.Table) -> None:
        """Append rows as one autocommitted statement (caller holds the write lock)."""
        try:
            self.append_transactions(self.cursor(), rows)
        except duckdb.Error as exc:
            raise StoreError(f"The database write failed ({exc}); nothing was saved.") from exc
        self.generation += 1

    @staticmethod
    def add_to_rollups(cur: duckdb.DuckDBPyConnection, delta: RollupDelta) -> None:
        """Add a batch to the running totals and latency histogram of its source.

        A plain UPDATE (the row exists after a source's first batch) costs about half of an
        ``INSERT ... ON CONFLICT DO UPDATE``, which maintains the primary-key index per call."""
        declined = delta.total - delta.approved
        amount = Decimal(delta.amount_cents).scaleb(-2)
        (updated,) = cur.execute(
            "UPDATE stats_rollup SET total = total + ?, approved = approved + ?, "
            "declined = declined + ?, amount_sum = amount_sum + ? WHERE source = ?",
            [delta.total, delta.approved, declined, amount, delta.source],
        ).fetchone()
        if not updated:
            cur.execute(
                "INSERT INTO stats_rollup VALUES (?, ?, ?, ?, ?)",
                [delta.source, delta.total, delta.approved, declined, amount],
            )
        Store.add_latencies(cur, delta.source, delta.latency_buckets, delta.latency_counts)

    @staticmethod
    def add_latencies(
        cur: duckdb.DuckDBPyConnection, source: int, buckets: np.ndarray, counts: np.ndarray
    ) -> None:
        """Add latency histogram counts for ``source``."""
        if not len(buckets):
            return
        hist = pa.table(
            {
                "source": np.full(len(buckets), source, dtype=np.int32),
                "bucket": buckets.astype(np.int32),
                "n": counts.astype(np.int64),
            }
        )
        cur.register("_hist", hist)
        try:
            cur.execute(
                "INSERT INTO latency_histogram SELECT * FROM _hist "
                "ON CONFLICT (source, bucket) DO UPDATE SET n = n + excluded.n"
            )
        finally:
            cur.unregister("_hist")

    @staticmethod
    def set_latencies(
        cur: duckdb.DuckDBPyConnection, ids: list[uuid.UUID], latency_ms: list[float]
    ) -> None:
        """Write back measured latencies of committed live rows.

        Ids grow with insertion, so the BETWEEN bounds let DuckDB's zone maps skip every row
        group outside the batch instead of joining against the whole table."""
        if not ids:
            return
        update = pa.table(
            {
                "id": pa.array([i.bytes for i in ids], pa.binary(16)),
                "latency_ms": pa.array(latency_ms, pa.float64()),
            }
        )
        cur.register("_latency", update)
        try:
            cur.execute(
                "UPDATE transactions SET latency_ms = u.latency_ms "
                "FROM (SELECT id::UUID AS id, latency_ms FROM _latency) u "
                "WHERE transactions.id = u.id AND transactions.id BETWEEN ? AND ?",
                [min(ids), max(ids)],
            )
        finally:
            cur.unregister("_latency")

    @staticmethod
    def insert_idempotency_keys(
        cur: duckdb.DuckDBPyConnection,
        keyed: list[tuple[tuple[str, str], uuid.UUID]],
        now: datetime,
    ) -> None:
        """Record (key, request hash) → transaction id for the payments of this batch."""
        cur.executemany(
            "INSERT INTO idempotency_keys VALUES (?, ?, ?, ?)",
            [[key, request_hash, tid, now] for (key, request_hash), tid in keyed],
        )

    def find_idempotency_key(self, key: str) -> tuple[str, uuid.UUID] | None:
        """(request hash, transaction id) recorded for ``key``, or None."""
        rows = self.query(
            "SELECT request_hash, transaction_id FROM idempotency_keys WHERE key = ?", [key]
        )
        return rows[0] if rows else None

    def purge_idempotency_keys(self, older_than: datetime) -> int:
        """Forget keys recorded before ``older_than``; return how many."""
        with self.write() as cur:
            return cur.execute(
                "DELETE FROM idempotency_keys WHERE created_at < ?", [older_than]
            ).fetchone()[0]

    def reset(self) -> None:
        """Delete all transactions, audit entries, runs and rollups in one transaction."""
        with self.write() as cur:
            for table in (
                "transactions",
                "audit_log",
                "runs",
                "stats_rollup",
                "latency_histogram",
                "idempotency_keys",
                "simulation_keys",
            ):
                cur.execute(f"DELETE FROM {table}")

    # -- reads ---------------------------------------------------------------------------------

    def fetch_transaction(self, transaction_id: uuid.UUID) -> dict[str, Any] | None:
        """One stored transaction as a column → value dict, or None."""
        cur = self.cursor()
        try:
            result = cur.execute("SELECT * FROM transactions WHERE id = ?", [transaction_id])
            row = result.fetchone()
            if row is None:
                return None
            names = [d[0] for d in result.description]
        except duckdb.Error as exc:
            raise StoreError(f"The database read failed ({exc}).") from exc
        stored = dict(zip(names, row, strict=True))
        stored["card_bin"] = f"{stored['card_bin']:06d}"  # stored as numbers (schema v6)
        stored["card_last4"] = f"{stored['card_last4']:04d}"
        return stored

    def fetch_audit(self, transaction_id: uuid.UUID) -> list[dict[str, Any]]:
        """Audit entries stored for a transaction, oldest first."""
        rows = self.query(
            "SELECT created_at, event, policy_version, payload FROM audit_log "
            "WHERE transaction_id = ? ORDER BY created_at",
            [transaction_id],
        )
        return [
            {"created_at": r[0], "event": r[1], "policy_version": r[2], **json.loads(r[3])}
            for r in rows
        ]

    @staticmethod
    def read_rollups(cur: duckdb.DuckDBPyConnection, run: int | None) -> RunRollups:
        """The running totals and latency histogram of simulation run ``run`` (every run when
        None), inside the caller's read transaction. Rollup rows of source 0 (live traffic, in
        older files) are ignored: live totals are kept in memory (:mod:`engine.live_totals`)."""
        where, params = ("source <> 0", []) if run is None else ("source = ?", [run])
        total, approved, amount_sum = cur.execute(
            "SELECT coalesce(sum(total), 0), coalesce(sum(approved), 0), "
            f"coalesce(sum(amount_sum), 0) FROM stats_rollup WHERE {where}",
            params,
        ).fetchone()
        hist = cur.execute(
            f"SELECT bucket, sum(n) AS n FROM latency_histogram WHERE {where} "
            "GROUP BY bucket ORDER BY bucket",
            params,
        ).fetchnumpy()
        return RunRollups(
            total=int(total),
            approved=int(approved),
            amount_sum=Decimal(amount_sum),
            latency_buckets=np.asarray(hist["bucket"], dtype=np.int64),
            latency_counts=np.asarray(hist["n"], dtype=np.int64),
        )

    def backup(self) -> Path:
        """Write an online backup beside the database file; return its path."""
        if self.path is None:
            raise StoreError("An in-memory database has no file to back up; set PTSIM_DB.")
        return take_backup(self._con, self.path, self.write_lock)

    def file_size_bytes(self) -> int:
        """Size of the database file plus its WAL (0 in memory)."""
        if self.path is None:
            return 0
        wal = self.path.with_name(self.path.name + ".wal")
        return sum(p.stat().st_size for p in (self.path, wal) if p.exists())

    # -- policies ------------------------------------------------------------------------------

    def latest_policy_row(self) -> tuple[int, str] | None:
        """(version, knobs JSON) of the newest policy, or None when none is stored."""
        rows = self.query("SELECT version, knobs FROM policies ORDER BY version DESC LIMIT 1")
        return rows[0] if rows else None

    def list_policies(self) -> list[dict[str, Any]]:
        """Every policy version, newest first."""
        rows = self.query(
            "SELECT version, created_at, knobs, note FROM policies ORDER BY version DESC"
        )
        return [
            {"version": v, "created_at": c, "knobs": json.loads(k), "note": n}
            for v, c, k, n in rows
        ]

    def insert_policy(self, knobs: dict[str, Any], note: str) -> int:
        """Store a new policy version and its audit entry; return the version."""
        with self.write() as cur:
            version = cur.execute("SELECT coalesce(max(version), 0) + 1 FROM policies").fetchone()[
                0
            ]
            now = utc_now()
            payload = json.dumps({"knobs": knobs, "note": note})
            cur.execute(
                "INSERT INTO policies VALUES (?, ?, ?, ?)", [version, now, json.dumps(knobs), note]
            )
            cur.execute(
                "INSERT INTO audit_log VALUES (NULL, ?, 'policy.activated', ?, ?)",
                [now, version, payload],
            )
        return version
