"""Online backups beside the database, and start-up recovery of a damaged file or WAL.

A backup is written by DuckDB itself (``COPY FROM DATABASE`` into a freshly attached file) inside
one read transaction: MVCC gives it a consistent snapshot without the writer lock, so payments
keep committing while it runs. The copy is then opened read-only and every column of every table
is read (which makes DuckDB check every block's checksum) and its row counts compared with the
snapshot's; only then is ``backup-<time>.partial`` renamed to ``backup-<time>.duckdb``. So every
file named ``backup-*.duckdb`` was verified, the keep-:data:`KEEP_BACKUPS` rotation only ever
removes verified backups in favour of a newer verified one, and a source block that fails its
checksum makes the backup fail loudly instead of copying the damage.

Start-up, when the database does not open (:func:`salvage_wal`, :func:`recover_if_damaged`):

1. a WAL that fails to replay is moved aside (``<db>.wal.damaged-<time>``, bytes unchanged) and
   its intact prefix, up to the entry DuckDB names as corrupt, is replayed; if DuckDB names no
   entry (a damaged WAL header) the database opens without the WAL;
2. only if the database file itself does not open is it moved aside and the newest backup
   restored.

Each step is reported (ERROR log, console, ``GET /health``), never silent.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from engine.commit_record import record_path
from engine.errors import StoreError

log = logging.getLogger("ptsim.backup")
KEEP_BACKUPS = 3
_STAMP = "%Y%m%dT%H%M%S%fZ"
_ALIAS = "ptsim_backup"  # the attached copy's name inside the server's connection
_CORRUPT_ENTRY = re.compile(r"Corrupt WAL file: entry at byte position (\d+)")
CORRUPT_BLOCK = "Corrupt database file"  # DuckDB's message when a block fails its checksum


class BackupRefusedError(StoreError):
    """The backup was not written (the source failed its checksums, or the copy its check)."""


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What start-up recovery did."""

    damaged_file: Path
    moved_to: Path
    restored_from: Path
    backup_taken_at: datetime
    error: str

    def message(self) -> str:
        """One loud paragraph for logs, the console and /health (file names, not paths)."""
        return (
            f"The database {self.damaged_file.name} could not be opened ({self.error}). It was "
            f"moved to {self.moved_to.name} and the backup {self.restored_from.name} taken at "
            f"{self.backup_taken_at:%Y-%m-%d %H:%M:%S} UTC was restored: payments committed "
            "after that time may be missing (the damaged file is kept for inspection)."
        )


def _stamp() -> str:
    return datetime.now(UTC).strftime(_STAMP)


def wal_path(db_path: Path) -> Path:
    """DuckDB's write-ahead log of ``db_path``."""
    return db_path.with_name(db_path.name + ".wal")


def backup_dir(db_path: Path) -> Path:
    """Where backups of ``db_path`` are kept."""
    return db_path.with_name(db_path.name + ".backups")


def list_backups(db_path: Path) -> list[Path]:
    """Verified backups of ``db_path``, oldest first."""
    folder = backup_dir(db_path)
    return sorted(folder.glob("backup-*.duckdb")) if folder.exists() else []


def remove_partial_backups(db_path: Path) -> list[Path]:
    """Delete what a backup killed midway left (``*.partial`` and its WAL); return them."""
    folder = backup_dir(db_path)
    leftovers = sorted(folder.glob("backup-*.partial*")) if folder.exists() else []
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def _taken_at(backup: Path) -> datetime:
    stamp = backup.stem.removeprefix("backup-")
    return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _first_line(error: object) -> str:
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__


def take_backup(con: duckdb.DuckDBPyConnection, db_path: Path) -> Path:
    """Copy the database into a verified backup beside it; keep the newest :data:`KEEP_BACKUPS`.

    Holds no writer lock: the copy reads one MVCC snapshot on its own cursor. Raises
    :class:`BackupRefusedError` (existing backups untouched) when the source fails its checksums
    or the copy fails verification.
    """
    folder = backup_dir(db_path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = folder / f"backup-{_stamp()}.duckdb"
    partial = target.with_suffix(".partial")
    try:
        counts = _copy_snapshot(con, partial)
        _verify(partial, counts)
    except BaseException:
        partial.unlink(missing_ok=True)
        wal_path(partial).unlink(missing_ok=True)
        raise
    partial.rename(target)  # only a verified copy ever gets a backup's name
    _sync_directory(folder)
    for old in list_backups(db_path)[:-KEEP_BACKUPS]:
        old.unlink(missing_ok=True)
    log.info("backup written to %s", target.name)
    return target


def _copy_snapshot(con: duckdb.DuckDBPyConnection, partial: Path) -> dict[str, int]:
    """``COPY FROM DATABASE`` into ``partial`` in one read transaction; the snapshot's row
    counts per table. The attached file gets the source's storage format."""
    cur = con.cursor()
    try:
        source, storage = cur.execute(
            "SELECT database_name, tags['storage_version'] FROM duckdb_databases() "
            "WHERE database_name = current_database()"
        ).fetchone()
        if isinstance(storage, list):  # DuckDB 1.x answers a MAP lookup with a list
            storage = storage[0] if storage else None
        version = re.match(r"v\d+\.\d+\.\d+", storage or "")  # the tag reads e.g. 'v2.0.0+'
        option = f" (STORAGE_VERSION '{version.group(0)}')" if version else ""
        cur.execute(f"ATTACH {_quoted(partial)} AS {_ALIAS}{option}")
        try:
            cur.begin()
            counts = _row_counts(cur, source)
            cur.execute(f'COPY FROM DATABASE "{source}" TO {_ALIAS}')
            cur.commit()
        except BaseException:
            cur.rollback()
            raise
        finally:
            cur.execute(f"DETACH {_ALIAS}")  # closes the copy's file
    except duckdb.Error as exc:
        if CORRUPT_BLOCK in str(exc):
            raise BackupRefusedError(
                f"Backup refused: the database fails its checksums ({_first_line(exc)}); it is "
                "damaged, so existing backups were kept untouched — stop the server and restore "
                "one with `ptsim restore`."
            ) from exc
        raise StoreError(f"Backup failed: the copy did not complete ({_first_line(exc)}).") from exc
    finally:
        cur.close()
    return counts


def _row_counts(cur: duckdb.DuckDBPyConnection, database: str) -> dict[str, int]:
    tables = cur.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY table_name",
        [database],
    ).fetchall()
    return {
        name: cur.execute(f'SELECT count(*) FROM "{database}".main."{name}"').fetchone()[0]
        for (name,) in tables
    }


def _verify(backup: Path, expected: dict[str, int]) -> None:
    """Open ``backup`` read-only and read every column of every table: DuckDB checks each block's
    checksum as it reads it (``count`` alone is answered from metadata, so each column is hashed).
    The row counts must be the snapshot's."""
    try:
        con = duckdb.connect(str(backup), read_only=True, config={"threads": 1})
    except duckdb.Error as exc:
        raise BackupRefusedError(
            f"Backup refused: the copy does not open ({_first_line(exc)}); nothing was kept."
        ) from exc
    try:
        found = _row_counts(con, con.execute("SELECT current_database()").fetchone()[0])
        if found != expected:
            raise BackupRefusedError(
                f"Backup refused: the copy's row counts {found} differ from the database's "
                f"{expected}; nothing was kept."
            )
        for table in found:
            con.execute(f'SELECT count(*), max(hash(COLUMNS(*))) FROM "{table}"').fetchall()
    except duckdb.Error as exc:
        raise BackupRefusedError(
            f"Backup refused: the copy fails its check ({_first_line(exc)}); nothing was kept."
        ) from exc
    finally:
        con.close()


def _sync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore_backup(backup: Path, db_path: Path) -> Path | None:
    """Put ``backup`` in place of ``db_path`` (the process must not have it open).

    The current file, its WAL and its commit record, if any, are moved aside (``.replaced-``)
    and the file's new path returned: the restored file starts a fresh commit record, so its
    older contents are not reported as lost.
    """
    if not backup.exists():
        raise StoreError(f"The backup {backup.name} does not exist; see `ptsim backup --list`.")
    duckdb.connect(str(backup), read_only=True).close()  # refuse a backup that does not open
    stamp = _stamp()
    moved = None
    if db_path.exists():
        moved = db_path.with_name(f"{db_path.name}.replaced-{stamp}")
        db_path.rename(moved)
    for companion in (wal_path(db_path), record_path(db_path)):
        if companion.exists():
            companion.rename(companion.with_name(f"{companion.name}.replaced-{stamp}"))
    shutil.copyfile(backup, db_path)
    return moved


def salvage_wal(
    db_path: Path, error: Exception, connect: Callable[[], duckdb.DuckDBPyConnection]
) -> tuple[duckdb.DuckDBPyConnection, str] | None:
    """When ``db_path`` failed to open because its WAL does not replay: keep the WAL aside,
    replay its intact prefix (or open without it) and return (connection, what was done).

    None when the failure is not the WAL's or the database file does not open even without it
    (then :func:`recover_if_damaged` restores a backup; the WAL stays aside).
    """
    wal = wal_path(db_path)
    if "WAL" not in str(error) or not wal.exists():
        return None
    kept = db_path.with_name(f"{wal.name}.damaged-{_stamp()}")
    wal.rename(kept)
    size = kept.stat().st_size
    reason = _first_line(error).replace(str(db_path.parent) + os.sep, "")  # names, not paths
    match = _CORRUPT_ENTRY.search(str(error))
    if match and 0 < int(match.group(1)) < size:
        intact = int(match.group(1))
        _copy_prefix(kept, wal, intact)
        try:
            con = connect()
        except StoreError:
            wal.unlink(missing_ok=True)
        else:
            return con, (
                f"The write-ahead log of {db_path.name} failed to replay ({reason}). Its intact "
                f"first {intact:,} of {size:,} bytes were replayed; what was committed after "
                f"that point is lost. The log as found is kept as {kept.name}."
            )
    try:
        con = connect()
    except StoreError:
        return None
    return con, (
        f"The write-ahead log of {db_path.name} failed to replay ({reason}) and no intact part "
        "of it could be found: the database was opened as of its last checkpoint, so what was "
        f"committed after that is lost. The log as found is kept as {kept.name}."
    )


def _copy_prefix(source: Path, target: Path, length: int) -> None:
    with source.open("rb") as src, target.open("wb") as dst:
        dst.write(src.read(length))
        dst.flush()
        os.fsync(dst.fileno())


def recover_if_damaged(db_path: Path, error: Exception) -> RecoveryReport:
    """Called when ``db_path`` fails to open for a reason other than a lock or its WAL: restore
    the newest backup, or raise :class:`StoreError` saying what to do when there is none."""
    backups = list_backups(db_path)
    if not backups:
        raise StoreError(
            f"The database {db_path} could not be opened ({_first_line(error)}) and there is no "
            f"backup in {backup_dir(db_path)}; move the file aside or set PTSIM_DB to another path."
        )
    newest = backups[-1]
    moved = db_path.with_name(f"{db_path.name}.damaged-{_stamp()}")
    db_path.rename(moved)
    wal = wal_path(db_path)
    if wal.exists():
        wal.rename(moved.with_name(moved.name + ".wal"))
    shutil.copyfile(newest, db_path)
    report = RecoveryReport(
        damaged_file=db_path,
        moved_to=moved,
        restored_from=newest,
        backup_taken_at=_taken_at(newest),
        error=_first_line(error),
    )
    log.error(report.message())
    return report
