"""Adaptive attackers (engine/simulation/adaptive.py): card testers and stolen-card sprees learn
from the run's own decisions, so a static rule's catch rate falls over the run; the rows stay
the same for the same seed and policy whatever the chunk size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.errors import EngineError
from engine.service import Engine
from engine.simulation import SimulationParams
from engine.simulation.adaptive import EDGES, NAIVE, AttackerMemory, Tactics
from engine.simulation.population import build_population
from engine.simulation.rows import Rows
from engine.simulation.scenarios import CODE
from engine.simulation.stream import adapts, hourly_blocks

KEY = "adaptive-test-key"
STATIC_RULES = {  # a rule each scenario's naive attackers trip over, fixed for the whole run
    "stolen_card": {"name": "big", "action": "block", "when": ":amount: > 300"},
    "card_testing": {"name": "busy", "action": "block", "when": ":cards_per_device_24h: > 3"},
}
COLUMNS = (
    "created_at, card_hash, amount, currency, merchant, channel, device_id, status, "
    "is_fraud, fraud_scenario, ip_address"
)


def _run(db: Path, scenario: str, adaptation: float, **extra: Any) -> tuple[list[tuple], Any]:
    """A 60-day run of one scenario under its static rule: every row (event order) and the
    fraud rows' (time, declined) columns."""
    params = SimulationParams(
        rows=60_000, days=60, seed=2, fraud_rate=0.03, difficulty="easy",
        scenario_mix={scenario: 1.0}, adaptation=adaptation, **extra,
    )  # fmt: skip
    with Engine.open(db, card_key=KEY, backup_interval_s=0) as engine:
        engine.activate_version(engine.create_policy([STATIC_RULES[scenario]]).version)
        run = engine.simulate(params)
        assert run.status == "completed", run.error
        rows = engine.store.query(f"SELECT {COLUMNS} FROM transactions ORDER BY id")
        fraud = engine.store.query(
            "SELECT status <> 'Approved' FROM transactions "
            "WHERE fraud_scenario = $s ORDER BY created_at, id",
            {"s": scenario},
        )
    return rows, np.array([declined for (declined,) in fraud], dtype=bool)


def _thirds(declined: np.ndarray) -> list[float]:
    return [float(part.mean()) for part in np.array_split(declined, 3)]


@pytest.mark.parametrize("scenario", sorted(STATIC_RULES))
def test_a_static_rule_catches_less_of_adaptive_attackers_over_the_run(
    tmp_path: Path, scenario: str
) -> None:
    _, naive = _run(tmp_path / "naive.duckdb", scenario, adaptation=0.0)
    _, adaptive = _run(tmp_path / "adaptive.duckdb", scenario, adaptation=1.0)
    first, _, last = _thirds(naive)
    assert first > 0.8 and abs(last - first) < 0.05  # naive attackers: the rule holds
    first, _, last = _thirds(adaptive)
    assert first > 0.3 and last < first / 3  # adaptive ones learn to slip under it


def test_adaptive_rows_are_reproducible_whatever_the_chunk_size(tmp_path: Path) -> None:
    whole, _ = _run(tmp_path / "whole.duckdb", "stolen_card", adaptation=1.0)
    small, _ = _run(tmp_path / "small.duckdb", "stolen_card", adaptation=1.0, chunk_rows=7_777)
    naive, _ = _run(tmp_path / "naive.duckdb", "stolen_card", adaptation=0.0)
    assert whole == small  # decisions fed back at the same reviews: the same attackers
    assert whole != naive


def _memory_with(amounts: np.ndarray, declined: np.ndarray) -> AttackerMemory:
    memory = AttackerMemory()
    scenario = np.full(len(amounts), CODE["stolen_card"], dtype=np.int8)
    memory.observe(scenario, amounts, ~declined)
    return memory


def test_a_ring_finds_the_threshold_that_declines_it_and_keeps_under_it() -> None:
    rng = np.random.default_rng(1)
    cents = rng.integers(10_000, 100_000, 2_000)
    declined = (cents > 50_000) | (rng.random(2_000) < 0.1)  # a rule above 500, random declines
    memory = _memory_with(cents, declined)
    tactics = memory.review()["stolen_card"]
    assert 0.85 * 50_000 <= tactics.cap_cents <= 50_000 * 1.01
    assert tactics.slower > 1.0
    assert memory.review()["card_testing"] == NAIVE  # the other ring saw nothing
    # every row since kept under the cap and approved: the cap stays, devices stay fresh
    kept = memory.review()["stolen_card"]
    assert kept.cap_cents == tactics.cap_cents


def test_a_ring_declined_at_every_amount_probes_lower() -> None:
    cents = np.full(100, 100_000)  # all at 1,000, all declined
    tactics = _memory_with(cents, np.ones(100, dtype=bool)).review()["stolen_card"]
    assert tactics.cap_cents == pytest.approx(0.5 * EDGES[np.searchsorted(EDGES, 100_000) - 1])
    assert tactics.fresh_devices and tactics.slower == 6.0
    assert Tactics() == NAIVE


def test_the_stream_refuses_to_run_ahead_of_the_decisions() -> None:
    params = SimulationParams(rows=20_000, days=20, seed=1, adaptation=1.0)
    assert adapts(params)
    assert not adapts(SimulationParams(rows=20_000, adaptation=0.0))
    assert not adapts(SimulationParams(rows=20_000, scenario_mix={"account_takeover": 1.0}))
    blocks = hourly_blocks(params, build_population(params, KEY.encode()), AttackerMemory())
    first: Rows = next(blocks)
    assert len(first) > 0
    with pytest.raises(EngineError, match="decide every yielded row"):
        next(blocks)
