"""Generation into the lake on a local Dask cluster, and backtests over the lake on it.

    .venv/bin/python benchmarks/bench_lake_cluster.py                    # 10M rows, 1 and 2 workers
    .venv/bin/python benchmarks/bench_lake_cluster.py --rows 4M --workers 1,2,3
    .venv/bin/python benchmarks/bench_lake_cluster.py --profile          # where a shard's time goes
    .venv/bin/python benchmarks/bench_lake_cluster.py --rows 2M --workers 1 --malloc-reference

Rows (the same seed each time: identical rows, checked by content hash):

* **one process** — the same-run reference: ``Engine.simulate_into_lake`` in this process, shard
  after shard (a producer thread overlapping generation with the Parquet writes).
* **N workers** — the shards as tasks on ``LocalCluster(n_workers=N, threads_per_worker=1)``;
  the time is the run's, after the cluster is up (its start-up is printed apart). Per-worker
  rate = rows/s / N; parallel efficiency = rate(N) / (N × rate(1 worker)); peak RSS is each
  worker process's ``ru_maxrss`` after the run.
* **1 worker, Dask's malloc default** (``--malloc-reference``) — the reference for
  ``engine/lake/dask.yaml``: a 1-worker cluster whose nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``
  (Dask's default, which the file unsets).
* **backtest** — one strict policy over the run: in this process (DuckDB over all its files),
  then on the cluster (one task per shard, groups merged); medians of ``--repeat`` and a check
  that both answers are identical.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STRICT = {
    "rules": [
        {"name": "big", "action": "block", "when": ":amount: > 200"},
        {"name": "risky", "action": "review", "when": ":risk_score: > 0.5"},
    ]
}


def _size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _worker_peak_mib() -> float:
    from engine.lake.sharded import peak_rss_bytes

    return peak_rss_bytes() / 2**20  # VmHWM: ru_maxrss would count the client's RSS at the fork


def _params(args: argparse.Namespace) -> dict[str, Any]:
    return {"rows": args.rows, "seed": 1, "days": args.days, "fraud_rate": 0.01}


def _without(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in ("elapsed_ms", "filters")}


def _median_s(fn: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=_size, default=10_000_000)
    parser.add_argument("--workers", default="1,2", help="worker counts, e.g. 1,2,3")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="backtests per side (median)")
    parser.add_argument("--profile", action="store_true", help="cProfile one shard and stop")
    parser.add_argument(
        "--malloc-reference", action="store_true",
        help="also a 1-worker cluster with Dask's MALLOC_TRIM_THRESHOLD_ (the same-run reference)",
    )  # fmt: skip
    args = parser.parse_args()

    from engine.lake.cluster import cluster_client, shard_runner
    from engine.policy import Policy
    from engine.service import Engine

    print(f"# {platform.node()} cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} "
          f"rows={args.rows:,}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        lake = f"{tmp}/lake"
        with Engine.open(Path(tmp) / "db.duckdb", lake=lake, card_key="bench-key") as engine:
            if args.profile:
                _profile(engine, args)
                return
            rows: list[tuple[str, float, float, str, str]] = []
            start = time.perf_counter()
            reference = engine.simulate_into_lake(lake, _params(args))
            seconds = time.perf_counter() - start
            expected = engine.run_content_hash(reference.id)
            rows.append(("one process", seconds, args.rows / seconds, "-", f"{_peak_mib():,.0f}"))
            rate_1 = None
            for n in (int(w) for w in args.workers.split(",")):
                up = time.perf_counter()
                with cluster_client(workers=n) as client:
                    up = time.perf_counter() - up
                    start = time.perf_counter()
                    run = engine.simulate_into_lake(
                        lake, _params(args), runner=shard_runner(client)
                    )
                    seconds = time.perf_counter() - start
                    peaks = client.run(_worker_peak_mib)
                    if n == 2 or n == max(int(w) for w in args.workers.split(",")):
                        backtest = _backtests(engine, client, reference.id, Policy, args.repeat)
                assert engine.run_content_hash(run.id) == expected, "rows differ"
                rate = args.rows / seconds
                rate_1 = rate if n == 1 else rate_1
                eff = f"{rate / (n * rate_1):.0%}" if rate_1 else "-"
                peak = " / ".join(f"{p:,.0f}" for p in sorted(peaks.values()))
                name = f"{n} worker(s) (cluster start-up {up:.1f} s)"
                rows.append(
                    (name, seconds, rate, f"{eff}; {rate / n:,.0f} rows/s per worker", peak)
                )
            if args.malloc_reference:
                rows.append(_dask_malloc_default(engine, lake, args, expected))
    print("\n| generation | seconds | rows/s | efficiency | peak RSS MiB |")
    print("|---|---:|---:|---|---|")
    for name, seconds, rate, eff, peak in rows:
        print(f"| {name} | {seconds:.1f} | {rate:,.0f} | {eff} | {peak} |")
    print("\n| backtest over the lake run | median s | identical |")
    print("|---|---:|---|")
    for name, seconds, same in backtest:
        print(f"| {name} | {seconds:.2f} | {same} |")


def _dask_malloc_default(
    engine: Any, lake: str, args: argparse.Namespace, expected: str
) -> tuple[str, float, float, str, str]:
    """The 1-worker row with the nanny's MALLOC_TRIM_THRESHOLD_ as Dask sets it by default."""
    import dask
    from distributed import Client, LocalCluster

    from engine.lake.cluster import shard_runner

    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 65536}),
        LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                     dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        start = time.perf_counter()
        run = engine.simulate_into_lake(lake, _params(args), runner=shard_runner(client))
        seconds = time.perf_counter() - start
        (peak,) = client.run(_worker_peak_mib).values()
    assert engine.run_content_hash(run.id) == expected, "rows differ"
    rate = args.rows / seconds
    return ("1 worker, Dask's malloc default (reference)", seconds, rate, "-", f"{peak:,.0f}")


def _backtests(engine: Any, client: Any, run_id: int, policy: Any, repeat: int) -> list:
    strict = policy.model_validate(STRICT)
    here_s, here = _median_s(lambda: engine.backtest(strict, run=run_id), repeat)
    engine.attach_cluster(client)
    try:
        there_s, there = _median_s(lambda: engine.backtest(strict, run=run_id), repeat)
    finally:
        engine.attach_cluster(None)
    same = _without(here.model_dump()) == _without(there.model_dump())
    workers = len(client.scheduler_info(n_workers=-1)["workers"])
    return [("one process", here_s, "-"), (f"cluster, {workers} workers", there_s, same)]


def _profile(engine: Any, args: argparse.Namespace) -> None:
    """cProfile of one shard's generation and Parquet writes, in this thread (a task's producer
    thread would hide the generation from the profiler): where a shard's time goes."""
    from engine.lake.layout import Lake
    from engine.lake.writer import PartitionWriter
    from engine.simulation.params import SimulationParams
    from engine.simulation.runner import Timings
    from engine.simulation.shards import plan, shard_chunks

    shard = plan(SimulationParams(**_params(args)))[0]
    out = PartitionWriter(Lake(engine.settings.lake), 1_999_999_999, 0, 0, 0)
    timings = Timings()
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    for chunk in shard_chunks(shard, engine._card_key, engine.active_decider(), 0, timings):
        with timings.stage("write_s"):
            out.write(chunk.table)
    out.publish()
    profile.disable()
    seconds = time.perf_counter() - start
    print(f"shard 0: {shard.rows:,} rows in {seconds:.1f} s (profiled, one thread); "
          f"stages {timings.as_dict()}; peak RSS {_peak_mib():,.0f} MiB")  # fmt: skip
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
    print(text.getvalue())


if __name__ == "__main__":
    main()
