"""The stream computes many simulated hours at once, and that changes no row.

The reference below is the stream as it was written before: every hour drawn and computed alone
(``legit_hours`` of one hour) and merged with its fraud rows alone.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from engine.simulation.adaptive import REVIEW_HOURS
from engine.simulation.latency_model import TIMEOUT_MS
from engine.simulation.params import SimulationParams
from engine.simulation.population import (
    HOUR_MS,
    build_population,
    hour_counts,
    hour_starts_ms,
    legit_hours,
    stream_rng,
)
from engine.simulation.rows import FRIENDLY_CODE, Rows
from engine.simulation.scenarios import context, episode_rates, episodes_for_hour
from engine.simulation.stream import BLOCK_ROWS, chunks, hourly_blocks

KEY = b"stream-blocks-test-key"


def _hour_by_hour(params: SimulationParams, pop) -> Rows:
    counts = hour_counts(params)
    starts = hour_starts_ms(params)
    ctx = context(params, int(starts[0]))
    rates = episode_rates(params, counts, starts, ctx)
    pending, out = Rows.empty(), []
    debt = emitted = 0
    for h, t0 in enumerate(starts.tolist()):
        if rates[h].any():
            new = episodes_for_hour(stream_rng(params.seed, 3, h), pop, rates[h], t0, ctx)
            pending = Rows.concat([pending, new])
            pending = pending.take(np.argsort(pending.t_ms, kind="stable"))
        cut = int(np.searchsorted(pending.t_ms, t0 + HOUR_MS, side="left"))
        landing, pending = pending.take(slice(0, cut)), pending.take(slice(cut, None))
        need = int(counts[h]) - debt
        n_legit = max(need - len(landing), 0)
        debt = n_legit + len(landing) - need
        rows = legit_hours([stream_rng(params.seed, 2, h)], pop, [n_legit], [t0])
        rows = rows.merged_by_time(landing)  # (friendly fraud and disputes: drawn per block)
        rows = rows.take(slice(0, params.rows - emitted))
        emitted += len(rows)
        out.append(rows)
        if emitted >= params.rows:
            break
    return Rows.concat(out)


@pytest.mark.parametrize(
    "fields_",
    [
        {"rows": 150_000, "seed": 3, "days": 60, "fraud_rate": 0.05},  # 3 blocks, timeouts
        {"rows": 3_000, "seed": 5, "days": 30, "fraud_rate": 0.5},  # fraud beyond hours' plans
        {"rows": 20_000, "seed": 9, "days": 1, "fraud_rate": 0.3},
    ],
)
def test_blocks_of_hours_give_the_rows_of_hour_by_hour(fields_: dict) -> None:
    params = SimulationParams(**fields_)
    pop = build_population(params, KEY)
    expected = _hour_by_hour(params, pop)
    got = Rows.concat(list(chunks(params, pop, 40_000)))
    assert len(got) == params.rows
    # friendly fraud and the observed disputes are drawn per block, after the rows
    # (test_simulation_difficulty.py): they label genuine rows, and change nothing else
    for field in (f for f in fields(Rows) if f.name not in ("label_at_ms", "dispute")):
        value = getattr(got, field.name)
        if field.name == "scenario":
            value = np.where(value == FRIENDLY_CODE, -1, value)
        np.testing.assert_array_equal(value, getattr(expected, field.name))
    if params.rows >= 100_000:  # the hours' last draw, stand-in latencies, was exercised
        assert (got.latency_ms > TIMEOUT_MS).any()


def test_a_long_small_run_is_computed_in_few_blocks_of_whole_hours() -> None:
    params = SimulationParams(rows=150_000, seed=3, days=60)  # 1,440 hours
    pop = build_population(params, KEY)
    blocks = list(hourly_blocks(params, pop))
    # 9, not one per hour: a block ends at BLOCK_ROWS rows or after a week (the adaptive
    # attackers' review), here always the week
    assert len(blocks) == -(-params.days * 24 // REVIEW_HOURS) > -(-params.rows // BLOCK_ROWS)
    hours = [int(b.t_ms[-1]) // HOUR_MS - int(b.t_ms[0]) // HOUR_MS + 1 for b in blocks[:-1]]
    long = [len(b) >= BLOCK_ROWS or h == REVIEW_HOURS for b, h in zip(blocks, hours, strict=False)]
    assert all(long)
    ends = [int(b.t_ms[-1]) // HOUR_MS for b in blocks[:-1]]
    starts = [int(b.t_ms[0]) // HOUR_MS for b in blocks[1:]]
    assert all(s > e for s, e in zip(starts, ends, strict=True))  # no hour split
