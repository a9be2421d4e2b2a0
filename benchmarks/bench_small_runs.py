"""Small runs are fast too: ``ptsim generate`` rows/s at 400k rows over 7 and 60 days, and 10M.

    .venv/bin/python benchmarks/bench_small_runs.py                  # the three cases, once
    .venv/bin/python benchmarks/bench_small_runs.py --repeat 3       # interleaved, medians
    .venv/bin/python benchmarks/bench_small_runs.py --no-10m --tree /path/to/other/checkout

Each measurement is one fresh ``ptsim generate`` process on a fresh database file (``python -m
workbench.cli`` run from ``--tree``, this checkout by default, so two versions of the code can
be compared on the same machine state). **cli** is the rate the command itself reports (the run's
``rows_per_s``: population, stream, features, decisions, Arrow, DuckDB writes, rollups; not the
process start-up, imports and migrations, which ``wall`` includes). **floor** is the bare append
of as many rows with the same columns and chunk size through the same Arrow → DuckDB path
(``bench_bulk.py``'s floor): the same-run reference a run cannot beat by much.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    ("400k, 7 days", 400_000, 7),
    ("400k, 60 days", 400_000, 60),
    ("10M, 30 days", 10_000_000, 30),
]
_REPORTED = re.compile(r"rows in ([\d.]+) s \(([\d,]+) rows/s\)")


def _cli(tree: Path, rows: int, days: int, db: Path) -> dict:
    """One ``ptsim generate`` run: the seconds and rows/s it reports, and its wall time."""
    cmd = [sys.executable, "-m", "workbench.cli", "generate", "--rows", str(rows), "--seed", "1",
           "--days", str(days), "--db", str(db), "--quiet"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - start
    found = _REPORTED.search(done.stdout)
    if done.returncode != 0 or not found:
        raise SystemExit(f"ptsim generate failed:\n{done.stdout}\n{done.stderr}")
    return {"seconds": float(found[1]), "rows_per_s": float(found[2].replace(",", "")),
            "wall": wall}  # fmt: skip


def _floor(rows: int, days: int, db: Path) -> dict:
    # no --chunk-rows: the floor writes the chunk ptsim generate writes
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_bulk.py"), "--worker", "floor",
           "--rows", str(rows), "--db", str(db), "--days", str(days), "--fraud-rate", "0.01",
           "--memory-limit", "512MB"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"floor failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"seconds": result["seconds"], "rows_per_s": rows / result["seconds"]}


def _fresh(db: Path) -> Path:
    for stale in (db, db.with_name(db.name + ".wal"), db.with_name(db.name + ".cardkey")):
        stale.unlink(missing_ok=True)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="rounds, interleaved; medians")
    parser.add_argument("--tree", default=str(ROOT), help="checkout whose ptsim is measured")
    parser.add_argument("--no-10m", action="store_true", help="only the 400k-row cases")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare-append reference")
    args = parser.parse_args()
    cases = CASES[:2] if args.no_10m else CASES
    workdir = Path(tempfile.mkdtemp(prefix="ptsim-small-"))
    print(f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f}; "
          f"tree {args.tree}; seed 1, fraud rate 0.01, memory_limit 512MB")  # fmt: skip
    results: dict[str, dict[str, list[dict]]] = {c[0]: {"cli": [], "floor": []} for c in cases}
    for _ in range(args.repeat):
        for name, rows, days in cases:
            db = _fresh(workdir / "run.duckdb")
            results[name]["cli"].append(_cli(Path(args.tree), rows, days, db))
            if not args.no_floor:
                results[name]["floor"].append(_floor(rows, days, _fresh(workdir / "floor.duckdb")))
    _fresh(workdir / "run.duckdb"), _fresh(workdir / "floor.duckdb")
    header = (f"{'case':<15} {'cli rows/s':>11} {'cli s':>7} {'wall s':>7} "
              f"{'floor rows/s':>13} {'cli/floor':>9}  runs")  # fmt: skip
    print(header)
    print("-" * len(header))
    for name, _, _ in cases:
        cli, floor = results[name]["cli"], results[name]["floor"]
        rate = statistics.median(r["rows_per_s"] for r in cli)
        seconds = statistics.median(r["seconds"] for r in cli)
        wall = statistics.median(r["wall"] for r in cli)
        floor_rate = statistics.median(r["rows_per_s"] for r in floor) if floor else None
        ratio = f"{rate / floor_rate:.0%}" if floor_rate else "-"
        floor_text = f"{floor_rate:,.0f}" if floor_rate else "-"
        print(f"{name:<15} {rate:>11,.0f} {seconds:>7.2f} {wall:>7.2f} {floor_text:>13} "
              f"{ratio:>9}  {len(cli)}")  # fmt: skip
    print(f"load average at end {os.getloadavg()[0]:.2f} (medians; cli = as ptsim reports it)")


if __name__ == "__main__":
    main()
