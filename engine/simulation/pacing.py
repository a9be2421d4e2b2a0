"""Pacing: a server run gives way to live payments while they flow.

A run and the live path share one DuckDB writer and, on a small machine, the same cores. While a
run appends a 100,000-row chunk (about 0.2 s), every live payment waits behind it; and the run's
generator competes with the event loop for the CPU. So while live payments flow (a group was
decided in the last second: :meth:`engine.live.LiveWriter.recently_active`), a paced run writes
each chunk in slices of ``slice_rows`` rows, one transaction each, and after each slice waits
``factor`` times as long as the slice took to write: a payment then waits at most one small
slice, and the run takes at most ``1 / (1 + factor)`` of the writer. Without live traffic the
run writes whole chunks at full speed. Slicing changes transactions, never rows: each slice
commits its rows, its rollups and the run's progress together, like a chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

PACED_SLICE_ROWS = 4_000  # a ~15 ms append: the longest a payment waits behind a paced run


class RunPacer:
    """Decides how a chunk is written and how long the run then yields.

    ``live_active()`` says whether live payments are flowing now; ``factor`` is the pause after
    each slice as a multiple of its write time (0 turns pacing off)."""

    def __init__(
        self,
        live_active: Callable[[], bool],
        factor: float,
        slice_rows: int = PACED_SLICE_ROWS,
    ) -> None:
        self._live_active = live_active
        self.factor = factor
        self.slice_rows = slice_rows

    def slices(self, rows: int) -> list[slice]:
        """The transactions a chunk of ``rows`` rows is written in: one, unless live traffic
        flows (then slices of :attr:`slice_rows`)."""
        if self.factor <= 0 or rows <= self.slice_rows or not self._live_active():
            return [slice(0, rows)]
        return [
            slice(at, min(at + self.slice_rows, rows)) for at in range(0, rows, self.slice_rows)
        ]

    def yield_after(self, write_seconds: float, cancel: threading.Event | None) -> None:
        """Pause after a write of ``write_seconds`` while live traffic flows (a cancel request
        ends the pause at once)."""
        if self.factor <= 0 or not self._live_active():
            return
        pause = self.factor * write_seconds
        if cancel is not None:
            cancel.wait(pause)
        else:
            threading.Event().wait(pause)
