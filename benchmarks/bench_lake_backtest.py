"""A backtest over a large lake run, in this process and on a local Dask cluster (issue 15:
a 100M-row lake, <= 10 s median, the same on the 2-worker cluster, identical numbers).

    .venv/bin/ptsim generate --rows 100000000 --seed 7 --lake /tmp/lake100 \\
        --db /tmp/lake100.duckdb --workers 2 --quiet      # the run (PTSIM_CARD_KEY=bench100)
    .venv/bin/python benchmarks/bench_lake_backtest.py --lake /tmp/lake100 \\
        --db /tmp/lake100.duckdb --card-key bench100 [--workers 2] [--repeat 3]

Times ``Engine.backtest`` of a two-rule candidate (a block and a review rule) over the lake's
newest run: ``--repeat`` times in this process (DuckDB over all the run's files: the reference),
then on a ``--workers`` local cluster (one task per shard, groups merged); prints the medians
and whether both answers are identical.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CANDIDATE = {
    "rules": [
        {"name": "big", "action": "block", "when": ":amount: > 300"},
        {"name": "fast", "action": "review", "when": ":payments_per_card_1h: >= 5"},
    ]
}


def timed(engine: Any, candidate: Any, run_id: int, repeat: int) -> tuple[list[float], Any]:
    """Each backtest's seconds, and the last answer."""
    seconds, answer = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        answer = engine.backtest(candidate, run=run_id)
        seconds.append(time.perf_counter() - start)
    return seconds, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="the lake holding the run")
    parser.add_argument("--db", required=True, help="a database file for the engine")
    parser.add_argument("--card-key", required=True, help="the run's card key")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from engine.lake.cluster import cluster_client
    from engine.lake.layout import LAKE_RUN_BASE
    from engine.policy import Policy
    from engine.service import Engine

    candidate = Policy.model_validate(CANDIDATE)
    with Engine.open(
        args.db, lake=args.lake, card_key=args.card_key, backup_interval_s=0
    ) as engine:
        run_id = max(r.id for r in engine.list_runs() if r.id > LAKE_RUN_BASE)
        rows = engine.get_run(run_id).rows_written
        print(f"# run {run_id}: {rows:,} rows; cpus={os.cpu_count()} "
              f"load={os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        here_s, here = timed(engine, candidate, run_id, args.repeat)
        with cluster_client(workers=args.workers) as client:
            engine.attach_cluster(client)
            try:
                there_s, there = timed(engine, candidate, run_id, args.repeat)
            finally:
                engine.attach_cluster(None)
    same = here.model_dump(exclude={"elapsed_ms"}) == there.model_dump(exclude={"elapsed_ms"})
    print("\n| backtest | runs s | median s | identical |\n|---|---|---:|---|")
    for name, seconds, identical in (
        ("one process (reference)", here_s, "-"),
        (f"cluster, {args.workers} workers", there_s, str(same)),
    ):
        runs = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"| {name} | {runs} | {statistics.median(seconds):.2f} | {identical} |")


if __name__ == "__main__":
    main()
