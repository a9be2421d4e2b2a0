"""Simulation runs are exactly reproducible: same seed and parameters → same rows, whatever the
chunk size; another seed → other rows."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import duckdb
import numpy as np
import pytest

from engine.cards import fingerprint, luhn_valid
from engine.service import Engine
from engine.simulation import SimulationParams
from engine.simulation.params import ROW_GROUP_ROWS
from engine.simulation.population import TEST_BINS, build_population
from engine.simulation.rows import Rows
from engine.simulation.stream import chunks

KEY = "simulation-test-key"
BASE = {"rows": 20_000, "seed": 42, "days": 3, "fraud_rate": 0.03}


@pytest.fixture
def sim_engine(tmp_path: Path):
    eng = Engine.open(tmp_path / "sim.duckdb", card_key=KEY, seed=1)
    try:
        yield eng
    finally:
        eng.close()


def test_same_seed_same_hash_across_chunk_sizes_and_databases(
    sim_engine: Engine, tmp_path: Path
) -> None:
    hashes = []
    # one chunk of three days, chunks of about 15 h and of about 3 h: device trust counts
    # approvals once a day old, which each chunk size cuts differently
    for chunk_rows in (20_000, 4_096, 777):
        run = sim_engine.simulate(SimulationParams(**BASE, chunk_rows=chunk_rows))
        assert run.status == "completed"
        assert run.rows_written == BASE["rows"]
        hashes.append(sim_engine.run_content_hash(run.id))
    ((settled,),) = sim_engine.store.query(
        "SELECT count(*) FROM transactions WHERE device_trust_score > 0.35"
    )
    assert settled > 600  # settled history is in play (a third of it per run)
    with Engine.open(tmp_path / "other.duckdb", card_key=KEY) as other:
        hashes.append(other.run_content_hash(other.simulate(BASE).id))
    assert len(set(hashes)) == 1


def test_a_policy_reading_trust_decides_in_parts_to_the_same_rows(sim_engine: Engine) -> None:
    """The default policy reads no device trust, so a run decides each chunk at once and
    settles its trust after; add a rule that reads trust (and never matches) and each chunk is
    decided in parts of less than a day instead: the same trust, scores and decisions, for any
    chunk size."""
    columns = (
        "SELECT device_trust_score, score, status::VARCHAR, reason_code::VARCHAR, rule_index "
        "FROM transactions WHERE run_id = ? ORDER BY id"
    )
    whole = sim_engine.store.query(columns, [sim_engine.simulate(BASE).id])
    rules = [rule.public() for rule in sim_engine.active_decider().policy.rules]
    never = {"name": "never", "action": "block", "when": ":device_trust_score: < 0"}
    sim_engine.activate_version(sim_engine.create_policy([*rules, never]).version)
    for chunk_rows in (20_000, 3_001):
        run = sim_engine.simulate(SimulationParams(**BASE, chunk_rows=chunk_rows))
        assert sim_engine.store.query(columns, [run.id]) == whole, chunk_rows
    assert len({trust for trust, *_ in whole}) > 1_000  # settled trust in play


def test_different_seed_or_params_give_a_different_hash(sim_engine: Engine) -> None:
    first = sim_engine.run_content_hash(sim_engine.simulate(BASE).id)
    other_seed = sim_engine.run_content_hash(sim_engine.simulate({**BASE, "seed": 43}).id)
    other_rate = sim_engine.run_content_hash(sim_engine.simulate({**BASE, "fraud_rate": 0.1}).id)
    others = [
        sim_engine.run_content_hash(sim_engine.simulate({**BASE, **change}).id)
        for change in (
            {"difficulty": "hard"},
            {"missed_disputes": 0.5},  # only the observed disputes differ
            {"cards": 500},
        )
    ]
    again = sim_engine.run_content_hash(sim_engine.simulate(BASE).id)
    assert again == first and len({first, other_seed, other_rate, *others}) == 6


def test_stream_is_identical_for_any_chunking() -> None:
    params = SimulationParams(**BASE)
    pop = build_population(params, KEY.encode())
    whole = list(chunks(params, pop, 10**9))
    assert len(whole) == 1 and len(whole[0]) == BASE["rows"]
    pieces = list(chunks(params, pop, 999))
    assert [len(p) for p in pieces[:-1]] == [999] * (len(pieces) - 1)
    for name in (f.name for f in fields(Rows)):  # the observed disputes included
        joined = np.concatenate([getattr(p, name) for p in pieces])
        np.testing.assert_array_equal(joined, getattr(whole[0], name))
    assert (np.diff(whole[0].t_ms) >= 0).all()  # event order


def test_cards_are_luhn_valid_test_bins_fingerprinted_like_the_live_path() -> None:
    params = SimulationParams(**BASE)
    pop = build_population(params, KEY.encode())
    sample = np.arange(0, pop.n_cards, max(pop.n_cards // 50, 1))
    for code, number in zip(sample, pop.card_numbers(sample, params.seed), strict=True):
        assert luhn_valid(number) and len(number) == 16
        assert number[:6] in TEST_BINS
        assert bytes(pop.card_digest[int(code)]) == fingerprint(number, KEY.encode()).digest
    assert len({bytes(row) for row in pop.card_digest}) == pop.n_cards


def test_exact_row_count_and_event_time_window(sim_engine: Engine) -> None:
    run = sim_engine.simulate({"rows": 12_345, "seed": 9, "days": 2, "fraud_rate": 0.2})
    count, first, last, draws = sim_engine.store.query(
        "SELECT count(*), min(created_at), max(created_at), count(DISTINCT draw) "
        "FROM transactions WHERE run_id = ?",
        [run.id],
    )[0]
    assert count == 12_345 == run.rows_written
    assert str(first) >= "2026-01-01 00:00:00" and str(last) < "2026-01-03 00:00:00"
    assert draws == count  # a stored uniform draw per row


def test_merging_by_time_equals_a_stable_sort_of_the_concatenation() -> None:

    rng = np.random.default_rng(3)

    def batch(n: int) -> Rows:
        return Rows(
            t_ms=np.sort(rng.integers(0, 20, n)),  # few distinct times: many ties
            card=rng.integers(0, 9, n),
            merchant=rng.integers(0, 9, n).astype(np.int32),
            channel=rng.integers(0, 5, n).astype(np.int8),
            device=rng.integers(-1, 9, n),
            currency=rng.integers(0, 5, n).astype(np.int8),
            amount_cents=rng.integers(1, 9, n),
            draw=rng.random(n),
            latency_ms=rng.random(n),
            scenario=rng.integers(-1, 5, n).astype(np.int8),
            label_at_ms=np.arange(n),
            dispute=rng.integers(-1, 6, n).astype(np.int8),
        )

    for _ in range(200):
        first, later = batch(int(rng.integers(0, 40))), batch(int(rng.integers(0, 10)))
        joined = Rows.concat([first, later])
        expected = joined.take(np.argsort(joined.t_ms, kind="stable"))
        merged = first.merged_by_time(later)
        for f in fields(Rows):
            got, want = getattr(merged, f.name), getattr(expected, f.name)
            assert got.dtype == want.dtype and np.array_equal(got, want), f.name


def test_runs_are_written_in_whole_row_groups() -> None:
    def chunk(rows: int, chunk_rows: int | None = None) -> int:
        asked = {} if chunk_rows is None else {"chunk_rows": chunk_rows}
        return SimulationParams(rows=rows, **asked).write_chunk_rows

    assert chunk(400_000) == ROW_GROUP_ROWS == 122_880  # four chunks, each decided ahead
    assert chunk(10_000_000) == ROW_GROUP_ROWS
    assert chunk(10_000_000, chunk_rows=500_000) == 4 * ROW_GROUP_ROWS  # rounded down
    assert chunk(100_000) == 50_000  # at most one row group: two halves
    assert chunk(30_000) == 50_000  # small runs: one chunk
    assert chunk(400_000, chunk_rows=5_000) == 5_000  # a chunk under one row group is kept


def test_the_row_group_is_duckdbs(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "groups.duckdb"))
    con.execute("CREATE TABLE t (x BIGINT)")
    con.execute("INSERT INTO t SELECT range FROM range(300000)")
    con.execute("CHECKPOINT")
    groups = con.execute(
        "SELECT sum(count) FROM pragma_storage_info('t') WHERE column_path = '[0]' "
        "GROUP BY row_group_id ORDER BY row_group_id"
    ).fetchall()
    assert [n for (n,) in groups] == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 300_000 - 2 * ROW_GROUP_ROWS]
