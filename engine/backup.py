"""Online backups beside the database, and start-up recovery of a damaged file or WAL.

A backup is a byte copy of the database file taken right after a CHECKPOINT, written and then
verified by a low-priority child process while payments keep committing (:func:`take_backup`).
The copy is opened read-only and every column of every table is read (which makes DuckDB check
every block's checksum) and its row counts compared with the checkpoint's; only then is
``backup-<time>.partial`` renamed to ``backup-<time>.duckdb``. So every file named
``backup-*.duckdb`` was verified, the keep-:data:`KEEP_BACKUPS` rotation only ever removes
verified backups in favour of a newer verified one, and a source block that fails its checksum
makes the backup fail loudly instead of copying the damage.

Start-up, when the database does not open (:func:`salvage_wal`, :func:`recover_if_damaged`):

1. a WAL that fails to replay is moved aside (``<db>.wal.damaged-<time>``, bytes unchanged) and
   its intact prefix, up to the entry DuckDB names as corrupt, is replayed; if DuckDB names no
   entry (a damaged WAL header) the database opens without the WAL;
2. only if the database file itself does not open is it moved aside and the newest backup
   restored.

Each step is reported (ERROR log, console, ``GET /health``), never silent.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from engine.commit_record import record_path
from engine.errors import StoreError

log = logging.getLogger("ptsim.backup")
KEEP_BACKUPS = 3
_STAMP = "%Y%m%dT%H%M%S%fZ"
_CORRUPT_ENTRY = re.compile(r"Corrupt WAL file: entry at byte position (\d+)")
CORRUPT_BLOCK = "Corrupt database file"  # DuckDB's message when a block fails its checksum


class BackupRefusedError(StoreError):
    """The backup was not written (the source failed its checksums, or the copy its check).

    ``source_damage`` is DuckDB's checksum message when the database file itself is damaged."""

    def __init__(self, message: str, source_damage: str | None = None) -> None:
        super().__init__(message)
        self.source_damage = source_damage


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


def take_backup(con: duckdb.DuckDBPyConnection, db_path: Path, write_lock: threading.RLock) -> Path:
    """Copy the database into a verified backup beside it; keep the newest :data:`KEEP_BACKUPS`.

    The writer lock is held only for a CHECKPOINT (what a routine automatic checkpoint costs):
    then the file holds exactly the committed state, and automatic checkpoints are paused while a
    child process copies it and verifies the copy. That is safe because DuckDB never rewrites a
    block the checkpointed header uses until the next checkpoint (a checkpoint writes new blocks,
    then the header; appends in between use free blocks or grow the file), and the copy reads
    the header first. The verification (every block's checksum, the row counts taken at the
    checkpoint) is the safety net. New commits meanwhile go to the WAL only.

    Raises :class:`BackupRefusedError` (existing backups untouched) when the source fails its
    checksums or the copy fails verification.
    """
    folder = backup_dir(db_path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = folder / f"backup-{_stamp()}.duckdb"
    partial = target.with_suffix(".partial")
    started = time.perf_counter()
    with write_lock:
        try:
            con.execute("CHECKPOINT")
            counts = _row_counts(con, con.execute("SELECT current_database()").fetchone()[0])
            (threshold,) = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
            con.execute(f"SET checkpoint_threshold = '{_PAUSED_THRESHOLD}'")
        except duckdb.Error as exc:
            raise StoreError(f"Backup failed: the checkpoint did not complete ({exc}).") from exc
    locked_ms = (time.perf_counter() - started) * 1000
    try:
        _copy_and_verify_in_child(db_path, partial, counts)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        with write_lock:  # resume automatic checkpoints (the WAL may be past the threshold now)
            con.execute(f"SET checkpoint_threshold = '{threshold.replace(' ', '')}'")
    partial.rename(target)  # only a verified copy ever gets a backup's name
    _sync_directory(folder)
    for old in list_backups(db_path)[:-KEEP_BACKUPS]:
        old.unlink(missing_ok=True)
    log.info(
        "backup written to %s (writer lock held %.0f ms for the checkpoint; %.1f s in all)",
        target.name,
        locked_ms,
        time.perf_counter() - started,
    )
    return target


_PAUSED_THRESHOLD = "1000000GB"
_COPY_CHUNK = 16 << 20


def _row_counts(cur: duckdb.DuckDBPyConnection, database: str) -> dict[str, int]:
    tables = cur.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY table_name",
        [database],
    ).fetchall()
    return {
        name: cur.execute(f'SELECT count(*) FROM "{database}".main."{name}"').fetchone()[0]
        for (name,) in tables
    }


def _copy_and_verify_in_child(source: Path, target: Path, counts: dict[str, int]) -> None:
    """Copy and verify from a child process at the lowest CPU priority.

    A child because DuckDB locks the database with POSIX ``fcntl`` locks, which belong to the
    process and are all released when *any* descriptor of the file is closed in it: copying the
    open database from this process silently dropped the server's lock. Lowest priority so the
    copy's reads and the verification's decompression leave the CPU to live payments.
    """
    code = "import sys; from engine.backup import child_main; sys.exit(child_main(sys.argv[1:]))"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(source), str(target), json.dumps(counts)],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise StoreError(f"Backup failed: could not copy {source.name} ({exc}).") from exc
    verdict = (done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode == 0 and verdict == "ok":
        return
    if verdict.startswith("source-damaged "):
        damage = verdict.split(" ", 1)[1]
        raise BackupRefusedError(
            f"Backup refused: the database fails its checksums ({damage}); it is damaged, so "
            "existing backups were kept untouched — stop the server and restore one with "
            "`ptsim restore`.",
            source_damage=damage,
        )
    detail = verdict.split(" ", 1)[-1] or (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise BackupRefusedError(f"Backup refused: the copy failed its check ({detail[:300]}).")


def child_main(argv: list[str]) -> int:
    """The backup child: copy ``argv[0]`` to ``argv[1]``, verify it against the row counts in
    ``argv[2]`` (JSON) and print one verdict line: ``ok``, ``source-damaged <why>`` or
    ``copy-bad <why>``."""
    os.nice(19)
    _die_with_parent()
    source, target, counts = Path(argv[0]), Path(argv[1]), json.loads(argv[2])
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with source.open("rb") as src, os.fdopen(fd, "wb", buffering=0) as dst:
        # Sequential from offset 0, the header first. Synced every chunk: one fsync of hundreds
        # of dirty megabytes at the end would stall the server's WAL syncs behind it.
        while chunk := src.read(_COPY_CHUNK):
            dst.write(chunk)
            os.fdatasync(dst.fileno())
    try:
        _verify(target, counts)
    except duckdb.Error as exc:
        message = _first_line(exc)
        location = re.search(r"block at location (\d+)", message)
        if location and _same_bytes(source, target, int(location.group(1))):
            print(f"source-damaged {message}")  # the original fails too: not a copying fault
        else:
            print(f"copy-bad {message}")
        return 1
    except ValueError as exc:
        print(f"copy-bad {exc}")
        return 1
    print("ok")
    return 0


def _die_with_parent() -> None:
    """Linux: be killed when the server dies (a SIGKILLed server must not leave a copier)."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _same_bytes(first: Path, second: Path, offset: int, length: int = 262_144) -> bool:
    with first.open("rb") as a, second.open("rb") as b:
        a.seek(offset)
        b.seek(offset)
        return a.read(length) == b.read(length)


def _verify(backup: Path, expected: dict[str, int]) -> None:
    """Open ``backup`` read-only and read every column of every table: DuckDB checks each block's
    checksum as it reads it (``count`` alone is answered from metadata, so each column is hashed).
    The row counts must be the checkpoint's. Raises ``duckdb.Error`` or ``ValueError``."""
    con = duckdb.connect(str(backup), read_only=True, config={"threads": 1})
    try:
        found = _row_counts(con, con.execute("SELECT current_database()").fetchone()[0])
        if found != expected:
            raise ValueError(f"row counts {found} differ from the database's {expected}")
        for table in found:
            con.execute(f'SELECT count(*), max(hash(COLUMNS(*))) FROM "{table}"').fetchall()
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
