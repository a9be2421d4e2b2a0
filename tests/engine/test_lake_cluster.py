"""A lake run on a real local Dask cluster (worker processes on 127.0.0.1): the same rows with 1,
2 or 3 workers, a worker killed in the middle of a shard, backtests and comparisons merged from
per-shard groups into exactly the single-process answer. Small: 4 shards of 10,000 rows."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from engine.costs import CostModel
from engine.lake.cluster import cluster_client, merge_groups, shard_runner
from engine.policy import DEFAULT_POLICY
from engine.service import Engine

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

SHARD = 10_000
PARAMS = {"rows": 40_000, "seed": 21, "days": 10, "fraud_rate": 0.03}


@pytest.fixture(scope="module")
def client() -> Any:
    """One local cluster for the module, scaled by the tests (worker start-up is the slow part)."""
    with cluster_client(workers=1) as c:
        yield c


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("cluster")
    eng = Engine.open(root / "db.duckdb", lake=str(root / "lake"), card_key="k")
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="module")
def reference(engine: Engine) -> Any:
    """The run generated shard after shard in this process."""
    return engine.simulate_into_lake(engine.settings.lake, PARAMS, shard_rows=SHARD)


def _scale(client: Any, n: int) -> None:
    client.cluster.scale(n)
    client.wait_for_workers(n, timeout=240)
    deadline = time.monotonic() + 240
    while len(client.scheduler_info(n_workers=-1)["workers"]) != n:
        assert time.monotonic() < deadline, "the cluster did not reach its size"
        time.sleep(0.2)


def _on_cluster(engine: Engine, client: Any, **params: Any) -> Any:
    return engine.simulate_into_lake(
        engine.settings.lake, {**PARAMS, **params}, runner=shard_runner(client), shard_rows=SHARD
    )


def test_the_same_seed_gives_identical_rows_with_1_2_or_3_workers(
    engine: Engine, client: Any, reference: Any
) -> None:
    expected = engine.run_content_hash(reference.id)
    for workers in (1, 2, 3):
        _scale(client, workers)
        run = _on_cluster(engine, client)
        assert run.status == "completed" and run.rows_written == PARAMS["rows"]
        assert run.summary == reference.summary
        assert engine.run_content_hash(run.id) == expected, f"{workers} workers"
        manifest = engine.lake.manifest(run.id)  # type: ignore[union-attr]
        assert [p.index for p in manifest.partitions] == [0, 1, 2, 3]  # each shard once
        assert [p.first_row for p in manifest.partitions] == [0, 10_000, 20_000, 30_000]


def _malloc_settings() -> tuple[str | None, str | None]:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")


def test_workers_leave_glibc_malloc_as_it_is_and_keep_dasks_other_settings(client: Any) -> None:
    """engine/lake/dask.yaml unsets the trim threshold Dask's nanny sets (a shard ran ~1.45x
    slower with it), for the workers started with the cluster and those a scale-up adds; the
    other variables Dask sets before spawning a worker stay."""
    _scale(client, 2)
    assert set(client.run(_malloc_settings).values()) == {(None, "1")}


def test_a_worker_killed_in_the_middle_of_a_shard(
    engine: Engine, client: Any, reference: Any, tmp_path: Path
) -> None:
    """SIGKILL to the worker writing a shard (its file is open aside): the scheduler runs the
    shard again on a worker alive, the run completes with exactly the reference's rows, each
    shard listed once, and no half-written file is left in the run's folder."""
    _scale(client, 2)
    lake = Path(engine.settings.lake or "")
    pids = client.run(os.getpid)  # worker address -> process id
    outcome: dict[str, Any] = {}

    def generate() -> None:
        try:
            outcome["run"] = _on_cluster(engine, client, chunk_rows=500)  # many small writes
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=generate)
    thread.start()
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        for aside in lake.glob("transactions/run_id=*/.part-*.tmp"):
            shard = int(re.search(r"part-(\d+)", aside.name).group(1))  # type: ignore[union-attr]
            for worker, keys in client.processing().items():
                if any(str(k).endswith(f"-{shard}") for k in keys) and worker in pids:
                    os.kill(pids[worker], signal.SIGKILL)
                    killed = (shard, pids[worker])
                    break
            if killed:
                break
        time.sleep(0.01)
    thread.join(timeout=300)
    assert killed is not None, "no worker was caught writing a shard"
    assert "error" not in outcome, outcome.get("error")
    run = outcome["run"]
    assert run.status == "completed" and run.rows_written == PARAMS["rows"]
    assert engine.run_content_hash(run.id) == engine.run_content_hash(reference.id)
    manifest = engine.lake.manifest(run.id)  # type: ignore[union-attr]
    assert [p.index for p in manifest.partitions] == [0, 1, 2, 3]
    folder = lake / f"transactions/run_id={run.id}"
    assert sorted(p.name for p in folder.iterdir()) == [f"part-{i:05d}.parquet" for i in range(4)]
    assert killed[1] not in client.run(os.getpid).values()  # that process is gone


def test_backtests_and_comparisons_on_the_cluster_equal_the_single_process_answer(
    engine: Engine, client: Any, reference: Any
) -> None:
    _scale(client, 2)
    manifest = engine.lake.manifest(reference.id)  # type: ignore[union-attr]
    lake = Path(engine.settings.lake or "")
    names = pq.read_table(lake / manifest.partitions[1].path, columns=["merchant"]).column(0)
    engine.put_list("hot", "merchant", sorted(set(names.to_pylist()))[:5])  # a list to send along
    strict = engine.create_policy(
        [
            {"name": "big", "action": "block", "when": ":amount: > 200"},
            {"name": "odd", "action": "review", "when": ":risk_score: > 0.5"},
            {"name": "hot", "action": "block", "when": ":merchant: in @hot"},
        ]
    )  # fmt: skip (stored: it pins the list's version)
    here_bt = engine.backtest(strict, run=reference.id)
    here_cmp = engine.compare(DEFAULT_POLICY, strict, run=reference.id, replicates=50)
    team = CostModel(review_capacity=40)  # each shard keeps its own top 40 a day: merged, the same
    here_team = engine.compare(DEFAULT_POLICY, strict, run=reference.id, costs=team, replicates=50)
    calls: list[int] = []
    engine.attach_cluster(client)
    try:
        original = engine._cluster.grouped  # count the tasks each read sends

        def counted(run_id: int) -> Any:
            inner = original(run_id)

            def run(sql: str, params: dict[str, Any]) -> Any:
                calls.append(run_id)
                return inner(sql, params)

            return run

        engine._cluster.grouped = counted
        there_bt = engine.backtest(strict, run=reference.id)
        there_cmp = engine.compare(DEFAULT_POLICY, strict, run=reference.id, replicates=50)
        there_team = engine.compare(
            DEFAULT_POLICY, strict, run=reference.id, costs=team, replicates=50
        )
    finally:
        engine.attach_cluster(None)
    # every read went to the cluster: the backtest (its groups and its pricing in one query)
    # and both comparisons
    assert calls == [reference.id] * 3
    assert _without(there_bt.model_dump()) == _without(here_bt.model_dump())
    assert _without(there_cmp.model_dump()) == _without(here_cmp.model_dump())
    assert _without(there_team.model_dump()) == _without(here_team.model_dump())
    assert 0 < here_team.b.reviewed < here_cmp.b.reviewed and here_team.b.cp_at_k_cards > 0
    assert here_bt.candidate.declined > 0
    hot = next(r for r in here_bt.rules if r.name == "hot")
    assert hot.matched > 0  # the list reached the tasks: its merchants' rows matched there too


def test_a_task_reads_several_whole_shards_and_the_merged_answer_is_the_same(
    engine: Engine, client: Any, reference: Any
) -> None:
    files = engine.lake.files(reference.id)  # type: ignore[union-attr]
    for slots, expected in ((1, 2), (2, 4), (8, 4)):  # >= 2 per slot, never part of a shard
        views = engine.lake.task_views(reference.id, slots)  # type: ignore[union-attr]
        read = [re.findall(r"'([^']+\.parquet)'", view) for view in views]
        assert len(views) == expected
        assert [f for piece in read for f in piece] == files  # each shard once, in order
    _scale(client, 1)  # one slot: two tasks of two shards each
    policy = engine.create_policy(
        [{"name": "big", "action": "block", "when": ":amount: > 200"},
         {"name": "odd", "action": "review", "when": ":risk_score: > 0.5"}]
    )  # fmt: skip
    here = engine.backtest(policy, run=reference.id)
    engine.attach_cluster(client)
    try:
        there = engine.backtest(policy, run=reference.id)
    finally:
        engine.attach_cluster(None)
    assert _without(there.model_dump()) == _without(here.model_dump())


def test_merged_groups_add_counts_and_sums_only() -> None:
    import pandas as pd

    a = pd.DataFrame({"k": [1, 2], "n": [3, 4], "cents": [10, 20], "pence": [1, 2]})
    b = pd.DataFrame({"k": [2, 5], "n": [1, 1], "cents": [5, 7], "pence": [1, 1]})
    merged = merge_groups([a, b]).sort_values("k").reset_index(drop=True)
    assert merged.to_dict("list") == {"k": [1, 2, 5], "n": [3, 5, 1], "cents": [10, 25, 7],
                                      "pence": [1, 3, 1]}  # fmt: skip


def _without(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in ("elapsed_ms", "filters")}
