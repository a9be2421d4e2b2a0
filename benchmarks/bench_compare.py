"""A comparison of two 20-rule policies over stored rows, with costs and intervals, next to a
backtest of one of them (the reference), measured back to back in one run.

One command: ``.venv/bin/python benchmarks/bench_compare.py [--rows N] [--repeat K]``
(default 10,000,000 rows: one run generated first, then ``--repeat`` alternating calls each).

* **compare**: ``Engine.compare`` of the 20-rule policy of ``bench_policies.py`` (A) and a
  variant with five thresholds moved (B), with the default cost model and 2,000 bootstrap
  replicates; target <= 2.0 s median (issue 14);
* **backtest**: ``Engine.backtest`` of policy A against the active (default) policy, per-rule
  figures and overlap included, priced (its scan plus a comparison of the same two policies,
  since backtests answer in money), for reference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_policies import prepare_lists, rules_20  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        Engine.open(Path(folder) / "cmp.duckdb", backup_interval_s=0, card_key="bench") as engine,
    ):
        prepare_lists(engine)
        started = time.perf_counter()
        run = engine.simulate({"rows": args.rows, "seed": 3, "days": 30})
        print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
        a, b = engine.draft_policy(rules_20()), engine.draft_policy(variant(rules_20()))
        times: dict[str, list[float]] = {"backtest": [], "compare": []}
        for _ in range(args.repeat):
            start = time.perf_counter()
            engine.backtest(a, run=run.id)
            times["backtest"].append(time.perf_counter() - start)
            start = time.perf_counter()
            result = engine.compare(a, b, run=run.id)
            times["compare"].append(time.perf_counter() - start)
            assert result.a.rows == args.rows
    backtest, compare = (statistics.median(times[k]) for k in ("backtest", "compare"))
    verdict = "meets" if compare <= 2.0 else "misses"
    print("\n| measurement | median | against |\n|---|---:|---|")
    print(f"| backtest {args.rows:,} rows, 20 rules vs default | {backtest:.2f} s | reference |")
    print(
        f"| compare {args.rows:,} rows, two 20-rule policies, costs, 2,000 replicates | "
        f"{compare:.2f} s | {compare / backtest:.1f}x the backtest; target 2.0 s: {verdict} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
