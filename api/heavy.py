"""A bounded pool for heavy analytics (backtests, /stats over a time range).

Heavy requests used to run in the thread pool every route shares: 60 concurrent backtests took
all its threads and ``/health`` waited 16.9 s (p50). They now run on their own few threads behind
a bounded queue; a request beyond it answers 429 with ``Retry-After`` at once, and the shared
pool stays free for ``/health``, lookups and ``/stats``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from engine.errors import BusyError

T = TypeVar("T")
RETRY_AFTER_S = 5  # about one backtest over a few million rows


class HeavyWork:
    """``workers`` threads plus at most ``queue`` waiting jobs; more raise :class:`BusyError`."""

    def __init__(self, workers: int, queue: int) -> None:
        self._pool: ThreadPoolExecutor | None = None  # made on first use, again after shutdown
        self._workers = workers
        self._capacity = workers + queue
        self._lock = threading.Lock()
        self.in_flight = 0  # running + waiting; released when the job ends, not when the client
        # goes away, so a disconnected client's job still counts while it occupies a thread

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the analytics pool and await its result."""
        with self._lock:
            if self.in_flight >= self._capacity:
                raise BusyError(
                    f"The analytics queue is full ({self._workers} running, "
                    f"{self._capacity - self._workers} waiting; PTSIM_ANALYTICS_WORKERS, "
                    f"PTSIM_ANALYTICS_QUEUE); retry after {RETRY_AFTER_S} s.",
                    RETRY_AFTER_S,
                )
            self.in_flight += 1
            if self._pool is None:  # an app's lifespan may run more than once (tests)
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="ptsim-analytics")
            pool = self._pool
        future = pool.submit(fn, *args)
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _: object) -> None:
        with self._lock:
            self.in_flight -= 1

    def shutdown(self) -> None:
        """Drop waiting jobs; running ones finish on their threads."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


async def get_heavy(request: Request) -> HeavyWork:
    """The app's analytics pool (``async``: resolved on the event loop, no thread hop)."""
    return request.app.state.heavy


HeavyDep = Annotated[HeavyWork, Depends(get_heavy)]
