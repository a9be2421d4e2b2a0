"""Bulk synthetic runs: start, follow, cancel, list and hash them.

:class:`Simulations` is the part of :class:`~engine.service.Engine` that owns simulation runs, as
:class:`~engine.live.LiveWriter` owns the live path; the engine holds one and delegates to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from engine.errors import BusyError, NotFoundError
from engine.simulation import records
from engine.simulation.keys import SimulationKeys
from engine.simulation.pacing import RunPacer
from engine.simulation.params import RunRecord, SimulationParams
from engine.simulation.runner import Progress, SimulationCancelled, execute_run
from engine.transaction_row import content_hash_sql

if TYPE_CHECKING:
    from engine.decision import Decider
    from engine.ids import IdAllocator
    from engine.store import Store

log = logging.getLogger("ptsim.simulation")
BACKGROUND_CHUNK_ROWS = 100_000  # a ~0.2 s append: live payments never wait long behind a run
BUSY_RETRY_AFTER_S = 30  # a 5M-row run takes minutes; a sooner retry would mostly be refused again

CONTENT_SQL = content_hash_sql()  # the run's deterministic columns, in event order


class Simulations:
    """Bulk synthetic generation runs over one store: start, follow, cancel, list, hash.

    At start-up, runs a dead process left 'running' are marked interrupted."""

    def __init__(
        self,
        store: Store,
        ids: IdAllocator,
        card_key: bytes,
        active_decider: Callable[[], Decider],
        max_running: int = 2,
        pacer: RunPacer | None = None,
    ) -> None:
        self.store = store
        self._ids = ids
        self._card_key = card_key
        self._active_decider = active_decider
        self._max_running = max_running
        self._pacer = pacer
        self._sim_threads: dict[int, tuple[threading.Thread, threading.Event]] = {}
        self._sim_lock = threading.Lock()
        # held by a start from creating its record to registering its thread, and by a reset
        # from stopping the runs to clearing the store: no start slips between the two
        self._start_lock = threading.Lock()
        self._keys = SimulationKeys(store)
        abandoned = records.mark_abandoned_runs(store)
        if abandoned:
            log.warning("simulation runs %s were left running and are now interrupted", abandoned)

    def stop_all(self) -> None:
        """Ask background runs to stop (they end 'interrupted') and wait for them."""
        with self._sim_lock:
            running = list(self._sim_threads.values())
        for _, cancel in running:
            cancel.set()
        for thread, _ in running:
            thread.join(timeout=60)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Stop every background run and hold off new starts for the block (a reset runs in it).

        A start racing the reset either registered its run before (and is stopped here) or
        starts after the block, with a new id. A run that outlives the stop's wait cannot write
        either: each chunk checks, in its own transaction, that its run record still exists."""
        with self._start_lock:
            self.stop_all()
            yield

    def _prepare_run(
        self, params: SimulationParams | dict, key: tuple[str, str] | None = None
    ) -> tuple[SimulationParams, int, Decider]:
        if not isinstance(params, SimulationParams):
            params = SimulationParams.model_validate(params)
        decider = self._active_decider()
        run_id = records.create_run(self.store, params, decider.policy.version, key)
        return params, run_id, decider

    def simulate(
        self, params: SimulationParams | dict, progress: Progress | None = None
    ) -> RunRecord:
        """Generate a run synchronously and return its record.

        ``progress(rows_written, rows_planned)`` is called after each committed chunk. Ctrl-C
        (or an exception from ``progress``) stops the run: committed chunks stay, the record is
        marked interrupted (or failed) with a true ``rows_written``, and the exception propagates.
        """
        params, run_id, decider = self._prepare_run(params)
        execute_run(self.store, self._ids, self._card_key, decider, run_id, params, progress)
        return self.get_run(run_id)

    def start_simulation(
        self, params: SimulationParams | dict, key: tuple[str, str] | None = None
    ) -> int:
        """Start a run in a background thread; return its id at once (follow it with
        :meth:`get_run`). Chunks are capped at :data:`BACKGROUND_CHUNK_ROWS` rows: each holds
        the write lock while it is appended, and live payments wait for it; while they flow,
        the pacer (if any) writes smaller slices and pauses between them. ``key`` (an
        Idempotency-Key and its request hash) is committed with the run's record."""
        if not isinstance(params, SimulationParams):
            params = SimulationParams.model_validate(params)
        if params.chunk_rows > BACKGROUND_CHUNK_ROWS:  # chunking never changes the rows
            params = params.model_copy(update={"chunk_rows": BACKGROUND_CHUNK_ROWS})
        with self._start_lock:
            return self._launch(params, key)

    def _launch(self, params: SimulationParams, key: tuple[str, str] | None) -> int:
        """Create the record and register and start the thread (under the start lock).

        Beyond ``max_running`` background runs, nothing is created: :class:`BusyError`. A run's
        memory is bounded (its chunks are capped and at most two wait while one is written; its
        population grows with ``rows``, which the API caps), so the bound on runs bounds theirs."""
        with self._sim_lock:
            running = len(self._sim_threads)
        if running >= self._max_running:
            raise BusyError(
                f"{running} simulation runs are already running (PTSIM_MAX_CONCURRENT_SIMULATIONS"
                f"={self._max_running}); retry when one has finished.",
                BUSY_RETRY_AFTER_S,
            )
        params, run_id, decider = self._prepare_run(params, key)
        cancel = threading.Event()

        def work() -> None:
            try:
                execute_run(
                    self.store,
                    self._ids,
                    self._card_key,
                    decider,
                    run_id,
                    params,
                    cancel=cancel,
                    pacer=self._pacer,
                )
            except SimulationCancelled:
                log.warning("simulation run %s was cancelled; it is marked interrupted", run_id)
            except BaseException:
                log.exception("simulation run %s stopped", run_id)
            finally:
                with self._sim_lock:
                    self._sim_threads.pop(run_id, None)

        thread = threading.Thread(target=work, name=f"ptsim-sim-{run_id}", daemon=True)
        with self._sim_lock:
            self._sim_threads[run_id] = (thread, cancel)
        thread.start()
        return run_id

    def start_simulation_idempotent(
        self, params: SimulationParams | dict, key: str
    ) -> tuple[int, bool]:
        """:meth:`start_simulation` under an Idempotency-Key: (run id, replayed?). The same key
        with other parameters raises :class:`IdempotencyConflictError`."""
        if not isinstance(params, SimulationParams):
            params = SimulationParams.model_validate(params)
        return self._keys.start(key, params, self.start_simulation)

    def cancel_simulation(self, run_id: int) -> bool:
        """Ask a background run to stop; False when it is not running in this process."""
        with self._sim_lock:
            entry = self._sim_threads.get(run_id)
        if entry is None:
            return False
        entry[1].set()
        return True

    def get_run(self, run_id: int) -> RunRecord:
        """A run's record: status, progress, rows written, parameters, seed, policy version,
        timings and summary. Raises :class:`NotFoundError`."""
        return records.get_run(self.store, run_id)

    def list_runs(self) -> list[RunRecord]:
        """Every run, newest first."""
        return records.list_runs(self.store)

    def run_content_hash(self, run_id: int) -> str:
        """SHA-256 over a run's deterministic columns in event order (id and run_id excluded):
        equal for equal seed, parameters and card key, whatever the chunk size."""
        self.get_run(run_id)  # NotFoundError for unknown runs
        return content_hash(self.store, run_id)


def content_hash(store: Store, run_id: int) -> str:
    """SHA-256 over run ``run_id``'s deterministic columns in event order, as the store reads
    them (a lake run's too, inside :meth:`Store.reading_lake`). Raises :class:`NotFoundError`
    when the run has no rows."""
    rows, digest = batches_digest(store.batches(CONTENT_SQL, [run_id], 200_000))
    if rows == 0:
        raise NotFoundError(f"Simulation run {run_id} has no rows.")
    return digest


def batches_digest(batches: Iterable[pa.RecordBatch]) -> tuple[int, str]:
    """(rows, SHA-256) of record batches' columns, independent of where the batches split:
    each column's validity, lengths and values go into streams of their own, so the same rows
    read as other batches (a Parquet lake's files, the database's row groups) hash the same."""
    streams: dict[str, hashlib._Hash] = {}
    rows = 0
    for batch in batches:
        rows += batch.num_rows
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            _hash_column(streams, name, column)
    total = hashlib.sha256(str(rows).encode())
    for key in sorted(streams):
        total.update(key.encode() + streams[key].digest())
    return rows, total.hexdigest()


def _hash_column(streams: dict[str, hashlib._Hash], name: str, column: pa.Array) -> None:
    """Feed a column's nulls, string lengths and values to its streams."""

    def feed(part: str, data: bytes | memoryview) -> None:
        streams.setdefault(f"{name}/{part}", hashlib.sha256()).update(data)

    if pa.types.is_dictionary(column.type):  # ENUM columns: hash the labels, as for strings
        column = column.dictionary_decode()
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    feed("valid", valid.astype(np.uint8).tobytes())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        filled = column.fill_null("").cast(pa.large_string())
        offsets = np.frombuffer(filled.buffers()[1], dtype=np.int64)[
            filled.offset : filled.offset + len(filled) + 1
        ]
        feed("lengths", np.diff(offsets).tobytes())
        data = filled.buffers()[2]
        if data is not None:
            feed("values", memoryview(data)[offsets[0] : offsets[-1]])
    else:
        values = column.fill_null(False if pa.types.is_boolean(column.type) else 0)
        feed("values", values.to_numpy(zero_copy_only=False).tobytes())
