"""The DuckDB store: one connection per process, a cursor per thread, writes serialized.

This module (with :mod:`engine.backup` for file copies) is the only one that imports ``duckdb``.
Callers get :class:`ReadTx` and :class:`WriteTx` objects, never a raw cursor: every query they run
returns plain rows, numpy columns, a DataFrame or Arrow data, and every driver error is
translated once, in :meth:`Store.translated`, into :class:`StoreError` (:class:`StoreLockedError`
when another process holds the file, :class:`StoreDamagedError` for a block failing its checksum)
with one sentence saying what to do. Writes take the store's writer lock themselves; callers never
hold it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine.backup import (
    CORRUPT_BLOCK,
    BackupRefusedError,
    RecoveryReport,
    recover_if_damaged,
    remove_partial_backups,
    salvage_wal,
    take_backup,
)
from engine.commit_record import CommitRecord, Committed, id_time, read_record
from engine.errors import StoreDamagedError, StoreError, StoreLockedError
from engine.latency import histogram_counts
from engine.schema import SCHEMA_VERSION, migration_sql
from engine.transaction_row import NAMES

log = logging.getLogger("ptsim.store")
_UUID_COLUMNS = ("id", "card_hash")  # sent as 16-byte binary, stored as UUID
Params = Sequence[Any] | Mapping[str, Any] | None
_SELECT_ROW = f"SELECT {', '.join(NAMES)} FROM transactions WHERE id = ?"
LAKE_CATALOG = "ptsim_lake"  # the in-memory catalog of an attached lake (Store.attach_lake)
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


def query_files(
    view_sql: str, tables: Mapping[str, pa.Table], sql: str, params: Mapping[str, Any]
) -> pd.DataFrame:
    """One read on a throw-away in-memory database (a cluster task over some lake files):
    ``tables`` loaded under their names (text card fingerprints read back as UUIDs, as the
    file stores them), then ``view_sql`` (a view over the files), then ``sql``; one thread,
    since a task has one."""
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        for name, table in tables.items():
            con.register("_rows", table)
            uuids = (
                " REPLACE (card_hash::UUID AS card_hash)"
                if "card_hash" in table.schema.names
                else ""
            )
            con.execute(f"CREATE TABLE {name} AS SELECT *{uuids} FROM _rows")
            con.unregister("_rows")
        con.execute(view_sql)
        return con.execute(sql, dict(params)).df()
    except duckdb.Error as exc:
        raise StoreError(f"A read of lake files failed ({exc}).") from exc
    finally:
        con.close()


def _restrict_file_modes(db_path: Path) -> None:
    """Files this process creates are its owner's only (database, WAL, backups, key, commit
    record: DuckDB creates its files with the process umask); files already beside the database
    from older versions are tightened too."""
    os.umask(os.umask(0o077) | 0o077)
    if not db_path.parent.exists():
        return
    for sibling in [db_path, *db_path.parent.glob(glob_escape(db_path.name) + ".*")]:
        with suppress(FileNotFoundError):  # a WAL may vanish meanwhile (another holder's)
            if sibling.is_dir():
                sibling.chmod(0o700)
                for inner in sibling.iterdir():
                    inner.chmod(0o600)
            else:
                sibling.chmod(0o600)


def _committed_rows(con: duckdb.DuckDBPyConnection) -> Committed:
    """Rows and newest id of the transactions table as the database holds them now."""
    rows, newest = con.execute("SELECT count(*), max(id) FROM transactions").fetchone()
    return Committed(rows, newest)


def _describe_loss(db_path: Path, expected: Committed | None, found: Committed) -> str | None:
    """One sentence naming the committed transactions the database no longer holds, or None."""
    if expected is None or found.rows >= expected.rows:
        return None
    since = id_time(found.newest_id)
    until = id_time(expected.newest_id)
    window = "every one committed" if since is None else f"those committed after {_ms(since)}"
    if until is not None:
        window += f" up to {_ms(until)} UTC"
    return (
        f"{expected.rows - found.rows:,} committed transactions are missing from {db_path.name}: "
        f"{expected.rows:,} had been committed but the database holds {found.rows:,}, so "
        f"{window} are lost (its write-ahead log {db_path.name}.wal was damaged, cut short or "
        "deleted, or an older copy of the file was put in place)."
    )


def _ms(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S.%f}"[:-3]


def _damaged_sentence(db_path: Path, exc: Exception) -> str:
    cause = str(exc.__cause__ or exc).splitlines()[0][:200]
    return (
        f"The database {db_path.name} is damaged ({cause}); nothing was changed. Start the "
        "server on it to recover what can be recovered, or restore a backup with `ptsim restore`."
    )


def _probe_undamaged(db_path: Path, expected: Committed | None) -> None:
    """Open ``db_path`` read-only (its WAL replays in memory only) and raise
    :class:`StoreDamagedError` if it fails or lacks committed transactions; touches no file."""
    if not db_path.exists():
        return
    try:
        con = open_connection(db_path, read_only=True)
    except StoreLockedError:
        raise
    except StoreError as exc:
        raise StoreDamagedError(_damaged_sentence(db_path, exc)) from exc
    try:
        has_table = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'transactions'"
        ).fetchone()[0]
        loss = _describe_loss(db_path, expected, _committed_rows(con)) if has_table else None
    except duckdb.Error as exc:
        raise StoreDamagedError(_damaged_sentence(db_path, exc)) from exc
    finally:
        con.close()
    if loss:
        raise StoreDamagedError(
            f"The database is damaged: {loss} Nothing was changed; start the server on it to "
            "accept the loss and continue, or restore a backup with `ptsim restore`."
        )


@dataclass(slots=True)
class _PendingRows:
    """What the open write transaction does to the transaction rows (applied on commit)."""

    added: int = 0
    newest_id: uuid.UUID | None = None
    cleared: bool = False
    sources: set[int] = field(default_factory=set)  # sources whose rows changed (0 = live)

    def applied_to(self, committed: Committed) -> Committed:
        rows = 0 if self.cleared else committed.rows
        newest = None if self.cleared else committed.newest_id
        return Committed(rows + self.added, self.newest_id or newest)


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


def _execute(cur: duckdb.DuckDBPyConnection, sql: str, params: Params) -> Any:
    """Execute with parameters only when there are some: a parameterless call may be a script
    of several statements, which DuckDB cannot prepare."""
    return cur.execute(sql, params) if params else cur.execute(sql)


class ReadTx:
    """Queries inside one read snapshot (or, from :meth:`Store.query`, autocommitted). Results
    come back as plain Python rows, numpy columns, DataFrames or Arrow data."""

    __slots__ = ("_cur", "_store")
    _FAILURE = "The database read failed"

    def __init__(self, cur: duckdb.DuckDBPyConnection, store: Store) -> None:
        self._cur = cur
        self._store = store

    def _translated(self, exc: duckdb.Error) -> StoreError:
        return self._store.translated(exc, self._FAILURE)

    def _run(self, sql: str, params: Params) -> duckdb.DuckDBPyConnection:
        try:
            return _execute(self._cur, sql, params)
        except duckdb.Error as exc:
            raise self._translated(exc) from exc

    def _fetch(self, sql: str, params: Params, how: str) -> Any:
        return self._fetch_from(self._run(sql, params), how)

    def _fetch_from(self, result: duckdb.DuckDBPyConnection, how: str) -> Any:
        try:
            return getattr(result, how)()
        except duckdb.Error as exc:
            raise self._translated(exc) from exc

    def rows(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """Every result row as a tuple."""
        return self._fetch(sql, params, "fetchall")

    def one(self, sql: str, params: Params = None) -> tuple[Any, ...] | None:
        """The first result row, or None."""
        return self._fetch(sql, params, "fetchone")

    def numpy(self, sql: str, params: Params = None) -> dict[str, np.ndarray]:
        """The result as numpy columns by name."""
        return self._fetch(sql, params, "fetchnumpy")

    def frame(self, sql: str, params: Params = None) -> pd.DataFrame:
        """The result as a pandas DataFrame."""
        return self._fetch(sql, params, "df")

    def rollups(self, run: int | None) -> RunRollups:
        """The running totals and latency histogram of simulation run ``run`` (every run when
        None). Live traffic's totals are kept in memory (:mod:`engine.live_totals`)."""
        where, params = ("TRUE", None) if run is None else ("source = ?", [run])
        total, approved, amount_sum = self.one(
            "SELECT coalesce(sum(total), 0), coalesce(sum(approved), 0), "
            f"coalesce(sum(amount_sum), 0) FROM stats_rollup WHERE {where}",
            params,
        )
        hist = self.numpy(
            f"SELECT bucket, sum(n) AS n FROM latency_histogram WHERE {where} "
            "GROUP BY bucket ORDER BY bucket",
            params,
        )
        return RunRollups(
            total=int(total),
            approved=int(approved),
            amount_sum=Decimal(amount_sum),
            latency_buckets=np.asarray(hist["bucket"], dtype=np.int64),
            latency_counts=np.asarray(hist["n"], dtype=np.int64),
        )

    def arrow(self, sql: str, params: Params = None) -> pa.Table:
        """The result as an Arrow table (UUIDs come as text: cast them to BLOB for bytes)."""
        try:
            # a relation (.sql), not a DB-API result: Arrow from the latter copies every row
            return self._cur.sql(sql, params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise self._translated(exc) from exc

    def named_row(self, sql: str, params: Params = None) -> dict[str, Any] | None:
        """The first result row as a column → value dict, or None."""
        result = self._run(sql, params)
        try:
            row = result.fetchone()
        except duckdb.Error as exc:
            raise self._translated(exc) from exc
        if row is None:
            return None
        return dict(zip([d[0] for d in result.description], row, strict=True))


class WriteTx(ReadTx):
    """Statements inside one serialized write transaction (:meth:`Store.write`)."""

    __slots__ = ()
    _FAILURE = "The database write failed; nothing was saved"

    def execute(self, sql: str, params: Params = None) -> int | None:
        """Run a statement (or, without parameters, a script of several); the affected row
        count when the (last) statement reports one."""
        result = self._run(sql, params)
        if result.description is None:
            return None
        row = self._fetch_from(result, "fetchone")
        return int(row[0]) if row and isinstance(row[0], int) else None

    def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        """Run one statement per parameter row."""
        try:
            self._cur.executemany(sql, rows)
        except duckdb.Error as exc:
            raise self._translated(exc) from exc

    def execute_with_table(
        self, name: str, table: pa.Table, sql: str, params: Params = None
    ) -> None:
        """Run ``sql`` (e.g. a bulk ``INSERT ... SELECT ... FROM <name>``) with the Arrow
        ``table`` readable as ``name``; a ``pa.uuid()`` column is read as UUIDs."""
        self._with_table(name, table, sql, params)

    def append_transactions(self, rows: pa.Table) -> None:
        """Append rows (an Arrow table named like the columns; ``id`` and ``card_hash`` as
        ``binary(16)``, read as UUIDs through Arrow's UUID type: half the cost of a SQL cast)."""
        try:
            self._store._append(self._cur, rows)
        except duckdb.Error as exc:
            raise self._translated(exc) from exc

    def add_to_rollups(self, delta: RollupDelta) -> None:
        """Add a batch to the running totals and latency histogram of its source.

        A plain UPDATE (the row exists after a source's first batch) costs about half of an
        ``INSERT ... ON CONFLICT DO UPDATE``, which maintains the primary-key index per call."""
        declined = delta.total - delta.approved
        amount = Decimal(delta.amount_cents).scaleb(-2)
        updated = self.execute(
            "UPDATE stats_rollup SET total = total + ?, approved = approved + ?, "
            "declined = declined + ?, amount_sum = amount_sum + ? WHERE source = ?",
            [delta.total, delta.approved, declined, amount, delta.source],
        )
        if not updated:
            self.execute(
                "INSERT INTO stats_rollup VALUES (?, ?, ?, ?, ?)",
                [delta.source, delta.total, delta.approved, declined, amount],
            )
        if len(delta.latency_buckets):
            _hist = pa.table(  # read by name from the SQL below (DuckDB's replacement scan)
                {
                    "source": np.full(len(delta.latency_buckets), delta.source, dtype=np.int32),
                    "bucket": delta.latency_buckets.astype(np.int32),
                    "n": delta.latency_counts.astype(np.int64),
                }
            )
            self._with_table(
                "_hist",
                _hist,
                "INSERT INTO latency_histogram SELECT * FROM _hist "
                "ON CONFLICT (source, bucket) DO UPDATE SET n = n + excluded.n",
            )

    def set_latencies(self, ids: list[uuid.UUID], latency_ms: list[float]) -> None:
        """Write back measured latencies of committed live rows.

        Ids grow with insertion, so the BETWEEN bounds let DuckDB's zone maps skip every row
        group outside the batch instead of joining against the whole table."""
        if not ids:
            return
        self._store._pending.sources.add(LIVE_SOURCE)
        update = pa.table(
            {
                "id": pa.array([i.bytes for i in ids], pa.binary(16)),
                "latency_ms": pa.array(latency_ms, pa.float64()),
            }
        )
        self._with_table(
            "_latency",
            update,
            "UPDATE transactions SET latency_ms = u.latency_ms "
            "FROM (SELECT id::UUID AS id, latency_ms FROM _latency) u "
            "WHERE transactions.id = u.id AND transactions.id BETWEEN ? AND ?",
            [min(ids), max(ids)],
        )

    def insert_idempotency_keys(
        self, keyed: list[tuple[tuple[str, str], uuid.UUID]], now: datetime
    ) -> None:
        """Record (key, request hash) → transaction id for the payments of this batch."""
        self.executemany(
            "INSERT INTO idempotency_keys VALUES (?, ?, ?, ?)",
            [[key, request_hash, tid, now] for (key, request_hash), tid in keyed],
        )

    def _with_table(self, name: str, table: pa.Table, sql: str, params: Params = None) -> None:
        """Run ``sql`` with ``table`` registered as ``name`` for the statement."""
        try:
            self._cur.register(name, table)
            try:
                _execute(self._cur, sql, params)
            finally:
                self._cur.unregister(name)
        except duckdb.Error as exc:
            raise self._translated(exc) from exc


def _append_transactions(cur: duckdb.DuckDBPyConnection, rows: pa.Table) -> uuid.UUID | None:
    """INSERT the Arrow ``rows`` into ``transactions``; return the newest id appended.

    The SQL reads ``_new_rows`` through DuckDB's replacement scan of this frame's locals: on the
    live path (one call per group commit) that is cheaper than register/unregister, two more
    round trips into DuckDB per call."""
    for name in _UUID_COLUMNS:
        column = rows.column(name)
        uuids = [pa.ExtensionArray.from_storage(pa.uuid(), part) for part in column.chunks]
        rows = rows.set_column(
            rows.schema.get_field_index(name), name, pa.chunked_array(uuids, pa.uuid())
        )
    _new_rows = rows  # read by name from the SQL below
    columns = ", ".join(rows.column_names)
    cur.execute(f"INSERT INTO transactions ({columns}) SELECT {columns} FROM _new_rows")
    return rows.column("id")[-1].as_py() if rows.num_rows else None  # ids grow with insertion


class Store:
    """Owns the process's DuckDB connection. Thread-safe: reads use per-thread cursors, writes
    go through :meth:`write`, which holds the single writer lock for one transaction."""

    def __init__(
        self, path: Path | None, memory_limit: str | None = None, recover: bool = True
    ) -> None:
        """Open (or create) the database at ``path`` (None: in memory).

        With ``recover`` (servers), a file that does not open is repaired as far as the damage
        allows (:mod:`engine.backup`) and every loss found is listed in :attr:`problems`. Without
        it (operator commands), a damaged file raises :class:`StoreDamagedError` and no file is
        touched.
        """
        self.path = path
        self.recovery: RecoveryReport | None = None
        self.problems: list[str] = []  # what start-up found damaged or lost, for logs and /health
        self.integrity_error: str | None = None  # set when a block fails its checksum
        self._record: CommitRecord | None = None
        self._pending = _PendingRows()
        self._backup_lock = threading.Lock()
        expected = None
        if path is not None:
            expected = read_record(path)
            if not recover:
                _probe_undamaged(path, expected)  # before anything below touches a file
            _restrict_file_modes(path)
            for leftover in remove_partial_backups(path):
                log.warning("removed %s, left by a backup that did not finish", leftover.name)
        self._con = self._open(path, recover)
        self._local = threading.local()
        self._home = "memory"  # the file's catalog name, for reading_lake's search path
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._closed = False
        self.generation = 0  # committed writes so far: a cheap "has the data changed?" token
        self._epoch = 0  # resets so far
        self._source_generation: dict[int, int] = {}  # source -> generation of its last change
        if memory_limit:
            self.set_memory_limit(memory_limit)
        self._migrate()
        if path is not None:
            self._check_commits(path, expected)
        for problem in self.problems:
            log.error(problem)

    def _check_commits(self, path: Path, expected: Committed | None) -> None:
        """Compare what the database replayed with the commit record; start recording."""
        try:
            found = _committed_rows(self._con)
        except duckdb.Error as exc:  # a damaged block: keep the old record, report the damage
            raise_later = self.translated(exc, ReadTx._FAILURE)
            log.error("commits could not be checked: %s", raise_later)
            return
        loss = _describe_loss(path, expected, found)
        if loss:
            self.problems.append(loss)
        self._record = CommitRecord(path, found)

    def _open(self, path: Path | None, recover: bool) -> duckdb.DuckDBPyConnection:
        """Connect; on a damaged file replay what the WAL still holds, else restore a backup."""
        try:
            return open_connection(path)
        except StoreLockedError:
            raise
        except StoreError as exc:
            if path is None or not path.exists():
                raise
            if not recover:
                raise StoreDamagedError(_damaged_sentence(path, exc)) from exc
            cause = exc.__cause__ or exc
            salvaged = salvage_wal(path, cause, lambda: open_connection(path))
            if salvaged is not None:
                con, what = salvaged
                self.problems.append(what)
                return con
            self.recovery = recover_if_damaged(path, cause)
            self.problems.append(self.recovery.message())
            return open_connection(path)

    def translated(self, exc: duckdb.Error, what: str) -> StoreError:
        """The one place a driver error becomes an engine error (the caller raises it ``from``):
        one sentence saying what failed; a block failing its checksum is recorded (``/health``
        degraded) and named as damage, with what to do."""
        if CORRUPT_BLOCK not in str(exc):
            return StoreError(f"{what} ({exc}).")
        first = str(exc).splitlines()[0][:200]
        if self.integrity_error is None:
            log.error("the database file fails its checksums: %s", first)
        self.integrity_error = first
        return StoreDamagedError(
            f"The database file is damaged: a block failed its checksum ({first}); stop the "
            "server and restore a backup with `ptsim restore`."
        )

    # -- connection plumbing -------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
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

    # -- an attached Parquet lake (engine/lake) -------------------------------------------------

    def attach_lake(self, filesystem: object | None) -> None:
        """Add the in-memory catalog :data:`LAKE_CATALOG` that holds an attached lake's relations
        (nothing of it is ever written to the file); ``filesystem`` (an fsspec file system) is
        what DuckDB reads a non-local lake's files through."""
        with self._write_lock:
            try:
                self._con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {LAKE_CATALOG}")
                if filesystem is not None:
                    self._con.register_filesystem(filesystem)
                (self._home,) = self._con.execute("SELECT current_database()").fetchone()
            except duckdb.Error as exc:
                raise self.translated(exc, "The lake could not be attached") from exc

    def define_lake(self, script: str, tables: Mapping[str, pa.Table]) -> None:
        """Replace the lake catalog's relations: run ``script`` (views over the lake's files),
        then store each Arrow table as ``ptsim_lake.main.<name>``, in one transaction."""
        with self.write() as tx:
            tx.execute(script)
            for name, table in tables.items():
                tx.execute_with_table(
                    "_lake_rows",
                    table,
                    f"CREATE OR REPLACE TABLE {LAKE_CATALOG}.main.{name} AS FROM _lake_rows",
                )

    @contextmanager
    def reading_lake(self) -> Iterator[None]:
        """Reads in the block (on this thread) see the lake catalog's ``transactions``,
        ``stats_rollup`` and ``latency_histogram`` in place of the file's, and every other
        table (policies, lists, disputes) from the file: the same SQL reads lake rows."""
        cur = self._cursor()
        try:
            cur.execute(f"SET search_path = '{LAKE_CATALOG}.main,{self._home}.main'")
            yield
        except duckdb.Error as exc:
            raise self.translated(exc, ReadTx._FAILURE) from exc
        finally:
            with suppress(duckdb.Error):
                cur.execute("RESET search_path")

    def copy_to_parquet(self, sql: str, params: Params, target: Path) -> int:
        """Write one read's result to the Parquet file ``target`` with DuckDB's parallel writer
        (``target`` is a path this process chose: it is quoted, never taken from a client);
        the rows written. The read sees one snapshot, so rows committed meanwhile are not in."""
        literal = str(target).replace("'", "''")
        try:
            cur = self._cursor()
            result = _execute(
                cur,
                f"COPY ({sql}) TO '{literal}' (FORMAT parquet, COMPRESSION snappy, "
                "ROW_GROUP_SIZE 262144)",
                params,
            )
            (rows,) = result.fetchone()
        except duckdb.Error as exc:
            raise self.translated(exc, "The export failed; nothing was written") from exc
        return int(rows)

    def set_memory_limit(self, limit: str) -> None:
        """Cap DuckDB's buffer memory (a validated size such as ``512MB``); without a cap DuckDB
        caches up to 80% of RAM."""
        try:
            self._con.execute(f"SET memory_limit = '{limit}'")
        except duckdb.Error as exc:
            raise self.translated(exc, f"The memory limit {limit!r} was refused") from exc

    @contextmanager
    def _transaction(self, tx_type: type[ReadTx]) -> Iterator[Any]:
        """BEGIN … COMMIT on this thread's cursor; roll back and translate driver errors."""
        cur = self._cursor()
        try:
            cur.begin()
            yield tx_type(cur, self)
            cur.commit()
        except BaseException as exc:
            with suppress(duckdb.Error):
                cur.rollback()
            if isinstance(exc, duckdb.Error):
                raise self.translated(exc, tx_type._FAILURE) from exc
            raise

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        """One serialized write transaction; rolled back if the block raises."""
        with self._write_lock:
            self._pending = _PendingRows()
            with self._transaction(WriteTx) as tx:
                yield tx
            self._committed()

    @contextmanager
    def read(self) -> Iterator[ReadTx]:
        """A consistent snapshot for several queries (DuckDB MVCC)."""
        with self._transaction(ReadTx) as tx:
            yield tx

    def query(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """Run one parameterized read and return all rows."""
        return ReadTx(self._cursor(), self).rows(sql, params)

    def batches(self, sql: str, params: Params, rows_per_batch: int) -> Iterator[pa.RecordBatch]:
        """Stream one read's result as Arrow record batches of about ``rows_per_batch`` rows."""
        try:
            # a relation (.sql), not a DB-API result: Arrow from the latter copies every row
            reader = self._cursor().sql(sql, params=params).to_arrow_reader(rows_per_batch)
            yield from reader
        except duckdb.Error as exc:
            raise self.translated(exc, ReadTx._FAILURE) from exc

    def append_live_group(
        self,
        rows: pa.Table,
        latencies: tuple[list[uuid.UUID], list[float]] | None = None,
        keyed: list[tuple[tuple[str, str], uuid.UUID]] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Commit one live group: its rows, plus latency write-backs of earlier groups and
        idempotency keys when there are any. Without them this is one autocommitted INSERT:
        DuckDB's autocommit saves the BEGIN and COMMIT round trips of the hot path."""
        if latencies is None and not keyed:
            with self._write_lock:
                self._pending = _PendingRows()
                try:
                    self._append(self._cursor(), rows)
                except duckdb.Error as exc:
                    raise self.translated(exc, WriteTx._FAILURE) from exc
                self._committed()
            return
        with self.write() as tx:
            if latencies is not None:
                tx.set_latencies(*latencies)
            tx.append_transactions(rows)
            if keyed:
                tx.insert_idempotency_keys(keyed, now or utc_now())

    def _append(self, cur: duckdb.DuckDBPyConnection, rows: pa.Table) -> None:
        """Append ``rows`` in the open write (write lock held) and note them for the commit
        record; driver errors are the caller's to translate."""
        newest = _append_transactions(cur, rows)
        if newest is not None:
            self._pending.added += rows.num_rows
            self._pending.newest_id = newest
            runs = (
                pc.unique(rows.column("run_id")).to_pylist()
                if "run_id" in rows.schema.names
                else [None]
            )
            self._pending.sources.update(LIVE_SOURCE if run is None else int(run) for run in runs)

    def _committed(self) -> None:
        """After a commit (write lock held): count it, and record rows added or cleared."""
        self.generation += 1
        pending, self._pending = self._pending, _PendingRows()
        if pending.cleared:
            self._epoch += 1
            self._source_generation.clear()
        for source in pending.sources:
            self._source_generation[source] = self.generation
        if self._record is not None and (pending.added or pending.cleared):
            self._record.write(pending.applied_to(self._record.committed))

    def source_version(self, source: int) -> tuple[int, int]:
        """A token that changes whenever one source's rows (0 = live traffic, else a run id)
        are added, cleared or get their latency written back, and not when other sources
        change: a completed run's results stay reusable while live payments flow."""
        return self._epoch, self._source_generation.get(source, 0)

    def close(self) -> None:
        """Checkpoint (folds the WAL into the file) and close."""
        if self._closed:
            return
        with self._backup_lock, self._write_lock:  # a running backup finishes first
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
            if self._record is not None:
                self._record.close()

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
        with self.write() as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            (storage,) = tx.one(
                "SELECT tags['storage_version'] FROM duckdb_databases() "
                "WHERE database_name = current_database()"
            )
            if isinstance(storage, list):  # DuckDB 1.x answers a MAP lookup with a list
                storage = storage[0] if storage else None
            for version in range(current + 1, target + 1):
                tx.execute(migration_sql(version, storage or ""))
                if version == 2:
                    self._backfill_rollups(tx)
                tx.execute("INSERT INTO schema_version VALUES (?)", [version])

    @staticmethod
    def _backfill_rollups(tx: WriteTx) -> None:
        """Build the v2 running totals and histograms of simulation runs already in the file
        (live totals are rebuilt from the rows at every start-up, so none are stored)."""
        sources = tx.rows("SELECT DISTINCT run_id FROM transactions WHERE run_id IS NOT NULL")
        for (source,) in sources:
            approved, cents, latency = tx.numpy(
                "SELECT status = 'Approved', CAST(amount * 100 AS BIGINT), "
                # unknown latency (killed before its write-back): NaN, skipped by the histogram
                "coalesce(latency_ms, 'NaN'::DOUBLE) FROM transactions "
                "WHERE run_id = ?",
                [source],
            ).values()
            tx.add_to_rollups(RollupDelta.from_columns(source, approved, cents, latency))

    # -- writes --------------------------------------------------------------------------------

    def find_idempotency_key(self, key: str) -> tuple[str, uuid.UUID] | None:
        """(request hash, transaction id) recorded for ``key``, or None."""
        rows = self.query(
            "SELECT request_hash, transaction_id FROM idempotency_keys WHERE key = ?", [key]
        )
        return rows[0] if rows else None

    def purge_idempotency_keys(self, older_than: datetime) -> int:
        """Forget keys recorded before ``older_than``; return how many."""
        with self.write() as tx:
            return tx.execute("DELETE FROM idempotency_keys WHERE created_at < ?", [older_than])

    def reset(self) -> None:
        """Delete all transactions, audit entries, disputes, runs, rollups and the shadow and
        route in force in one transaction."""
        with self.write() as tx:
            for table in (
                "transactions",
                "audit_log",
                "runs",
                "stats_rollup",
                "latency_histogram",
                "idempotency_keys",
                "simulation_keys",
                "disputes",
                "policy_experiments",  # their windows and audit entries go with the rows
            ):
                tx.execute(f"DELETE FROM {table}")
            self._pending.cleared = True

    # -- reads ---------------------------------------------------------------------------------

    def fetch_transaction(self, transaction_id: uuid.UUID) -> dict[str, Any] | None:
        """One stored transaction as a column → value dict, or None."""
        stored = ReadTx(self._cursor(), self).named_row(_SELECT_ROW, [transaction_id])
        if stored is None:
            return None
        stored["card_bin"] = f"{stored['card_bin']:06d}"  # stored as numbers (schema v6)
        stored["card_last4"] = f"{stored['card_last4']:04d}"
        if stored.get("merchant_category") is not None:  # an MCC, stored as a number (v13)
            stored["merchant_category"] = f"{stored['merchant_category']:04d}"
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

    def backup(self) -> Path:
        """Write a verified online backup beside the database file; return its path.

        The writer lock is held for a CHECKPOINT only; one backup runs at a time. A source
        that fails its checksums is refused (:class:`~engine.backup.BackupRefusedError`) and
        recorded in :attr:`integrity_error`."""
        if self.path is None:
            raise StoreError("An in-memory database has no file to back up; set PTSIM_DB.")
        if self._closed:
            raise StoreError("The database is closed; restart the process.")
        with self._backup_lock:
            try:
                return take_backup(self._con, self.path, self._write_lock)
            except BackupRefusedError as exc:
                if exc.source_damage:
                    self.integrity_error = exc.source_damage
                    log.error("%s", exc)
                raise

    def file_size_bytes(self) -> int:
        """Size of the database file plus its WAL (0 in memory)."""
        if self.path is None:
            return 0
        wal = self.path.with_name(self.path.name + ".wal")
        return sum(p.stat().st_size for p in (self.path, wal) if p.exists())
