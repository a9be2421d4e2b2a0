"""The event stream of a run: simulated hours of legitimate and fraud rows, in event order.

Hour ``h`` draws its legitimate traffic from generator ``(seed, 2, h)`` and the fraud episodes
starting in it from ``(seed, 3, h)``; episode rows that fall in later hours wait in a pending
buffer. The stream is a pure function of the parameters, so chunking it differently (or
resuming it in another process) cannot change a row.

Row counts: hour ``h`` plans ``c_h`` rows (multinomial, see :func:`population.hour_counts`).
Episode rows landing in the hour take planned slots; the rest are legitimate. If episode rows
exceed an hour's plan, the excess is borrowed from the next hours, and the stream stops at
exactly ``rows`` rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from engine.simulation.params import SimulationParams
from engine.simulation.population import (
    HOUR_MS,
    Population,
    hour_counts,
    hour_starts_ms,
    legit_rows,
    stream_rng,
)
from engine.simulation.rows import Rows
from engine.simulation.scenarios import context, episode_rates, episodes_for_hour


def hourly_blocks(params: SimulationParams, pop: Population) -> Iterator[Rows]:
    """Yield each simulated hour's rows in event order (ties: legitimate rows first)."""
    counts = hour_counts(params)
    starts = hour_starts_ms(params)
    ctx = context(params, int(starts[0]))
    rates = episode_rates(params, counts, starts, ctx)
    pending = Rows.empty()
    debt = emitted = 0
    for h, t0 in enumerate(starts.tolist()):
        if rates[h].any():
            new = episodes_for_hour(stream_rng(params.seed, 3, h), pop, rates[h], t0, ctx)
            if len(new):
                pending = Rows.concat([pending, new])
                pending = pending.take(np.argsort(pending.t_ms, kind="stable"))
        cut = int(np.searchsorted(pending.t_ms, t0 + HOUR_MS, side="left"))
        landing, pending = pending.take(slice(0, cut)), pending.take(slice(cut, None))
        need = int(counts[h]) - debt
        n_legit = max(need - len(landing), 0)
        debt = n_legit + len(landing) - need
        rows = legit_rows(stream_rng(params.seed, 2, h), pop, n_legit, t0)
        rows = rows.merged_by_time(landing)
        if emitted + len(rows) > params.rows:
            rows = rows.take(slice(0, params.rows - emitted))
        emitted += len(rows)
        if len(rows):
            yield rows
        if emitted >= params.rows:
            return


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
