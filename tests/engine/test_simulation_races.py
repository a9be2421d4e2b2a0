"""Resets racing simulation starts: no row outlives its run record, no run id is reused."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from engine.service import Engine
from engine.simulation import facade

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN = {"rows": 20_000, "seed": 3, "days": 1, "chunk_rows": 2_000}
ROUNDS = 6


@pytest.fixture
def sim_engine(tmp_path: Path):
    # a round starts three runs; on a slow machine a reset can land before all three start,
    # with the first two still running: the bound on concurrent runs is not what is tested here
    eng = Engine.open(tmp_path / "races.duckdb", card_key="races-key", max_concurrent_simulations=3)
    try:
        yield eng
    finally:
        eng.close()


def orphans(eng: Engine) -> list[tuple[str, int]]:
    """Run ids that rows, rollups or keys name but no run record has."""
    found = []
    for table, column in (
        ("transactions", "run_id"),
        ("stats_rollup", "source"),
        ("latency_histogram", "source"),
        ("simulation_keys", "run_id"),
    ):
        rows = eng.store.query(
            f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL "
            f"AND {column} NOT IN (SELECT id FROM runs)"
        )
        found += [(table, r[0]) for r in rows]
    return found


def test_randomized_resets_racing_starts_leave_no_orphans_and_reuse_no_id(
    sim_engine: Engine,
) -> None:
    rng = random.Random(11)
    started: list[int] = []
    for _ in range(ROUNDS):
        delays = [rng.uniform(0, 0.03) for _ in range(3)]
        reset_after = rng.uniform(0, 0.08)

        def starter(delays: list[float] = delays) -> None:
            for delay in delays:
                time.sleep(delay)
                started.append(sim_engine.start_simulation(RUN))

        def resetter(delay: float = reset_after) -> None:
            time.sleep(delay)
            sim_engine.reset()

        threads = [threading.Thread(target=starter), threading.Thread(target=resetter)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sim_engine.simulations.stop_all()
        assert orphans(sim_engine) == []
    assert len(started) == len(set(started)) == 3 * ROUNDS  # ids never reused after a reset


def test_reset_landing_between_record_and_thread_start_stops_the_run(
    sim_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The widest window: a reset begins just after a start committed its record."""
    create_run = facade.records.create_run
    resets: list[threading.Thread] = []

    def create_then_reset(*args, **kwargs):  # type: ignore[no-untyped-def]
        run_id = create_run(*args, **kwargs)
        reset = threading.Thread(target=sim_engine.reset)
        reset.start()
        resets.append(reset)
        reset.join(timeout=0.3)  # without the start lock the reset completes here
        return run_id

    monkeypatch.setattr(facade.records, "create_run", create_then_reset)
    first = sim_engine.start_simulation(RUN)
    monkeypatch.undo()
    resets[0].join()
    sim_engine.simulations.stop_all()
    assert orphans(sim_engine) == []
    assert sim_engine.start_simulation(RUN) > first
    sim_engine.simulations.stop_all()


def test_keyed_start_killed_after_creating_its_run_replays_that_run(tmp_path: Path) -> None:
    """SIGKILL as the run's thread is launched (its record committed): the replay answers that
    run, never a second one, because the key was committed with the record."""
    db = tmp_path / "keyed.duckdb"
    script = textwrap.dedent(
        f"""
        import os, signal, threading
        from engine.service import Engine
        eng = Engine.open({str(db)!r}, card_key="races-key")
        threading.Thread.start = lambda self: os.kill(os.getpid(), signal.SIGKILL)
        eng.start_simulation_idempotent({RUN!r}, "crash-key")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, timeout=120
    )
    assert done.returncode == -9, done.stderr.decode()
    with Engine.open(db, card_key="races-key") as eng:
        (first,) = eng.list_runs()
        assert first.status == "interrupted"
        run_id, replayed = eng.start_simulation_idempotent(RUN, "crash-key")
        assert (run_id, replayed) == (first.id, True)
        assert [run.id for run in eng.list_runs()] == [first.id]
