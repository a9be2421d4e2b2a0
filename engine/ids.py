"""Transaction ids: UUIDs with the UUIDv7 layout, strictly increasing in insertion order.

Because ids grow with insertion, each DuckDB row group covers a narrow id range and its min/max
statistics (zone maps) let a point lookup skip all other row groups: no index to maintain, so bulk
appends stay fast and lookups stay around a millisecond at ten million rows.
"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pyarrow as pa

_VERSION_BITS = 0x7000
_VARIANT = 0x8000_0000_0000_0000


class IdAllocator:
    """Hands out increasing ids, one at a time or in blocks; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._seq = 0

    def _reserve(self, count: int) -> tuple[int, int]:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms, self._seq = now_ms, 0
            first = self._seq
            self._seq += count
            return self._last_ms, first

    def next_id(self) -> uuid.UUID:
        """One new id."""
        ms, seq = self._reserve(1)
        return uuid.UUID(int=((ms << 16 | _VERSION_BITS) << 64) | _VARIANT | seq)

    def next_block(self, count: int) -> pa.Array:
        """``count`` consecutive new ids as an Arrow ``binary(16)`` array (stored as UUIDs)."""
        ms, first = self._reserve(count)
        words = np.empty((count, 2), dtype=">u8")
        words[:, 0] = (ms << 16) | _VERSION_BITS
        words[:, 1] = np.arange(first, first + count, dtype=np.uint64) | np.uint64(_VARIANT)
        return pa.Array.from_buffers(pa.binary(16), count, [None, pa.py_buffer(words.tobytes())])


def parse_id(text: str) -> uuid.UUID | None:
    """The UUID in ``text``, or None when it is not one (callers answer 404)."""
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return None
