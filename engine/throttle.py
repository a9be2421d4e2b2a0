"""Per-client token buckets: the one throttling mechanism of every front-end."""

from __future__ import annotations

import threading
import time


class TokenBuckets:
    """One token bucket per client: ``rate`` tokens a second, at most ``burst`` saved up.

    The one throttling mechanism: payments per client (the API's rate limit middleware) and wrong
    admin tokens per client (the API's admin routes and the dashboard's admin prompt share
    :attr:`engine.service.Engine.admin_failures`). Thread-safe; forgets clients whose
    bucket is full again once it tracks more than ``max_clients``, so it cannot grow without bound.
    """

    def __init__(self, rate: float, burst: float, max_clients: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        """0 when ``client`` has a token, else seconds until it will (takes nothing)."""
        with self._lock:
            tokens = self._tokens(client, time.monotonic())
            return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, client: str) -> float:
        """Take a token: 0 when one was taken, else seconds until one is available."""
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(client, now)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate

    def _tokens(self, client: str, now: float) -> float:
        if len(self._buckets) > self.max_clients:
            self._forget_full(now)
        tokens, last = self._buckets.get(client, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def _forget_full(self, now: float) -> None:
        refill_s = self.burst / self.rate
        self._buckets = {c: v for c, v in self._buckets.items() if now - v[1] < refill_s}


def admin_failure_buckets(per_second: float) -> TokenBuckets:
    """Wrong admin tokens per client (``PTSIM_ADMIN_FAILURE_LIMIT``): a minute's worth at once,
    then one every ``1 / per_second`` s. The engine keeps one, so a guess through the API and a
    guess through the dashboard draw on the same budget."""
    return TokenBuckets(per_second, max(1, round(per_second * 60)))
