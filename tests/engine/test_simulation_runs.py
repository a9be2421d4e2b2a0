"""Run records tell the truth: progress, interruption, failure, crashes and background runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import pytest

from engine.errors import NotFoundError
from engine.service import Engine
from engine.simulation import SCENARIOS, SimulationParams
from engine.simulation.pacing import RunPacer
from engine.simulation.runner import SimulationCancelled

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"rows": 30_000, "seed": 8, "days": 2, "fraud_rate": 0.05, "chunk_rows": 5_000}


def assert_consistent(eng: Engine, run_id: int) -> None:
    """rows_written, the rows on disk and the run's stats rollups all agree."""
    run = eng.get_run(run_id)
    count, approved, cents = eng.store.query(
        "SELECT count(*), count(*) FILTER (status = 'Approved'), "
        "coalesce(sum(CAST(amount * 100 AS BIGINT)), 0) FROM transactions WHERE run_id = ?",
        [run_id],
    )[0]
    assert run.rows_written == count
    assert run.summary.get("rows", 0) == count
    rollup = eng.store.query(
        "SELECT total, approved, amount_sum FROM stats_rollup WHERE source = ?", [run_id]
    )
    total, rolled_approved, amount = rollup[0] if rollup else (0, 0, Decimal(0))
    assert (total, rolled_approved, amount) == (count, approved, Decimal(cents).scaleb(-2))
    hist = eng.store.query(
        "SELECT coalesce(sum(n), 0) FROM latency_histogram WHERE source = ?", [run_id]
    )[0][0]
    assert hist == count


@pytest.fixture
def sim_engine(tmp_path: Path):
    eng = Engine.open(tmp_path / "runs.duckdb", card_key="runs-key")
    try:
        yield eng
    finally:
        eng.close()


def test_completed_run_record(sim_engine: Engine) -> None:
    seen: list[tuple[int, int]] = []
    run = sim_engine.simulate(PARAMS, progress=lambda w, p: seen.append((w, p)))
    assert seen == [(5_000 * k, 30_000) for k in range(1, 7)]
    assert run.status == "completed" and run.progress == 1.0 and run.error is None
    assert run.seed == 8 and run.params["rows"] == 30_000 and run.rows_planned == 30_000
    assert run.policy_version == sim_engine.active_policy().version
    assert run.code_version.startswith("ptsim")
    assert {"population_s", "write_s", "total_s", "rows_per_s"} <= set(run.timings)
    summary = run.summary
    scenarios = summary["scenarios"]
    assert summary["fraud_rows"] == sum(scenarios[name]["rows"] for name in SCENARIOS)
    assert scenarios["friendly_fraud"]["rows"] > 0  # counted apart: genuine payments
    assert 0 < summary["approval_rate"] < 1 and 0 <= summary["fraud_caught_rate"] <= 1
    assert sim_engine.list_runs()[0].id == run.id
    assert_consistent(sim_engine, run.id)
    stats = sim_engine.stats()
    assert stats.total == 30_000


@pytest.mark.parametrize(
    ("error", "status"), [(KeyboardInterrupt, "interrupted"), (RuntimeError, "failed")]
)
def test_stopping_mid_run_leaves_a_consistent_database(
    sim_engine: Engine, error: type[BaseException], status: str
) -> None:
    def stop_after_two_chunks(written: int, planned: int) -> None:
        if written >= 10_000:
            raise error("stop here")

    with pytest.raises(error):
        sim_engine.simulate(PARAMS, progress=stop_after_two_chunks)
    run = sim_engine.list_runs()[0]
    assert run.status == status and run.rows_written == 10_000 and run.error
    assert run.finished_at is not None
    assert_consistent(sim_engine, run.id)
    again = sim_engine.simulate(PARAMS)  # re-running the same parameters works
    assert again.status == "completed"
    assert_consistent(sim_engine, again.id)


def test_crashed_process_leaves_an_interrupted_true_record(tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    script = textwrap.dedent(
        f"""
        import os, signal
        from engine.service import Engine
        eng = Engine.open({str(db)!r}, card_key="crash-key")
        def die(written, planned):
            if written >= 15_000:
                os.kill(os.getpid(), signal.SIGKILL)
        eng.simulate({PARAMS!r}, progress=die)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, timeout=120
    )
    assert done.returncode == -9, done.stderr.decode()
    with Engine.open(db, card_key="crash-key") as eng:
        run = eng.list_runs()[0]
        assert run.status == "interrupted" and run.rows_written == 15_000
        assert_consistent(eng, run.id)


def test_background_run_matches_the_synchronous_one(sim_engine: Engine) -> None:
    run_id = sim_engine.start_simulation(PARAMS)
    assert sim_engine.get_run(run_id).status in ("running", "completed")
    for _ in range(600):
        run = sim_engine.get_run(run_id)
        if run.status != "running":
            break
        time.sleep(0.05)
    assert run.status == "completed" and run.rows_written == PARAMS["rows"]
    sync = sim_engine.simulate(PARAMS)
    assert sim_engine.run_content_hash(run_id) == sim_engine.run_content_hash(sync.id)


def test_close_interrupts_background_runs(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "bg.duckdb", card_key="bg-key")
    run_id = eng.start_simulation({**PARAMS, "rows": 1_000_000, "chunk_rows": 5_000})
    eng.close()
    with Engine.open(tmp_path / "bg.duckdb", card_key="bg-key") as again:
        run = again.get_run(run_id)
        assert run.status == "interrupted" and run.rows_written < 1_000_000
        assert_consistent(again, run_id)


def test_unknown_run_and_invalid_params(sim_engine: Engine) -> None:
    with pytest.raises(NotFoundError):
        sim_engine.get_run(999)
    with pytest.raises(ValueError):
        SimulationParams(rows=0)
    with pytest.raises(ValueError, match="may only name the scenarios"):
        SimulationParams(rows=10, scenario_mix={"phishing": 1})
    with pytest.raises(ValueError):
        SimulationParams(rows=10, scenario_mix={"stolen_card": 0})
    assert SimulationCancelled.__mro__[1].__name__ == "EngineError"


def test_a_run_gives_way_to_live_payments_without_changing_its_rows(tmp_path: Path) -> None:
    """While payments flow, a server run writes small slices and pauses between them
    (engine/simulation/pacing.py); its rows, rollups and record are those of an unpaced run."""
    params = {**PARAMS, "rows": 60_000, "chunk_rows": 20_000}
    payment = {
        "card_number": "4000001234567890",
        "amount": "12.50",
        "currency": "GBP",
        "merchant": "Pacing test",
        "channel": "ecommerce",
    }
    with Engine.open(tmp_path / "paced.duckdb", card_key="runs-key", run_pacing=1.0) as eng:
        eng.authorize(payment)  # live traffic is flowing when the run starts
        run_id = eng.start_simulation(params)
        while eng.get_run(run_id).status == "running":
            eng.authorize(payment)
        paced = eng.get_run(run_id)
        assert paced.status == "completed" and paced.rows_written == 60_000
        assert paced.timings.get("paced_s", 0) > 0
        assert_consistent(eng, run_id)
        unpaced = eng.simulate(params)  # synchronous runs are never paced
        assert "paced_s" not in unpaced.timings
        assert eng.run_content_hash(run_id) == eng.run_content_hash(unpaced.id)


def test_pacing_off_or_without_live_traffic_writes_whole_chunks() -> None:
    active = {"now": False}
    pacer = RunPacer(lambda: active["now"], factor=1.0, slice_rows=4_000)
    assert pacer.slices(10_000) == [slice(0, 10_000)]
    active["now"] = True
    assert pacer.slices(10_000) == [slice(0, 4_000), slice(4_000, 8_000), slice(8_000, 10_000)]
    assert RunPacer(lambda: True, factor=0.0).slices(100_000) == [slice(0, 100_000)]
