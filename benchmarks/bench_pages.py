"""Dashboard page speed: the engine calls behind each page, at 1 and 10 million stored rows.

    .venv/bin/python benchmarks/bench_pages.py                 # 1M and 10M rows (~2 minutes)
    .venv/bin/python benchmarks/bench_pages.py --rows 1000000  # one size
    .venv/bin/python benchmarks/bench_pages.py --render        # also time full AppTest page runs

The database is built with the bulk generator (runs of at most 5M rows, so 10M = two runs) plus
200 live payments, in a temporary directory (``--keep DIR`` keeps and reuses the files). Every
call is timed ``--repeat`` times after one warm-up; the table shows the median and worst wall
time and the median CPU time of the process (all threads), which contention on a shared machine
does not inflate (idle 2-core machine: wall ≈ CPU / 2 for DuckDB's parallel scans). A reference
measured in the same run (a full scan summing ``amount``) shows how fast the machine is at that
moment. Targets: each page interaction < 1.5 s, a backtest < 1 s at 10M rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import analytics
from engine.policy import Policy
from engine.service import Engine
from engine.simulation.params import SimulationParams

RUN_ROWS = 5_000_000
LIVE_PAYMENTS = 200
CANDIDATE = Policy(score_threshold=0.55, velocity_limit=8, high_amount_decline_prob=0.4)


def build(engine: Engine, rows: int) -> None:
    """Fill an empty database: simulation runs totalling ``rows`` plus 200 live payments."""
    done, run = 0, 0
    while done < rows:
        n = min(RUN_ROWS, rows - done)
        engine.simulate(
            SimulationParams(rows=n, seed=100 + run, days=30, fraud_rate=0.02, chunk_rows=500_000)
        )
        done += n
        run += 1
    for i in range(LIVE_PAYMENTS):
        engine.authorize(
            {
                "card_number": f"4000{i % 50:012d}",
                "amount": f"{10 + i}.50",
                "currency": "GBP",
                "merchant": "Bench Shop",
                "channel": "ecommerce",
                "device_id": f"bench-{i % 20}",
            }
        )


def page_calls(engine: Engine) -> list[tuple[str, str, Callable[[], Any]]]:
    """(page, interaction, call) for what each page asks the engine."""
    latest = engine.latest_transaction_id()
    sim_row = engine.store.query("SELECT max(id) FROM transactions WHERE run_id = 1")[0][0]
    day = timedelta(days=1)

    def fresh(**filters: Any) -> Callable[[], Any]:
        """A dashboard computed from the data (memo cleared: as after any new payment)."""

        def call() -> Any:
            analytics.MEMO.clear()
            return engine.dashboard(**filters)

        return call

    def open_dashboard() -> None:
        engine.filter_options()
        fresh()()

    def inspect(tx: Any) -> Callable[[], None]:
        def call() -> None:
            engine.get_transaction(tx)
            engine.get_audit(tx)

        return call

    def open_inspect() -> None:
        inspect(engine.latest_transaction_id())()

    def open_tuning() -> None:
        engine.filter_options()
        engine.backtest(CANDIDATE)

    def open_simulations() -> None:
        runs = engine.list_runs()
        engine.get_run(runs[0].id)

    def open_admin() -> None:
        engine.health()
        engine.stats()
        engine.store.file_size_bytes()
        engine.list_runs()

    payment = {
        "card_number": "4111111111111111",
        "amount": "42.00",
        "currency": "GBP",
        "merchant": "Bench Shop",
        "channel": "pos",
    }
    return [
        (
            "reference",
            "full scan: SELECT sum(amount)",
            lambda: engine.store.query("SELECT sum(amount) FROM transactions"),
        ),
        ("Live dashboard", "open (filter options + all traffic)", open_dashboard),
        ("Live dashboard", "fragment refresh, all traffic", fresh()),
        ("Live dashboard", "refresh, no new rows (memo)", lambda: engine.dashboard()),
        (
            "Live dashboard",
            "run 1, pos, latest 24 h",
            fresh(run=1, channels=("pos",), latest=day),
        ),
        ("Live dashboard", "live traffic only", fresh(run="live")),
        ("Submit payment", "authorize one payment", lambda: engine.authorize(payment)),
        ("Inspect", "open (latest id + lookup + audit)", open_inspect),
        ("Inspect", "look up a live payment", inspect(latest)),
        ("Inspect", "look up a simulation row", inspect(sim_row)),
        ("Threshold tuning", "open (filter options + backtest)", open_tuning),
        ("Threshold tuning", "backtest, all rows", lambda: engine.backtest(CANDIDATE)),
        ("Threshold tuning", "backtest, run 1", lambda: engine.backtest(CANDIDATE, run=1)),
        (
            "Threshold tuning",
            "backtest, run 1, latest 24 h",
            lambda: engine.backtest(CANDIDATE, run=1, latest=day),
        ),
        ("Simulations", "open (runs list + run record)", open_simulations),
        ("Admin", "open (health, stats, size, runs)", open_admin),
    ]


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float, float]:
    """(median wall, worst wall, median CPU) seconds over ``repeat`` runs after a warm-up.

    CPU time is this process's, all threads: on a shared machine it shows the work done, which
    contention does not inflate; on an idle 2-core machine the wall time is about CPU / 2 for
    DuckDB's parallel scans."""
    call()
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), max(walls), statistics.median(cpus)


def render_times(engine: Engine, repeat: int) -> list[tuple[str, float, float, float]]:
    """Full server-side page runs (script + engine calls + figures) through AppTest."""
    from streamlit.testing.v1 import AppTest

    from engine.config import PROJECT_ROOT
    from workbench.runtime import install_shared_engine

    install_shared_engine(engine)
    results = []
    for page in ("live", "submit", "inspect", "tuning", "simulations", "admin"):
        at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=120)
        at.run()
        at.switch_page(f"workbench/pages/{page}.py")

        def run_page(at: AppTest = at) -> None:
            at.run()
            if at.exception:
                raise RuntimeError(at.exception[0].message)

        results.append((page, *timed(run_page, repeat)))
    return results


def load() -> str:
    """The 1/5/15-minute load averages (the machine is shared: read figures against it)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--keep", type=Path, help="keep the databases in this directory and reuse them"
    )
    parser.add_argument("--render", action="store_true", help="also time AppTest page runs")
    args = parser.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average {load()}"
    )
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            path = (args.keep or Path(tmp)) / f"bench_{rows}.duckdb"
            engine = Engine.open(path, seed=1, max_simulation_rows=RUN_ROWS)
            try:
                stored = engine.stats().total
                if not rows + LIVE_PAYMENTS <= stored < rows + 2 * LIVE_PAYMENTS:
                    engine.reset()
                    start = time.perf_counter()
                    build(engine, rows)
                    print(
                        f"\nbuilt {engine.stats().total:,} rows in "
                        f"{time.perf_counter() - start:.1f} s"
                    )
                print(
                    f"\n## {engine.stats().total:,} rows "
                    f"({engine.store.file_size_bytes() / 1e9:.2f} GB)\n"
                )
                print(f"| {'page':<17} | {'interaction':<38} | wall s | worst s | CPU s |")
                print(f"|{'-' * 19}|{'-' * 40}|-------:|--------:|------:|")
                for page, what, call in page_calls(engine):
                    wall, worst, cpu = timed(call, args.repeat)
                    print(
                        f"| {page:<17} | {what:<38} | {wall:6.3f} | {worst:7.3f} | {cpu:5.3f} |",
                        flush=True,
                    )
                if args.render:
                    print(f"\n| {'page (AppTest run)':<19} | wall s | worst s | CPU s |")
                    print(f"|{'-' * 21}|-------:|--------:|------:|")
                    for page, wall, worst, cpu in render_times(engine, args.repeat):
                        print(
                            f"| {page:<19} | {wall:6.3f} | {worst:7.3f} | {cpu:5.3f} |", flush=True
                        )
                print(f"\nload average after: {load()}")
            finally:
                if args.render:
                    from workbench.runtime import close_shared_engine

                    close_shared_engine()  # the installed shared engine is this one
                else:
                    engine.close()


if __name__ == "__main__":
    main()
