"""Idempotency-Key handling for starting simulation runs (same semantics as payments)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable

from engine.errors import IdempotencyConflictError
from engine.simulation.params import SimulationParams
from engine.store import Store


class SimulationKeys:
    """Maps an Idempotency-Key to the run it started; a different request is a conflict."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()  # serializes keyed starts: one run per key

    def start(
        self,
        key: str,
        params: SimulationParams,
        start: Callable[[SimulationParams, tuple[str, str]], int],
    ) -> tuple[int, bool]:
        """(run id, replayed?) for ``params`` under ``key``. ``start(params, (key, hash))``
        launches a new run and must store the key in the transaction creating its record."""
        digest = hashlib.sha256(
            json.dumps(params.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()
        with self._lock:
            rows = self._store.query(
                "SELECT request_hash, run_id FROM simulation_keys WHERE key = ?", [key]
            )
            if rows:
                if rows[0][0] != digest:
                    raise IdempotencyConflictError(
                        "This Idempotency-Key already started a run with other parameters; "
                        "use a new key for a new run."
                    )
                return int(rows[0][1]), True
            return start(params, (key, digest)), False
