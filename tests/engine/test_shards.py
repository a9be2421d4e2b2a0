"""Shards: the cut of a run into independently generable sub-worlds (engine/simulation/shards.py),
the same rows by the database and the lake paths, and each card, device and merchant in one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.service import Engine
from engine.simulation import shards
from engine.simulation.params import SimulationParams
from engine.simulation.population import population_size
from engine.simulation.shards import plan, shard_population, shard_size

PARAMS = {"rows": 60_000, "seed": 5, "days": 10, "fraud_rate": 0.03}
SMALL_SHARDS = 20_000  # three shards of the run above


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    eng = Engine.open(tmp_path / "db.duckdb", lake=str(tmp_path / "lake"), card_key="k")
    try:
        yield eng
    finally:
        eng.close()


def test_the_cut_depends_on_the_run_size_only() -> None:
    assert shard_size(10) == 10
    assert shard_size(1_000_000) == 1_000_000  # one shard up to SHARD_ROWS
    assert shard_size(1_000_001) == 500_001
    assert shard_size(2_500_000) == 833_334
    params = SimulationParams(**PARAMS)
    cut = plan(params, SMALL_SHARDS)
    assert [(s.index, s.first_row, s.rows) for s in cut] == [
        (0, 0, 20_000), (1, 20_000, 20_000), (2, 40_000, 20_000)
    ]  # fmt: skip
    assert cut == plan(params, SMALL_SHARDS)  # a pure function of the parameters
    assert len({s.params.seed for s in cut}) == 3 and params.seed not in {
        s.params.seed for s in cut
    }
    total = population_size(params)
    assert sum(s.params.cards or 0 for s in cut) == total.cards
    assert sum(s.params.merchants or 0 for s in cut) == total.merchants
    assert sum(s.params.devices or 0 for s in cut) == total.devices
    assert [s.first_card for s in cut] == [0, total.cards // 3, 2 * total.cards // 3]


def test_a_run_of_one_shard_keeps_its_own_parameters() -> None:
    params = SimulationParams(**PARAMS)
    (only,) = plan(params)
    assert only.params is params and only.count == 1


def test_shards_have_cards_devices_and_merchants_of_their_own() -> None:
    """Every shard's card fingerprints, device ids and merchant names are its own, so no card,
    device or merchant (nor a scenario episode over them) spans two shards."""
    cut = plan(SimulationParams(**PARAMS), SMALL_SHARDS)
    pops = [shard_population(s, b"k") for s in cut]
    cards = np.concatenate([p.card_digest for p in pops]).view("S16").ravel()
    devices = [d for p in pops for d in p.device_names.to_pylist()]
    merchants = [m for p in pops for m in p.merchant_names.to_pylist()]
    assert len(set(cards.tolist())) == len(cards)
    assert len(set(devices)) == len(devices)
    assert len(set(merchants)) == len(merchants)
    assert all(len(d) == 12 for d in devices)  # still 48-bit hex ids
    assert all(0 <= last4 <= 9999 for p in pops for last4 in p.card_last4.tolist())


def test_database_and_lake_hold_the_same_rows_of_a_run_of_several_shards(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database path goes shard by shard too: the same seed means the same rows in the
    file and in the lake, and each shard is one partition file whose cards are its own."""
    monkeypatch.setattr(shards, "SHARD_ROWS", SMALL_SHARDS)
    lake_run = engine.simulate_into_lake(engine.settings.lake, {**PARAMS, "chunk_rows": 7_000})
    db_run = engine.simulate({**PARAMS, "chunk_rows": 9_000})
    assert lake_run.rows_written == db_run.rows_written == PARAMS["rows"]
    assert lake_run.summary == db_run.summary
    assert engine.run_content_hash(lake_run.id) == engine.run_content_hash(db_run.id)
    manifest = engine.lake.manifest(lake_run.id)  # type: ignore[union-attr]
    assert manifest.shards == 3 and [p.index for p in manifest.partitions] == [0, 1, 2]
    assert [p.first_row for p in manifest.partitions] == [0, 20_000, 40_000]
    root = tmp_path / "lake"
    cards = [set(pq.read_table(root / p.path, columns=["card_hash"]).column(0).to_pylist())
             for p in manifest.partitions]  # fmt: skip
    assert not (cards[0] & cards[1]) and not (cards[1] & cards[2]) and not (cards[0] & cards[2])
    for p in manifest.partitions:
        merchants = set(pq.read_table(root / p.path, columns=["merchant"]).column(0).to_pylist())
        assert all(m.endswith(f"#{p.index + 1}") for m in merchants)
    # a different cut is a different world: the shard size is part of what the rows depend on
    monkeypatch.setattr(shards, "SHARD_ROWS", 30_000)
    other = engine.simulate(PARAMS)
    assert engine.run_content_hash(other.id) != engine.run_content_hash(db_run.id)


def test_a_run_of_several_shards_stopped_after_one_keeps_that_shard(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (the CLI raises it from progress) after the first committed shard: the manifest
    says interrupted with that shard's rows, and its folder holds that shard's file only."""
    monkeypatch.setattr(shards, "SHARD_ROWS", SMALL_SHARDS)

    def stop(rows: int, planned: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.simulate_into_lake(engine.settings.lake, PARAMS, progress=stop)
    (manifest,) = engine.lake.lake.manifests()  # type: ignore[union-attr]
    assert manifest.status == "interrupted" and manifest.rows_written == SMALL_SHARDS
    assert [p.index for p in manifest.partitions] == [0]
    folder = tmp_path / "lake" / f"transactions/run_id={manifest.run_id}"
    assert [p.name for p in folder.iterdir()] == ["part-00000.parquet"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "2"], "--workers and --scheduler generate into a lake: give --lake DIR"),
        (["--lake", "L", "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"],
         "Give --workers (a local cluster) or --scheduler (an existing one)."),
        (["--lake", "L", "--scheduler", "tcp://127.0.0.1:9"],
         "No Dask scheduler answered at tcp://127.0.0.1:9"),
    ],
)  # fmt: skip
def test_cluster_options_are_refused_in_one_sentence(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    import subprocess
    import sys

    ptsim = Path(sys.executable).parent / "ptsim"
    done = subprocess.run(
        [str(ptsim), "generate", "--rows", "100", "--seed", "1", "--quiet",
         "--db", str(tmp_path / "db.duckdb"), *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "L" / "manifests").exists()  # no run was started
