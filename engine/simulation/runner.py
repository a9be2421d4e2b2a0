"""Run a simulation: stream → features → decisions → Arrow → DuckDB, one transaction per chunk.

A producer thread generates chunk k+1 (numpy releases the GIL for most of it) while the calling
thread appends chunk k (DuckDB releases it too), so the two cores overlap. Each chunk commits its
rows, the run's stats rollups and the run's ``rows_written`` in one transaction: whatever stops a
run (Ctrl-C, an exception, a crash), the record never claims rows it does not have.

Status: ``running`` → ``completed``; Ctrl-C or a cancel request → ``interrupted``; any other
exception → ``failed`` (committed chunks stay; the record says how many).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from engine.decision import ChallengeInputs, Decider, Decisions, risk_score
from engine.errors import EngineError
from engine.features import (
    CHANNELS,
    NO_GBP,
    FeatureColumns,
    HistoryCounts,
    HistoryTracker,
    device_trust,
    normalize,
)
from engine.fx import gbp_pence, rate_arrays
from engine.ids import IdAllocator
from engine.rule_inputs import TRUST_ATTRIBUTES, BatchFacts, rule_inputs
from engine.rules import Coded
from engine.simulation import records
from engine.simulation.adaptive import AttackerMemory
from engine.simulation.pacing import RunPacer
from engine.simulation.params import SimulationParams
from engine.simulation.population import (
    CURRENCIES,
    TEST_BINS,
    Population,
    stream_rng,
)
from engine.simulation.rows import Rows
from engine.simulation.stream import adapts, pieces
from engine.simulation.summary import RunSummary
from engine.simulation.table import transactions_table
from engine.simulation.world import WorldColumns, world_columns
from engine.simulation.world import labels as world_labels
from engine.store import RollupDelta, Store

log = logging.getLogger("ptsim.simulation")
Progress = Callable[[int, int], None]  # (rows_written, rows_planned)
_QUEUE_DEPTH = 2  # chunks ready while one is written: bounded memory, and the producer
# keeps working through the writer's slower chunks (1 -> 2: ~+3% rows/s at 10M)
_DONE = object()
_GBP_RATES = rate_arrays(CURRENCIES)  # indexed by the population's currency codes
CHALLENGE_STREAM = 14  # the spawn key of the run's challenge draws (issue 14)
_ECOMMERCE = CHANNELS.index("ecommerce")


class SimulationCancelled(EngineError):
    """The run was asked to stop (its record is marked interrupted)."""


@dataclass(frozen=True, slots=True)
class DecidedChunk:
    """A chunk ready to append, with what it adds to the rollups and the summary."""

    table: pa.Table
    rollup: RollupDelta
    rows: Rows
    approved: np.ndarray
    reason: np.ndarray  # int8 Reason codes (review marks and challenge outcomes among them)
    gbp_pence: np.ndarray  # NO_GBP without a reference rate
    card_offset: int = 0  # its shard's first card among the run's cards (engine/simulation/shards)

    def add_to(self, summary: RunSummary) -> None:
        """Count the chunk's decisions, labels, amounts and cards (by their codes in the whole
        run) into ``summary``."""
        summary.add(
            self.approved,
            self.rows.scenario,  # type: ignore[arg-type]
            self.rows.amount_cents,
            reason=self.reason,
            gbp_pence=self.gbp_pence,
            card=self.rows.card + self.card_offset,
        )


class Timings:
    """Seconds spent per stage (stages of the producer overlap with writing)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the block's duration to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def as_dict(self) -> dict[str, float]:
        """Rounded to the millisecond."""
        return {k: round(v, 3) for k, v in self.seconds.items()}


def decided_chunks(
    params: SimulationParams,
    pop: Population,
    decider: Decider,
    run_id: int,
    timings: Timings,
) -> Iterator[DecidedChunk]:
    """The run's chunks, each with history features and decisions (pure computation).

    Device trust counts a pair's approved payments once a day old (:data:`SETTLE_MS`), so a
    policy that reads it decides each chunk in the tracker's parts of less than a day, each
    part's approvals fed back before the next part's trust is computed; a policy that does not
    decides each chunk at once and settles its trust after. Either way: exactly the live
    path's values, whatever the chunk size.

    A run with adaptive attackers (:mod:`.adaptive`) is decided in pieces that end before each
    of their weekly reviews (:func:`.stream.pieces`), each piece's decisions fed back to them
    before the stream goes on; the decided pieces of a chunk are joined for writing."""
    tracker = HistoryTracker()
    labels = _Labels(pop)
    # one draw per row in event order from the run's own stream: the same numbers whatever the
    # chunking (a partition starting at row k can bit_generator.advance(k) to its first draw)
    challenge_rng = stream_rng(params.seed, CHALLENGE_STREAM)
    memory = AttackerMemory() if adapts(params) else None
    stream = pieces(params, pop, params.write_chunk_rows, memory)
    reads_trust = bool(decider.attributes & TRUST_ATTRIBUTES)
    done: list[_Piece] = []
    while True:
        with timings.stage("generate_s"):
            item = next(stream, None)
        if item is None:
            if done:
                yield _joined(done, pop, decider, run_id, timings)
            return
        rows, ends_chunk = item
        challenge_draw = challenge_rng.random(len(rows))
        decided = _decided(
            rows, challenge_draw, pop, decider, timings, tracker, labels, reads_trust, params.seed
        )
        if memory is not None:
            memory.observe(rows.scenario, rows.amount_cents, decided.decisions.approved)
        done.append(decided)
        if ends_chunk:
            yield _joined(done, pop, decider, run_id, timings)
            done = []


@dataclass(frozen=True, slots=True)
class _Piece:
    """A decided piece of the stream: its rows and every column the table is built from."""

    rows: Rows
    pence: np.ndarray
    counts: HistoryCounts
    features: FeatureColumns
    decisions: Decisions
    world: WorldColumns
    challenge_draw: np.ndarray  # float64, one per row


def _decided(
    rows: Rows,
    challenge_draw: np.ndarray,
    pop: Population,
    decider: Decider,
    timings: Timings,
    tracker: HistoryTracker,
    labels: _Labels,
    reads_trust: bool,
    seed: int,
) -> _Piece:
    """One piece of the stream with history features and decisions (see
    :func:`decided_chunks`)."""
    with timings.stage("features_s"):
        pence = _gbp_pence(rows)
        counts = tracker.update(rows.card, rows.device, rows.currency, rows.t_ms, pence)
        world = world_columns(rows, pop, seed)
    chunk = _Chunk(rows, pence, counts, world, challenge_draw, pop, decider, labels, timings)
    if reads_trust:
        parts = [chunk.decide_part(tracker, i, part) for i, part in enumerate(tracker.blocks)]
        features = _concat([f for f, _ in parts])
        decisions = _concat([d for _, d in parts])
    else:
        features, decisions = chunk.decide_then_settle(tracker)
    return _Piece(rows, pence, counts, features, decisions, world, challenge_draw)


def _joined(
    parts: list[_Piece], pop: Population, decider: Decider, run_id: int, timings: Timings
) -> DecidedChunk:
    """Decided pieces as one chunk to write: their columns joined, one Arrow table built (a
    table of many batches compresses worse in DuckDB, and joining tables costs more)."""
    piece = parts[0] if len(parts) == 1 else _Piece(*(_concat([getattr(p, f.name) for p in parts])
                                                     for f in fields(_Piece)))  # fmt: skip
    rows, decisions = piece.rows, piece.decisions
    with timings.stage("arrow_s"):
        table = transactions_table(
            rows,
            pop,
            piece.counts,
            piece.features,
            decisions,
            run_id,
            decider.policy.version,
            piece.pence,
            piece.world,
        ).append_column("challenge_draw", pa.array(piece.challenge_draw, pa.float64()))
        rollup = RollupDelta.from_columns(
            run_id, decisions.approved, rows.amount_cents, rows.latency_ms
        )
    return DecidedChunk(table, rollup, rows, decisions.approved, decisions.reason, piece.pence)


@dataclass(frozen=True, slots=True)
class _Chunk:
    """A chunk's rows and history counts, with what deciding them needs."""

    rows: Rows
    pence: np.ndarray
    counts: HistoryCounts
    world: WorldColumns
    challenge_draw: np.ndarray  # float64, one per row
    pop: Population
    decider: Decider
    labels: _Labels
    timings: Timings

    def decide_part(
        self, tracker: HistoryTracker, index: int, part: slice
    ) -> tuple[FeatureColumns, Decisions]:
        """Features and decisions of one part (:attr:`HistoryTracker.blocks`); its approvals
        then join the tracker's settled pair history."""
        whole = part.start == 0 and part.stop == len(self.rows)
        rows = self.rows if whole else self.rows.take(part)
        pence = self.pence if whole else self.pence[part]
        counts = self.counts if whole else self.counts.take(part)
        world = (
            self.world if whole else WorldColumns(self.world.ip[part], self.world.ip_country[part])
        )
        challenge_draw = self.challenge_draw if whole else self.challenge_draw[part]
        with self.timings.stage("features_s"):
            features = normalize(counts, rows.device >= 0, rows.channel, tracker.settled(index))
        with self.timings.stage("decide_s"):
            decisions = self._decide(rows, pence, counts, world, features, challenge_draw)
        with self.timings.stage("features_s"):
            tracker.decided(index, decisions.approved, rows.label_at_ms)
        return features, decisions

    def decide_then_settle(self, tracker: HistoryTracker) -> tuple[FeatureColumns, Decisions]:
        """Features and decisions of the whole chunk when the policy reads no device trust:
        its decisions do not depend on it, so they are made first (trust unknown yet), the
        chunk's trust is settled from them in one pass, and the decisions take the risk score
        of the real trust (the one thing in them that trust moves)."""
        rows, counts = self.rows, self.counts
        has_device = rows.device >= 0
        with self.timings.stage("features_s"):
            unsettled = normalize(counts, has_device, rows.channel, None)  # trust not known yet
        with self.timings.stage("decide_s"):
            decisions = self._decide(
                rows, self.pence, counts, self.world, unsettled, self.challenge_draw
            )
        with self.timings.stage("features_s"):
            pairs = tracker.settled_chunk(decisions.approved, rows.label_at_ms)
            trust = device_trust(counts, has_device, pairs)
            features = replace(unsettled, device_trust_score=trust)
        with self.timings.stage("decide_s"):
            decisions = replace(decisions, score=self._score(rows, features))
        return features, decisions

    def _score(self, rows: Rows, features: FeatureColumns) -> np.ndarray:
        return risk_score(
            rows.amount_cents,
            features.spending_velocity,
            features.device_trust_score,
            features.ip_risk_score,
            self.decider.policy.score_weights,
        )

    def _decide(
        self,
        rows: Rows,
        pence: np.ndarray,
        counts: HistoryCounts,
        world: WorldColumns,
        features: FeatureColumns,
        challenge_draw: np.ndarray,
    ) -> Decisions:
        score = self._score(rows, features)
        facts = BatchFacts(
            amount_cents=rows.amount_cents,
            gbp_pence=pence,
            has_device=rows.device >= 0,
            card_bin=_BINS[self.pop.card_bin[rows.card]],
            counts=counts,
            features=features,
            score=score,
            t_ms=rows.t_ms,
            draw=rows.draw,
            text=self.labels.coded(rows, world),
        )
        challenge = ChallengeInputs(challenge_draw, rows.channel == _ECOMMERCE, rows.is_fraud)
        values, missing = rule_inputs(facts, self.decider.attributes)
        return self.decider.decide(score, values, missing, challenge)


def _concat(parts: list[Any]) -> Any:
    """Column-wise dataclasses (features, decisions) or arrays of consecutive parts as one."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return type(parts[0])(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(parts[0]))
    )


_BINS = np.array([int(b) for b in TEST_BINS], dtype=np.int64)
_CURRENCY_LABELS = np.array(CURRENCIES, dtype=object)
_CHANNEL_LABELS = np.array(CHANNELS, dtype=object)


class _Labels:
    """A run's text attributes as codes into label arrays built once per run (the compiled
    rules test each label set once, by identity), each only when a rule first reads it."""

    def __init__(self, pop: Population) -> None:
        self._pop = pop
        self._merchants: np.ndarray | None = None
        self._devices: np.ndarray | None = None
        self._cards: np.ndarray | None = None

    def coded(self, rows: Rows, world: WorldColumns) -> dict[str, Callable[[], Coded]]:
        """Producers of each text attribute of ``rows``."""
        pop, place = self._pop, world_labels()
        return {
            "merchant_category": lambda: Coded(
                pop.merchant_category[rows.merchant], place["merchant_category"]
            ),
            "merchant_country": lambda: Coded(
                pop.merchant_country[rows.merchant], place["country"]
            ),
            "card_country": lambda: Coded(pop.card_country[rows.card], place["country"]),
            "ip_country": lambda: Coded(world.ip_country, place["ip_country"]),
            "currency": lambda: Coded(rows.currency, _CURRENCY_LABELS),
            "channel": lambda: Coded(rows.channel, _CHANNEL_LABELS),
            "merchant": lambda: Coded(rows.merchant, self.merchants()),
            "device_id": lambda: Coded(np.maximum(rows.device, 0), self.devices()),
            "card": lambda: Coded(rows.card, self.cards()),
        }

    def merchants(self) -> np.ndarray:
        if self._merchants is None:
            self._merchants = np.asarray(self._pop.merchant_names.to_pylist(), dtype=object)
        return self._merchants

    def devices(self) -> np.ndarray:
        if self._devices is None:
            self._devices = np.asarray(self._pop.device_names.to_pylist(), dtype=object)
        return self._devices

    def cards(self) -> np.ndarray:
        if self._cards is None:
            self._cards = np.ascontiguousarray(self._pop.card_digest).view("S16").ravel()
        return self._cards


def _gbp_pence(rows: Rows) -> np.ndarray:
    """Each row's amount in GBP pence (``NO_GBP`` without a reference rate)."""
    numerators, denominators = (rates[rows.currency] for rates in _GBP_RATES)
    pence, known = gbp_pence(rows.amount_cents, numerators, denominators)
    return np.where(known, pence, NO_GBP)


class _Producer(threading.Thread):
    """Runs :func:`decided_chunks` ahead of the writer through a small queue."""

    def __init__(self, source: Iterator[DecidedChunk]) -> None:
        super().__init__(name="ptsim-sim-producer", daemon=True)
        self._source = source
        self.queue: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the writer, which re-raises it
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stop producing and wait for the thread."""
        self.stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self.queue.get_nowait()
        self.join()


RunEnd = Literal["completed", "interrupted", "failed"]


@contextlib.contextmanager
def recorded_end(finish: Callable[[RunEnd, str | None, float], None]) -> Iterator[None]:
    """Run the block, then ``finish(status, error, seconds)`` however it ended: completed;
    interrupted by Ctrl-C or a cancel; failed with the error's description. What stopped the
    block is re-raised after ``finish``."""
    start = time.perf_counter()
    status: RunEnd = "completed"
    error = None
    try:
        yield
    except (KeyboardInterrupt, SimulationCancelled) as exc:
        status, error = "interrupted", _describe(exc)
        raise
    except BaseException as exc:
        status, error = "failed", _describe(exc)
        raise
    finally:
        finish(status, error, time.perf_counter() - start)


@contextlib.contextmanager
def produced_ahead(
    chunks: Iterator[DecidedChunk], cancel: threading.Event | None = None, run_id: int = 0
) -> Iterator[Iterator[DecidedChunk]]:
    """``chunks``, computed a small queue ahead by a background thread, so generating the next
    chunk overlaps writing this one. Iterating re-raises what the producer raised, and raises
    :class:`SimulationCancelled` (naming ``run_id``) once ``cancel`` is set; leaving the block,
    however it is left, stops the thread."""
    producer = _Producer(chunks)
    producer.start()

    def produced() -> Iterator[DecidedChunk]:
        while True:
            if cancel is not None and cancel.is_set():
                raise SimulationCancelled(f"Simulation run {run_id} was cancelled.")
            item = producer.queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, DecidedChunk)
            yield item

    try:
        yield produced()
    finally:
        producer.close()


def execute_run(
    store: Store,
    ids: IdAllocator,
    card_key: bytes,
    decider: Decider,
    run_id: int,
    params: SimulationParams,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    pacer: RunPacer | None = None,
) -> None:
    """Generate and persist run ``run_id`` (created by :func:`records.create_run`) and finish
    its record. Re-raises what stopped it, after marking the record interrupted or failed.
    ``pacer`` (server runs) makes the run give way to live payments while they flow."""
    timings = Timings()
    summary = RunSummary()

    def finish(status: RunEnd, error: str | None, total: float) -> None:
        timings.seconds["total_s"] = total
        result = timings.as_dict()
        result["rows_per_s"] = round(summary.rows / total, 1) if total > 0 else 0.0
        try:
            records.finish_run(store, run_id, status, result, summary.as_dict(), error)
        except Exception:
            log.exception("could not record the end of simulation run %s", run_id)
        log.info("simulation run %s %s: %s rows in %.1f s", run_id, status, summary.rows, total)

    with recorded_end(finish):
        # shard after shard (one shard up to SHARD_ROWS rows): a seed's rows are the same as
        # in a lake generated by a cluster (engine/simulation/shards.py imports this module)
        from engine.simulation.shards import run_chunks

        chunks = run_chunks(params, card_key, decider, run_id, timings)
        with produced_ahead(chunks, cancel, run_id) as produced:
            for chunk in produced:
                _write_chunk(store, ids, run_id, chunk, summary, timings, pacer, cancel)
                if progress is not None:
                    progress(summary.rows, params.rows)


def _write_chunk(
    store: Store,
    ids: IdAllocator,
    run_id: int,
    chunk: DecidedChunk,
    summary: RunSummary,
    timings: Timings,
    pacer: RunPacer | None,
    cancel: threading.Event | None,
) -> None:
    """Write a chunk in one transaction, or in the pacer's slices (one transaction each, with
    a pause after each while live payments flow)."""
    parts = pacer.slices(len(chunk.rows)) if pacer is not None else [slice(0, len(chunk.rows))]
    for part in parts:
        if cancel is not None and cancel.is_set():
            raise SimulationCancelled(f"Simulation run {run_id} was cancelled.")
        started = time.perf_counter()
        with timings.stage("write_s"):
            _write_part(
                store,
                ids,
                run_id,
                chunk if len(parts) == 1 else _part(chunk, part, run_id),
                summary,
            )
        if pacer is not None:
            with timings.stage("paced_s"):
                pacer.yield_after(time.perf_counter() - started, cancel)


def _part(chunk: DecidedChunk, part: slice, run_id: int) -> DecidedChunk:
    """Rows ``part`` of a chunk, with their own rollups."""
    rows = chunk.rows.take(part)
    approved = chunk.approved[part]
    table = chunk.table.slice(part.start, part.stop - part.start)
    rollup = RollupDelta.from_columns(run_id, approved, rows.amount_cents, rows.latency_ms)
    return DecidedChunk(
        table, rollup, rows, approved, chunk.reason[part], chunk.gbp_pence[part], chunk.card_offset
    )


def _write_part(
    store: Store, ids: IdAllocator, run_id: int, chunk: DecidedChunk, summary: RunSummary
) -> None:
    """Rows, rollups and rows_written in one transaction (ids allocated in insertion order)."""
    rows = chunk.rows
    after = copy.deepcopy(summary)
    chunk.add_to(after)
    with store.write() as tx:
        tx.append_transactions(chunk.table.add_column(0, "id", ids.next_block(len(rows))))
        tx.add_to_rollups(chunk.rollup)
        if not records.record_progress(tx, run_id, after.rows, after.as_dict()):
            # checked in the chunk's own transaction: no row ever names a run that is gone
            raise SimulationCancelled(f"Simulation run {run_id} was deleted by a reset.")
    for name in RunSummary.__slots__:
        setattr(summary, name, getattr(after, name))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return str(exc) or type(exc).__name__
