"""Online backups beside the database, and recovery of a file that no longer opens.

A backup is a byte copy of the database file taken right after a CHECKPOINT while the writer lock
is held, so the copy is a consistent, complete database. Backups live in ``<db>.backups/`` and
the newest few are kept. DuckDB can, rarely, leave a file that will not open when it is killed in
the middle of a checkpoint; :func:`recover_if_damaged` then moves the damaged file aside, puts the
newest backup in its place and returns a report saying what was restored and which window of
payments may be missing. It never happens silently: the report is logged at ERROR, printed by the
server and shown by ``GET /health``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from engine.errors import StoreError

log = logging.getLogger("ptsim.backup")
KEEP_BACKUPS = 3
_STAMP = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What start-up recovery did."""

    damaged_file: Path
    moved_to: Path
    restored_from: Path
    backup_taken_at: datetime
    error: str

    def message(self) -> str:
        """One loud paragraph for logs, the console and /health."""
        return (
            f"The database {self.damaged_file} could not be opened ({self.error}). It was moved "
            f"to {self.moved_to} and the backup {self.restored_from.name} taken at "
            f"{self.backup_taken_at:%Y-%m-%d %H:%M:%S} UTC was restored: payments committed "
            "after that time may be missing (the damaged file is kept for inspection)."
        )


def backup_dir(db_path: Path) -> Path:
    """Where backups of ``db_path`` are kept."""
    return db_path.with_name(db_path.name + ".backups")


def list_backups(db_path: Path) -> list[Path]:
    """Backups of ``db_path``, oldest first."""
    folder = backup_dir(db_path)
    return sorted(folder.glob("backup-*.duckdb")) if folder.exists() else []


def _taken_at(backup: Path) -> datetime:
    stamp = backup.stem.removeprefix("backup-")
    return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)


def take_backup(con: duckdb.DuckDBPyConnection, db_path: Path, write_lock: threading.RLock) -> Path:
    """Checkpoint and copy the database beside it; keep the newest :data:`KEEP_BACKUPS`."""
    folder = backup_dir(db_path)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"backup-{datetime.now(UTC).strftime(_STAMP)}.duckdb"
    partial = target.with_suffix(".partial")
    with write_lock:
        try:
            con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            raise StoreError(f"Backup failed: the checkpoint did not complete ({exc}).") from exc
        _copy_in_child(db_path, partial)
    partial.rename(target)  # a crash mid-copy never leaves a half backup that looks complete
    for old in list_backups(db_path)[:-KEEP_BACKUPS]:
        old.unlink(missing_ok=True)
    log.info("backup written to %s", target)
    return target


def _copy_in_child(source: Path, target: Path) -> None:
    """Copy ``source`` from a child process.

    DuckDB locks the database with POSIX ``fcntl`` locks, which belong to the process and are all
    released when *any* descriptor of the file is closed in it. Copying the open database from
    this process (``shutil.copyfile`` opens and closes it) silently dropped the server's lock, so
    after the first backup another process (``ptsim backup``, ``ptsim restore``, a second server)
    could open the live file read-write. A child's descriptors do not touch the parent's locks.
    """
    copier = "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])"
    try:
        subprocess.run(
            [sys.executable, "-I", "-c", copier, str(source), str(target)],
            check=True,
            capture_output=True,
            timeout=3600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        target.unlink(missing_ok=True)
        raise StoreError(f"Backup failed: could not copy {source} ({exc}).") from exc


def restore_backup(backup: Path, db_path: Path) -> Path | None:
    """Put ``backup`` in place of ``db_path`` (the process must not have it open).

    The current file, if any, is moved aside and its path returned.
    """
    if not backup.exists():
        raise StoreError(f"The backup {backup} does not exist; see `ptsim backup --list`.")
    duckdb.connect(str(backup), read_only=True).close()  # refuse a backup that does not open
    moved = None
    if db_path.exists():
        moved = db_path.with_name(f"{db_path.name}.replaced-{datetime.now(UTC).strftime(_STAMP)}")
        db_path.rename(moved)
    wal = db_path.with_name(db_path.name + ".wal")
    if wal.exists():
        wal.rename(wal.with_name(f"{wal.name}.replaced-{datetime.now(UTC).strftime(_STAMP)}"))
    shutil.copyfile(backup, db_path)
    return moved


def recover_if_damaged(db_path: Path, error: Exception) -> RecoveryReport:
    """Called when ``db_path`` fails to open for a reason other than a lock: restore the newest
    backup, or raise :class:`StoreError` saying what to do when there is none."""
    backups = list_backups(db_path)
    if not backups:
        raise StoreError(
            f"The database {db_path} could not be opened ({error}) and there is no backup in "
            f"{backup_dir(db_path)}; move the file aside or set PTSIM_DB to another path."
        )
    newest = backups[-1]
    stamp = datetime.now(UTC).strftime(_STAMP)
    moved = db_path.with_name(f"{db_path.name}.damaged-{stamp}")
    db_path.rename(moved)
    wal = db_path.with_name(db_path.name + ".wal")
    if wal.exists():
        wal.rename(moved.with_name(moved.name + ".wal"))
    shutil.copyfile(newest, db_path)
    report = RecoveryReport(
        damaged_file=db_path,
        moved_to=moved,
        restored_from=newest,
        backup_taken_at=_taken_at(newest),
        error=str(error).splitlines()[0][:200],
    )
    log.error(report.message())
    return report
