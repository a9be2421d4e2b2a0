"""The event stream of a run: simulated hours of legitimate and fraud rows, in event order.

Hour ``h`` draws its legitimate traffic from generator ``(seed, 2, h)`` and the scenario
episodes starting in it from ``(seed, 3, h)``; episode rows that fall in later hours wait in a
pending buffer. The friendly fraud and observed disputes of a block of hours (about
:data:`BLOCK_ROWS` rows of whole hours) come from ``(seed, 4, its first hour)``
(:mod:`.outcomes`). The stream is a pure function of the parameters (and, with adaptive
attackers, of the decisions fed back before each weekly review: :mod:`.adaptive`), so chunking
it differently (or resuming it in another process) cannot change a row.

Row counts: hour ``h`` plans ``c_h`` rows (multinomial, see :func:`population.hour_counts`).
Episode rows landing in the hour take planned slots; the rest are legitimate. If episode rows
exceed an hour's plan, the excess is borrowed from the next hours, and the stream stops at
exactly ``rows`` rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from engine.errors import EngineError
from engine.simulation.adaptive import ADAPTIVE, REVIEW_HOURS, AttackerMemory
from engine.simulation.outcomes import mark_friendly_fraud, observe_disputes
from engine.simulation.params import Knobs, SimulationParams
from engine.simulation.population import (
    HOUR_MS,
    Population,
    hour_counts,
    hour_starts_ms,
    legit_hours,
    stream_rng,
)
from engine.simulation.rows import Rows
from engine.simulation.scenarios import context, episode_rates, episodes_for_hour

BLOCK_ROWS = 65_536  # legitimate rows drawn hour by hour, then computed at once


def adapts(params: SimulationParams) -> bool:
    """Whether a run has adaptive attackers (:mod:`.adaptive`): its decisions then shape it."""
    mix = params.mix_shares()
    return (
        params.knobs().adaptation > 0
        and params.fraud_rate > 0
        and any(mix[name] > 0 for name in ADAPTIVE)
    )


def hourly_blocks(
    params: SimulationParams, pop: Population, memory: AttackerMemory | None = None
) -> Iterator[Rows]:
    """Yield the stream in event order (ties: legitimate rows first), in blocks of whole
    simulated hours of about :data:`BLOCK_ROWS` rows, cut at every :data:`REVIEW_HOURS`-th hour
    of the run too: a block's legitimate rows are computed at once (:func:`legit_hours`), so the
    cost per simulated hour is only its draws.

    With a ``memory``, the adaptive attackers review it at every :data:`REVIEW_HOURS`-th hour:
    the consumer must have fed back (:meth:`AttackerMemory.observe`) every row yielded before."""
    for rows, _ in _blocks(params, pop, memory):
        yield rows


def _blocks(
    params: SimulationParams, pop: Population, memory: AttackerMemory | None
) -> Iterator[tuple[Rows, bool]]:
    """:func:`hourly_blocks`, each block with whether a review follows it."""
    counts = hour_counts(params)
    starts = hour_starts_ms(params)
    ctx = context(params, int(starts[0]))
    rates = episode_rates(params, counts, starts, ctx)
    pending = Rows.empty()
    debt = emitted = 0
    block = _Block(params.seed, params.knobs())
    for h, t0 in enumerate(starts.tolist()):
        if memory is not None and h % REVIEW_HOURS == 0:  # the rings review (a block starts)
            if memory.observed != emitted:
                raise EngineError(
                    f"The adaptive attackers were fed back {memory.observed:,} decided rows of "
                    f"{emitted:,}; decide every yielded row before asking for more."
                )
            ctx = replace(ctx, tactics=memory.review())
        if rates[h].any():
            new = episodes_for_hour(stream_rng(params.seed, 3, h), pop, rates[h], t0, ctx)
            if len(new):
                pending = Rows.concat([pending, new])
                pending = pending.take(np.argsort(pending.t_ms, kind="stable"))
        landing, pending = _landing(pending, t0 + HOUR_MS)
        need = int(counts[h]) - debt
        n_legit = max(need - len(landing), 0)
        debt = n_legit + len(landing) - need
        block.add(h, stream_rng(params.seed, 2, h), n_legit, t0, landing)
        emitted += n_legit + len(landing)
        review_next = (h + 1) % REVIEW_HOURS == 0
        if emitted >= params.rows or block.rows >= BLOCK_ROWS or review_next:
            rows = block.take(pop)
            if emitted > params.rows:  # the last hour's rows beyond the run's count
                rows = rows.take(slice(0, len(rows) - (emitted - params.rows)))
            if len(rows):
                yield rows, review_next
            if emitted >= params.rows:
                return
    rows = block.take(pop)
    if len(rows):
        yield rows, False


def _landing(pending: Rows, hour_end_ms: int) -> tuple[Rows, Rows]:
    """(the pending rows before ``hour_end_ms``, the rest); most hours take none or all."""
    cut = int(np.searchsorted(pending.t_ms, hour_end_ms, side="left")) if len(pending) else 0
    if cut == 0:
        return _NONE, pending
    if cut == len(pending):
        return pending, _NONE
    return pending.take(slice(0, cut)), pending.take(slice(cut, None))


_NONE = Rows.empty()


class _Block:
    """Consecutive hours waiting to be computed: each hour's generator, legitimate row count
    and start, and the scenario rows landing in it."""

    def __init__(self, seed: int, knobs: Knobs) -> None:
        self.seed, self.knobs = seed, knobs
        self._clear()

    def _clear(self) -> None:
        self.first_hour = -1
        self.rngs: list[np.random.Generator] = []
        self.counts: list[int] = []
        self.starts: list[int] = []
        self.landing: list[Rows] = []
        self.rows = 0

    def add(
        self, hour: int, rng: np.random.Generator, n_legit: int, t0: int, landing: Rows
    ) -> None:
        if not self.rngs:
            self.first_hour = hour
        self.rngs.append(rng)
        self.counts.append(n_legit)
        self.starts.append(t0)
        if len(landing):
            self.landing.append(landing)
        self.rows += n_legit + len(landing)

    def take(self, pop: Population) -> Rows:
        """The block's rows in event order, with their friendly fraud and disputes drawn from
        generator ``(seed, 4, first hour)``; the block is then empty. Each hour's scenario rows fall
        within it and the hours are in order, so one merge of the block equals a merge per
        hour."""
        if not self.rngs:
            return Rows.empty()
        legit = legit_hours(self.rngs, pop, self.counts, self.starts)
        rows = legit.merged_by_time(Rows.concat(self.landing)) if self.landing else legit
        rng = stream_rng(self.seed, 4, self.first_hour)
        rows = mark_friendly_fraud(rng, rows, self.knobs.friendly_fraud_rate)
        rows = observe_disputes(rng, rows, self.knobs)
        self._clear()
        return rows


def pieces(
    params: SimulationParams, pop: Population, chunk_rows: int, memory: AttackerMemory | None
) -> Iterator[tuple[Rows, bool]]:
    """The stream as (rows, whether they end a chunk of ``chunk_rows``): without ``memory``,
    whole chunks (:func:`chunks`); with it, pieces that also end before every review, so that
    their decisions can be fed back before the attackers review them (:func:`hourly_blocks`).
    The consumer ends the last chunk with the stream."""
    if memory is None:
        for rows in chunks(params, pop, chunk_rows):
            yield rows, True
        return
    filled, waiting = 0, []
    for block, review_next in _blocks(params, pop, memory):
        while len(block):
            take = min(chunk_rows - filled, len(block))
            waiting.append(block.take(slice(0, take)))
            block = block.take(slice(take, None))
            filled = (filled + take) % chunk_rows
            if filled == 0:
                yield Rows.concat(waiting), True
                waiting = []
        if review_next and waiting:
            yield Rows.concat(waiting), False
            waiting = []
    if waiting:
        yield Rows.concat(waiting), False


def chunks(params: SimulationParams, pop: Population, chunk_rows: int) -> Iterator[Rows]:
    """The stream regrouped into chunks of exactly ``chunk_rows`` rows (the last may be short)."""
    buffer: list[Rows] = []
    buffered = 0
    for block in hourly_blocks(params, pop):
        buffer.append(block)
        buffered += len(block)
        while buffered >= chunk_rows:
            joined = Rows.concat(buffer)
            yield joined.take(slice(0, chunk_rows))
            rest = joined.take(slice(chunk_rows, None))
            buffer, buffered = ([rest] if len(rest) else []), len(rest)
    if buffered:
        yield Rows.concat(buffer)
