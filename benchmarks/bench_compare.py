"""A comparison of two 20-rule policies over stored rows, with costs and intervals, next to a
backtest of one of them (the reference), measured back to back in one run.

One command: ``.venv/bin/python benchmarks/bench_compare.py [--rows N] [--repeat K]
[--capacity C] [--db PATH]`` (default 10,000,000 rows: one run generated first, then
``--repeat`` alternating calls each). ``--db`` keeps the generated database in ``PATH`` and
reuses it when it already holds a run of ``--rows`` rows (generating 10M rows takes minutes).

* **compare**: ``Engine.compare`` of the 20-rule policy of ``bench_policies.py`` (A) and a
  variant with five thresholds moved (B), with the default cost model, a review capacity of
  ``--capacity`` payments a day (default 200; 0: none) and 2,000 bootstrap replicates; target
  <= 2.0 s median (issue 14);
* **backtest**: ``Engine.backtest`` of policy A against the active (default) policy, per-rule
  figures and overlap included, priced (one scan: the comparison of the same two policies with
  the backtest's own grouping added, since backtests answer in money), for reference.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_policies import prepare_lists, rules_20  # noqa: E402

from engine.costs import CostModel  # noqa: E402
from engine.service import Engine  # noqa: E402


def variant(rules: list[dict[str, str]]) -> list[dict[str, str]]:
    """The same rules with five thresholds moved: what an analyst's next draft looks like."""
    moved = {
        ":amount: > 5000": ":amount: > 3000",
        ":payments_per_card_1h: >= 10": ":payments_per_card_1h: >= 6",
        ":cards_per_device_24h: >= 5": ":cards_per_device_24h: >= 3",
        ":risk_score: >= 0.8": ":risk_score: >= 0.7",
        ":payments_per_device_1h: >= 8": ":payments_per_device_1h: >= 5",
    }
    return [{**r, "when": moved.get(r["when"], r["when"])} for r in rules]


@contextlib.contextmanager
def database(path: str | None) -> Iterator[Path]:
    """``path`` (kept), or a file in a temporary folder removed afterwards."""
    if path is not None:
        yield Path(path)
        return
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "cmp.duckdb"


def the_run(engine: Engine, rows: int) -> int:
    """The id of the database's run of ``rows`` rows, generated (with the lists) if missing."""
    for record in engine.list_runs():
        if record.summary.get("rows") == rows:
            return record.id
    prepare_lists(engine)
    started = time.perf_counter()
    run = engine.simulate({"rows": rows, "seed": 3, "days": 30})
    print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
    return run.id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--capacity", type=int, default=200, help="reviews a day (0: none)")
    parser.add_argument("--db", help="keep the database here and reuse its run")
    args = parser.parse_args()
    costs = CostModel(review_capacity=args.capacity or None)
    with (
        database(args.db) as path,
        Engine.open(path, backup_interval_s=0, card_key="bench") as engine,
    ):
        run_id = the_run(engine, args.rows)
        a, b = engine.draft_policy(rules_20()), engine.draft_policy(variant(rules_20()))
        times: dict[str, list[float]] = {"backtest": [], "compare": []}
        loads = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            engine.backtest(a, run=run_id)
            times["backtest"].append(time.perf_counter() - start)
            start = time.perf_counter()
            result = engine.compare(a, b, run=run_id, costs=costs)
            times["compare"].append(time.perf_counter() - start)
            loads.append(os.getloadavg()[0])
            assert result.a.rows == args.rows
    if not args.repeat:
        return 0
    backtest, compare = (statistics.median(times[k]) for k in ("backtest", "compare"))
    verdict = "meets" if compare <= 2.0 else "misses"
    capacity = f"capacity {args.capacity}/day" if args.capacity else "no review capacity"
    print(f"\ncompare times: {', '.join(f'{t:.2f}' for t in times['compare'])} s; "
          f"backtest: {', '.join(f'{t:.2f}' for t in times['backtest'])} s; "
          f"1-min load average after each: {', '.join(f'{x:.1f}' for x in loads)}")  # fmt: skip
    print("\n| measurement | median | against |\n|---|---:|---|")
    print(f"| backtest {args.rows:,} rows, 20 rules vs default | {backtest:.2f} s | reference |")
    print(
        f"| compare {args.rows:,} rows, two 20-rule policies, costs, {capacity}, 2,000 "
        f"replicates | {compare:.2f} s | {compare / backtest:.1f}x the backtest; target 2.0 s: "
        f"{verdict} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
