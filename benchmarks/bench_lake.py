"""The Parquet lake, single process: generation, export and backtests, each against the same
work on the DuckDB file in the same run.

    .venv/bin/python benchmarks/bench_lake.py                    # 2M rows
    .venv/bin/python benchmarks/bench_lake.py --rows 10M         # the export figure's size
    .venv/bin/python benchmarks/bench_lake.py --rows 2M --repeat 3

On one fresh database file with a lake beside it:

* **generate** — ``Engine.simulate_into_lake`` (Parquet partitions + manifests) against
  ``Engine.simulate`` (DuckDB appends with rollups), same seed and parameters, rows/s end to end;
  the order alternates between repeats so neither always runs on a warmer machine.
* **export** — ``Engine.export_run`` of the database run and of the lake run (one Parquet file
  each, what ``GET /simulations/{id}/export`` streams), rows/s; the reference is copying the lake
  run's files byte for byte (the floor of moving that much data on this disk).
* **backtest** — ``Engine.backtest`` of one candidate over the lake run and over the database run
  (the same numbers, checked), median of ``--repeat`` seconds each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CANDIDATE = {
    "rules": [
        {"name": "big", "action": "block", "when": ":amount: > 300"},
        {"name": "velocity", "action": "review", "when": ":payments_per_card_24h: > 6"},
    ]
}


def _size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def _timed(fn: object, *args: object, **kwargs: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=_size, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="generation pairs; backtests x3")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--memory-limit", default="512MB", help="as ptsim generate")
    args = parser.parse_args()

    from engine.policy import Policy
    from engine.service import Engine

    work = Path(tempfile.mkdtemp(prefix="ptsim-bench-lake-"))
    lake = work / "lake"
    params = {"rows": args.rows, "seed": 1, "days": args.days}
    out: dict[str, object] = {"rows": args.rows, "cpus": os.cpu_count(), "load": os.getloadavg()}
    try:
        with Engine.open(work / "db.duckdb", card_key="bench", lake=str(lake)) as engine:
            engine.store.set_memory_limit(args.memory_limit)
            gen = {"lake": [], "db": []}
            runs: dict[str, int] = {}
            for i in range(args.repeat):
                order = ("lake", "db") if i % 2 == 0 else ("db", "lake")
                for kind in order:
                    if kind == "lake":
                        seconds, record = _timed(engine.simulate_into_lake, lake, params)
                    else:
                        seconds, record = _timed(engine.simulate, params)
                    gen[kind].append(args.rows / seconds)
                    runs.setdefault(kind, record.id)
            out["generate_rows_per_s"] = {k: round(statistics.median(v)) for k, v in gen.items()}
            assert engine.run_content_hash(runs["lake"]) == engine.run_content_hash(runs["db"])

            exports = {}
            for kind, run in runs.items():
                target = work / f"export-{kind}.parquet"
                seconds, rows = _timed(engine.export_run, run, target)
                assert rows == args.rows
                exports[kind] = round(rows / seconds)
                exports[f"{kind}_mb"] = round(target.stat().st_size / 2**20)
                target.unlink()
            start = time.perf_counter()
            copied = work / "copied"
            shutil.copytree(lake / "transactions", copied)
            exports["file_copy_floor"] = round(args.rows / (time.perf_counter() - start))
            shutil.rmtree(copied)
            out["export_rows_per_s"] = exports

            candidate = Policy.model_validate(CANDIDATE)
            backtests: dict[str, list[float]] = {"lake": [], "db": []}
            answers = {}
            for _ in range(3 * args.repeat):
                for kind in ("lake", "db"):
                    seconds, result = _timed(engine.backtest, candidate, run=runs[kind])
                    backtests[kind].append(seconds)
                    answers[kind] = result.model_dump(exclude={"elapsed_ms", "filters"})
            assert answers["lake"] == answers["db"], "a lake backtest must equal the file's"
            out["backtest_median_s"] = {
                k: round(statistics.median(v), 3) for k, v in backtests.items()
            }
            out["lake_mb"] = round(
                sum(f.stat().st_size for f in (lake / "transactions").rglob("*.parquet")) / 2**20
            )
            out["db_mb"] = round((work / "db.duckdb").stat().st_size / 2**20)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["load_after"] = os.getloadavg()
    out["python"] = platform.python_version()
    gen, exp, bt = out["generate_rows_per_s"], out["export_rows_per_s"], out["backtest_median_s"]
    print(f"{'rows':>12} {args.rows:>14,}")
    print(f"{'generate':>12} lake {gen['lake']:>12,} rows/s   db file {gen['db']:>12,} rows/s")
    print(
        f"{'export':>12} lake {exp['lake']:>12,} rows/s   db file {exp['db']:>12,} rows/s   "
        f"file copy {exp['file_copy_floor']:>12,} rows/s"
    )
    print(f"{'backtest':>12} lake {bt['lake']:>12} s        db file {bt['db']:>12} s")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
