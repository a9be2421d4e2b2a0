"""Policies as rules, end to end: compiling, bulk generation and backtests with a 20-rule policy
next to the default policy, measured back to back in one run.

One command: ``.venv/bin/python benchmarks/bench_policies.py [--rows N] [--bulk-rows N]``
(defaults: 10,000,000 rows backtested, 1,000,000 generated per bulk run).

* **compile**: ``Decider`` of a 200-rule policy (what activating or backtesting one costs: parse,
  check, numpy and flag compilation), cold (the parser's cache cleared each time), median;
* **bulk**: ``Engine.simulate`` of ``--bulk-rows`` rows, end to end (population, features,
  decisions, Arrow, DuckDB append, commit), under the default policy and under the 20-rule
  policy with two stored lists (a 100,000-card list and a 1,000-merchant list), alternating,
  median of ``--repeat`` each: the 20-rule run must keep >= 90% of the default's rows/s;
* **backtest**: ``Engine.backtest`` over ``--rows`` stored rows (one run generated first) of
  the 20-rule candidate (per-rule figures and overlap included) and of the default policy as the
  candidate (the reference), alternating, median of ``--repeat`` each; target <= 1.0 s.

The live path's figure (c=32, 20 rules, durable payments/s) comes from
``benchmarks/bench_payments.py --policy rules20`` beside ``--policy default``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_rules import RULES_20, rules_200  # noqa: E402

from engine.decision import Decider  # noqa: E402
from engine.policy import DEFAULT_POLICY, Policy  # noqa: E402
from engine.rules.parser import _parse  # noqa: E402
from engine.service import Engine  # noqa: E402


def rules_20() -> list[dict[str, str]]:
    """The 20 rules of bench_rules.py, named."""
    return [{"name": f"rule {i}", "action": a, "when": w} for i, (a, w) in enumerate(RULES_20)]


def card_numbers(n: int, seed: int = 5) -> list[str]:
    """``n`` distinct 16-digit card numbers (what a stolen-card list holds)."""
    rng = np.random.default_rng(seed)
    numbers = rng.choice(9 * 10**15, size=n, replace=False) + 10**15
    return [str(int(x)) for x in numbers]


def prepare_lists(engine: Engine) -> None:
    """The two lists the 20 rules read, as the API would store them."""
    engine.put_list("stolen_cards", "card", card_numbers(100_000))
    engine.put_list("risky_merchants", "merchant", [f"m{k}" for k in range(0, 5_000, 5)])


def median_s(
    fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_compile(repeat: int) -> list[str]:
    policy = Policy(rules=tuple(rules_200()))
    ms = median_s(lambda: Decider(policy, _fake_lists()), repeat, _parse.cache_clear) * 1000
    verdict = "meets" if ms <= 50 else "misses"
    return [f"| compile 200 rules (Decider) | {ms:,.1f} ms | target 50 ms: {verdict} |"]


def _fake_lists() -> dict:
    from engine.rules import ListSpec

    return {
        "stolen_cards": ListSpec("card", [bytes(16)]),
        "risky_merchants": ListSpec("merchant", ["m0"]),
    }


def bench_bulk(rows: int, repeat: int) -> list[str]:
    with (
        tempfile.TemporaryDirectory() as folder,
        Engine.open(Path(folder) / "bulk.duckdb", backup_interval_s=0, card_key="bench") as engine,
    ):
        prepare_lists(engine)
        twenty = engine.create_policy(rules_20(), note="20 rules")
        default = engine.policy(1)
        seconds: dict[str, list[float]] = {"default": [], "20 rules": []}
        for i in range(repeat):
            for label, policy in (("default", default), ("20 rules", twenty)):
                engine.activate_version(policy.version, label)
                start = time.perf_counter()
                engine.simulate({"rows": rows, "seed": 11 + i, "days": 3})
                seconds[label].append(time.perf_counter() - start)
    base = rows / statistics.median(seconds["default"])
    rules = rows / statistics.median(seconds["20 rules"])
    ratio = rules / base
    return [
        f"| bulk {rows:,} rows, default policy | {base:,.0f} rows/s | reference |",
        f"| bulk {rows:,} rows, 20 rules + 2 lists | {rules:,.0f} rows/s | "
        f"{ratio:.0%} of default (target 90%: {'meets' if ratio >= 0.9 else 'misses'}) |",
    ]


def bench_backtest(rows: int, repeat: int) -> list[str]:
    with (
        tempfile.TemporaryDirectory() as folder,
        Engine.open(Path(folder) / "bt.duckdb", backup_interval_s=0, card_key="bench") as engine,
    ):
        prepare_lists(engine)
        started = time.perf_counter()
        run = engine.simulate({"rows": rows, "seed": 3, "days": 30})
        print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
        twenty = engine.draft_policy(rules_20())
        times: dict[str, list[float]] = {"default": [], "20 rules": []}
        for _ in range(repeat):
            for label, policy in (("default", DEFAULT_POLICY), ("20 rules", twenty)):
                start = time.perf_counter()
                result = engine.backtest(policy, run=run.id)
                times[label].append(time.perf_counter() - start)
                assert result.candidate.rows == rows
    base = statistics.median(times["default"])
    rules = statistics.median(times["20 rules"])
    verdict = "meets" if rules <= 1.0 else "misses"
    return [
        f"| backtest {rows:,} rows, default policy as candidate | {base:.2f} s | reference |",
        f"| backtest {rows:,} rows, 20 rules (per-rule figures, overlap) | {rules:.2f} s | "
        f"target 1.0 s: {verdict} |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows to backtest over")
    parser.add_argument("--bulk-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("compile", "bulk", "backtest"))
    args = parser.parse_args()
    lines = []
    if args.only in (None, "compile"):
        lines += bench_compile(max(args.repeat, 5))
    if args.only in (None, "bulk"):
        lines += bench_bulk(args.bulk_rows, args.repeat)
    if args.only in (None, "backtest"):
        lines += bench_backtest(args.rows, args.repeat)
    print("\n| measurement | median | against |\n|---|---:|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
