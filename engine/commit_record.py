"""A small record beside the database of what has been committed, to catch lost commits.

DuckDB replays its write-ahead log (WAL) at start-up and silently stops at the first entry that
is torn or fails its checksum; a deleted or zeroed WAL replays nothing. Either way payments that
were answered 201 can vanish with no error. ``<db>.commits`` holds the number of transaction
rows and the newest transaction id after every commit (48 bytes, one ``pwrite``, a CRC-32), so
the next start compares it with what the database actually replayed and says what is missing.

The record is written *after* DuckDB's commit has returned (the WAL is already synced), so it
never claims more than was durable: a mismatch is always real. It is synced to disk at most
once a second (:data:`SYNC_INTERVAL_S`), not per commit, so the live path pays one ``pwrite``
per group; after a power loss (not a process crash: the page cache survives those) the record
may lag by up to that interval and a loss inside it goes undetected.
"""

from __future__ import annotations

import os
import struct
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_MAGIC = b"PTSIMCR1"
_LAYOUT = struct.Struct("<8sQ16sI")  # magic, rows, newest id, crc32 of the preceding fields
SYNC_INTERVAL_S = 1.0


def record_path(db_path: Path) -> Path:
    """Where the commit record of ``db_path`` lives."""
    return db_path.with_name(db_path.name + ".commits")


@dataclass(frozen=True, slots=True)
class Committed:
    """How many transaction rows were committed, and the newest id among them."""

    rows: int
    newest_id: uuid.UUID | None


def id_time(transaction_id: uuid.UUID | None) -> datetime | None:
    """When an id was allocated (ids carry a millisecond timestamp in the UUIDv7 layout)."""
    if transaction_id is None:
        return None
    return datetime.fromtimestamp((transaction_id.int >> 80) / 1000, UTC)


def read_record(db_path: Path) -> Committed | None:
    """The last record written for ``db_path``, or None when absent or unreadable."""
    try:
        data = record_path(db_path).read_bytes()
    except OSError:
        return None
    if len(data) < _LAYOUT.size:
        return None
    magic, rows, newest, crc = _LAYOUT.unpack_from(data)
    if magic != _MAGIC or zlib.crc32(data[: _LAYOUT.size - 4]) != crc:
        return None
    return Committed(rows, None if newest == bytes(16) else uuid.UUID(bytes=newest))


class CommitRecord:
    """The open record file of one database; :meth:`write` after every commit."""

    def __init__(self, db_path: Path, initial: Committed) -> None:
        self._fd = os.open(record_path(db_path), os.O_RDWR | os.O_CREAT, 0o600)
        self._synced_at = 0.0
        self.committed = initial
        self.write(initial, sync=True)

    def write(self, committed: Committed, sync: bool = False) -> None:
        """Record ``committed``; sync to disk if asked or if the last sync is a second old."""
        newest = committed.newest_id.bytes if committed.newest_id else bytes(16)
        head = _LAYOUT.pack(_MAGIC, committed.rows, newest, 0)[:-4]
        os.pwrite(self._fd, head + struct.pack("<I", zlib.crc32(head)), 0)
        self.committed = committed
        now = time.monotonic()
        if sync or now - self._synced_at >= SYNC_INTERVAL_S:
            os.fdatasync(self._fd)
            self._synced_at = now

    def close(self) -> None:
        """Sync and close the file."""
        os.fdatasync(self._fd)
        os.close(self._fd)
