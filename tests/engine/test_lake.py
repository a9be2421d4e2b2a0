"""The Parquet lake: layout and manifest, identical rows to the database path, attached runs read
by stats, backtests and comparisons, interrupted runs, and a non-local fsspec file system."""

from __future__ import annotations

import itertools
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from engine.errors import InvalidRequestError, StoreError
from engine.lake import writer as lake_writer
from engine.lake.layout import LAKE_RUN_BASE, Lake
from engine.lake.manifest import Manifest, partition_rows
from engine.lake.writer import MINOR_UNITS
from engine.policy import DEFAULT_POLICY, Policy
from engine.service import Engine
from engine.simulation.facade import batches_digest

PARAMS = {"rows": 24_000, "seed": 11, "days": 20, "fraud_rate": 0.03}


@pytest.fixture
def lake_engine(tmp_path: Path) -> Any:
    """An engine on a real file with a lake attached beside it."""
    eng = Engine.open(tmp_path / "db.duckdb", lake=str(tmp_path / "lake"), card_key="k")
    try:
        yield eng
    finally:
        eng.close()


def test_the_partition_rule_depends_on_the_run_size_only() -> None:
    assert partition_rows(10) == 10
    assert partition_rows(2_000_000) == 1_000_000
    assert partition_rows(2_500_000) == 833_334  # three equal parts, none above the target
    assert partition_rows(24_000, 10_000) == 8_000


def test_lake_rows_equal_the_database_rows_of_the_same_seed(lake_engine: Engine) -> None:
    """Same seed and parameters: the lake run and the database run hash the same (every
    deterministic column, in event order), whatever the chunk and partition sizes."""
    lake_run = lake_engine.simulate_into_lake(
        lake_engine.settings.lake, {**PARAMS, "chunk_rows": 7_000}, partition_rows=10_000
    )
    db_run = lake_engine.simulate({**PARAMS, "chunk_rows": 5_000})
    assert lake_run.id > LAKE_RUN_BASE > db_run.id
    assert lake_run.status == "completed" and lake_run.rows_written == PARAMS["rows"]
    assert lake_run.summary == db_run.summary
    assert lake_engine.run_content_hash(lake_run.id) == lake_engine.run_content_hash(db_run.id)
    other_seed = lake_engine.simulate_into_lake(lake_engine.settings.lake, {**PARAMS, "seed": 12})
    assert lake_engine.run_content_hash(other_seed.id) != lake_engine.run_content_hash(db_run.id)


def test_partitions_hold_whole_row_groups_whatever_the_chunks(
    lake_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 1,700 rows, row groups of 3,000: every partition's row groups are whole but
    its last, and the rows are those of a lake written in one piece per partition."""
    monkeypatch.setattr(lake_writer, "_ROW_GROUP", 3_000)
    root = Path(lake_engine.settings.lake)
    chunked, whole = (
        lake_engine.simulate_into_lake(root, {**PARAMS, "chunk_rows": c}, partition_rows=10_000)
        for c in (1_700, 10_000)
    )
    for part in Lake(root).manifest(chunked.id).partitions:
        meta = pq.ParquetFile(root / part.path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert sizes == [3_000, 3_000, 2_000], part.path  # 8,000 rows per partition
    assert lake_engine.run_content_hash(chunked.id) == lake_engine.run_content_hash(whole.id)


def test_layout_and_manifest(lake_engine: Engine, tmp_path: Path) -> None:
    run = lake_engine.simulate_into_lake(tmp_path / "lake", PARAMS, partition_rows=10_000)
    root = tmp_path / "lake"
    manifest = Manifest.model_validate_json((root / f"manifests/run-{run.id}.json").read_text())
    files = sorted(p.name for p in (root / f"transactions/run_id={run.id}").iterdir())
    assert files == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [p.rows for p in manifest.partitions] == [8_000, 8_000, 8_000]
    assert [p.first_row for p in manifest.partitions] == [0, 8_000, 16_000]
    assert manifest.rows_written == manifest.rollup.total == PARAMS["rows"]
    assert manifest.seed == PARAMS["seed"] and manifest.params["rows"] == PARAMS["rows"]
    assert manifest.policy_version == lake_engine.active_policy().version
    assert manifest.policy["rules"][0]["when"] == DEFAULT_POLICY.rules[0].when
    assert "generator" in manifest.code_version and manifest.generator_version
    # any tool reads the hive layout; card data only as fingerprint, BIN and last four
    frame = ds.dataset(root / "transactions", partitioning="hive").to_table().to_pandas()
    assert len(frame) == PARAMS["rows"] and set(frame["run_id"].astype(int)) == {run.id}
    assert {"card_hash", "card_bin", "card_last4"} <= set(frame.columns)
    assert not {"card_number", "pan"} & set(frame.columns)
    assert (frame["amount"].map(lambda d: int(d * 100)) == frame[MINOR_UNITS]).all()
    schema = pq.read_schema(root / f"transactions/run_id={run.id}/part-00000.parquet")
    assert str(schema.field("amount").type) == "decimal128(18, 2)"
    assert "run_id" not in schema.names  # the directory names it


def test_an_attached_lake_run_is_a_source_like_a_database_run(lake_engine: Engine) -> None:
    lake_run = lake_engine.simulate_into_lake(lake_engine.settings.lake, PARAMS)
    db_run = lake_engine.simulate(PARAMS)
    assert [r.id for r in lake_engine.list_runs()] == [db_run.id, lake_run.id]
    assert lake_engine.get_run(lake_run.id).rows_written == PARAMS["rows"]
    assert lake_run.id in lake_engine.filter_options().runs
    lake_stats, db_stats = lake_engine.stats(lake_run.id), lake_engine.stats(db_run.id)
    assert lake_stats.model_dump(exclude={"selection"}) == db_stats.model_dump(
        exclude={"selection"}
    )
    since = lake_engine.stats(lake_run.id, since="2026-01-05T00:00:00")
    assert since.total == lake_engine.stats(db_run.id, since="2026-01-05T00:00:00").total > 0
    strict = Policy.model_validate(
        {"rules": [{"name": "big", "action": "block", "when": ":amount: > 200"}]}
    )
    lake_bt = lake_engine.backtest(strict, run=lake_run.id)
    db_bt = lake_engine.backtest(strict, run=db_run.id)
    assert _without(lake_bt.model_dump(), "elapsed_ms", "filters") == _without(
        db_bt.model_dump(), "elapsed_ms", "filters"
    )
    lake_cmp = lake_engine.compare(DEFAULT_POLICY, strict, run=lake_run.id, replicates=50)
    db_cmp = lake_engine.compare(DEFAULT_POLICY, strict, run=db_run.id, replicates=50)
    assert _without(lake_cmp.model_dump(), "elapsed_ms", "filters") == _without(
        db_cmp.model_dump(), "elapsed_ms", "filters"
    )
    dashboard = lake_engine.dashboard(run=lake_run.id)
    assert dashboard.kpis.total == PARAMS["rows"] and len(dashboard.series)
    # the database file keeps nothing of the lake's rows
    assert lake_engine.store.query(
        "SELECT count(*) FROM transactions WHERE run_id = ?", [lake_run.id]
    ) == [(0,)]


def test_a_run_generated_after_the_engine_started_appears(lake_engine: Engine) -> None:
    assert lake_engine.list_runs() == []
    other = Engine.open(":memory:", card_key="k")
    try:
        run = other.simulate_into_lake(lake_engine.settings.lake, PARAMS)
    finally:
        other.close()
    assert lake_engine.stats(run.id).total == PARAMS["rows"]


def test_a_run_still_being_written_is_not_readable(lake_engine: Engine) -> None:
    lake = Lake(lake_engine.settings.lake)
    draft = Manifest(
        run_id=0, status="running", created_at="2026-01-01T00:00:00", seed=1, params={},
        code_version="x", generator_version="2", policy_version=1, policy={},
        rows_planned=10, partition_rows=10,
    )  # fmt: skip
    running = lake.reserve(draft)  # written by this (live) process
    assert lake_engine.get_run(running.run_id).status == "running"
    with pytest.raises(InvalidRequestError, match="still being written"):
        lake_engine.stats(running.run_id)
    assert running.run_id not in lake_engine.filter_options().runs


def test_a_run_whose_file_is_gone_is_named_and_the_others_stay_readable(tmp_path: Path) -> None:
    """A committed partition file deleted by hand: the engine still opens on the lake, the
    lake's other runs still read, and reading that run says which file is missing (it used to
    fail every lake read, and the engine's start-up, as a failed database write)."""
    lake_dir = str(tmp_path / "lake")
    with Engine.open(":memory:", card_key="k") as writer:
        kept = writer.simulate_into_lake(lake_dir, PARAMS)
        broken = writer.simulate_into_lake(lake_dir, {**PARAMS, "seed": 12})
    gone = Lake(lake_dir).path(Lake(lake_dir).manifest(broken.id).partitions[0].path)
    Path(gone).unlink()
    with Engine.open(tmp_path / "db.duckdb", lake=lake_dir, card_key="k") as eng:
        assert {r.id for r in eng.list_runs()} == {kept.id, broken.id}
        assert eng.stats(kept.id).total == PARAMS["rows"]
        with pytest.raises(StoreError, match=f"Lake run {broken.id} cannot be read: its file "
                           f"{re.escape(gone)} is missing; restore the file"):  # fmt: skip
            eng.stats(broken.id)


def test_an_interrupted_run_keeps_its_committed_partitions(lake_engine: Engine) -> None:
    calls = 0

    def stop_after_two(rows: int, planned: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lake_engine.simulate_into_lake(
            lake_engine.settings.lake, PARAMS, progress=stop_after_two, partition_rows=5_000
        )
    (run,) = lake_engine.list_runs()
    assert run.status == "interrupted" and run.error == "interrupted (Ctrl-C)"
    assert run.rows_written == 2 * 4_800 == lake_engine.stats(run.id).total
    folder = Path(lake_engine.settings.lake) / f"transactions/run_id={run.id}"
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]


def test_lake_run_ids_are_successive_and_never_reused(tmp_path: Path) -> None:
    with Engine.open(":memory:", card_key="k") as eng:
        first = eng.simulate_into_lake(tmp_path / "lake", {**PARAMS, "rows": 500})
        second = eng.simulate_into_lake(tmp_path / "lake", {**PARAMS, "rows": 500})
    assert (first.id, second.id) == (LAKE_RUN_BASE + 1, LAKE_RUN_BASE + 2)


def test_an_fsspec_url_lake_is_a_configuration_change() -> None:
    """A non-local file system through the same code: fsspec's in-memory one (object stores
    such as s3:// are the same code path with their fsspec package installed)."""
    url = "memory://ptsim-test-lake"
    with Engine.open(":memory:", card_key="k", lake=url) as eng:
        lake_run = eng.simulate_into_lake(url, PARAMS, partition_rows=10_000)
        db_run = eng.simulate(PARAMS)
        assert eng.run_content_hash(lake_run.id) == eng.run_content_hash(db_run.id)
        assert eng.stats(lake_run.id).total == PARAMS["rows"]
    lake = Lake(url)
    names = lake.fs.ls(f"/ptsim-test-lake/transactions/run_id={lake_run.id}", detail=False)
    assert len(names) == 3
    lake.fs.rm("/ptsim-test-lake", recursive=True)


def test_reading_a_lake_file_back_gives_numeric_amounts_to_pandas(tmp_path: Path) -> None:
    with Engine.open(":memory:", card_key="k") as eng:
        run = eng.simulate_into_lake(tmp_path / "lake", {**PARAMS, "rows": 2_000})
    frame = pd.read_parquet(tmp_path / "lake" / "transactions")
    assert frame[MINOR_UNITS].dtype == "int64"
    assert (
        int(frame[MINOR_UNITS].sum())
        == json.loads((tmp_path / "lake" / f"manifests/run-{run.id}.json").read_text())["rollup"][
            "amount_cents"
        ]
    )


def _without(value: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in keys}


def test_engine_frames_give_pandas_numeric_amounts_beside_the_exact_ones(
    lake_engine: Engine,
) -> None:
    lake_run = lake_engine.simulate_into_lake(lake_engine.settings.lake, PARAMS)
    db_run = lake_engine.simulate(PARAMS)
    frames = [lake_engine.transactions_frame(run=r.id) for r in (lake_run, db_run)]
    for frame in frames:
        assert len(frame) == PARAMS["rows"]
        assert frame["amount_minor"].dtype == "int64"
        assert frame["amount_float"].dtype == "float64"
        assert isinstance(frame["amount"].iloc[0], Decimal)
        assert int(frame["amount_minor"].sum()) == int(sum(frame["amount"]) * 100)
        assert frame["amount_float"].sum() == pytest.approx(float(sum(frame["amount"])))
    columns = ["amount", "amount_minor", "amount_float", "draw", "status", "card_hash"]
    pd.testing.assert_frame_equal(frames[0][columns], frames[1][columns])
    assert len(lake_engine.transactions_frame(run=lake_run.id, limit=10)) == 10


def test_the_content_hash_does_not_depend_on_where_batches_split() -> None:
    """A lake's files and the database's row groups hand the same rows over in other batches
    (a 10M-row run hashed differently before the fix)."""
    table = pa.table(
        {
            "n": pa.array(range(1_000), pa.int64()),
            "s": pa.array([None if i % 7 == 0 else f"v{i}" for i in range(1_000)]),
            "f": pa.array([i / 3 for i in range(1_000)]),
        }
    )
    whole = batches_digest(table.to_batches())
    cuts = [0, 7, 300, 301, 1_000]
    split = [table.slice(a, b - a).to_batches()[0] for a, b in itertools.pairwise(cuts)]
    assert batches_digest(split) == whole
    changed = table.set_column(2, "f", pa.array([i / 3 + (i == 500) for i in range(1_000)]))
    assert batches_digest(changed.to_batches()) != whole
