"""Bulk generation benchmark: rows/s end to end and peak memory, against the raw floor.

    .venv/bin/python benchmarks/bench_bulk.py                 # 1M and 10M rows
    .venv/bin/python benchmarks/bench_bulk.py --sizes 1M,10M,50M
    .venv/bin/python benchmarks/bench_bulk.py --sizes 10M --repeat 5   # medians, interleaved

Each measurement runs in a fresh subprocess (so ``ru_maxrss`` is that run's peak) on a fresh
database file:

* **full** — ``Engine.simulate``: population (one HMAC per card), event stream, history
  features, vectorized decisions, Arrow tables, DuckDB appends with rollups and run progress.
* **floor** — the same columns drawn as plain uniform numpy values (no population profiles,
  scenarios, features or decisions) and appended through the same Arrow → DuckDB write path,
  same chunk size; the ratio full/floor says how close the pipeline gets to the raw append.

At the largest size the full run also times ``Engine.get_transaction`` and ``Engine.get_audit``
by id on random rows (ids grow with insertion, so DuckDB's zone maps prune the scan).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.simulation.params import ROW_GROUP_ROWS  # noqa: E402


def _size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _full(db: Path, rows: int, args: argparse.Namespace) -> dict:
    from engine.service import Engine

    with Engine.open(db, card_key="bench-key") as engine:
        engine.store.set_memory_limit(args.memory_limit)  # as the CLI
        start, cpu = time.perf_counter(), time.process_time()
        run = engine.simulate(
            {
                "rows": rows,
                "seed": 1,
                "days": args.days,
                "fraud_rate": args.fraud_rate,
                "chunk_rows": args.chunk_rows,
            }
        )
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        result = {"seconds": seconds, "cpu_seconds": cpu, "timings": run.timings}
        if args.lookups:
            result["lookups"] = _lookups(engine, run.id)
    result["peak_rss_mib"] = _peak_rss_mib()
    result["db_mib"] = db.stat().st_size / 2**20
    return result


def _lookups(engine, run_id: int, samples: int = 200) -> dict:
    ids = [
        r[0]
        for r in engine.store.query(
            f"SELECT id FROM transactions WHERE run_id = ? USING SAMPLE {samples} ROWS", [run_id]
        )
    ]
    out = {}
    for name, call in (
        ("get_transaction", engine.get_transaction),
        ("get_audit", engine.get_audit),
    ):
        call(ids[0])  # warm
        times = []
        for tid in ids:
            start = time.perf_counter()
            call(tid)
            times.append((time.perf_counter() - start) * 1000)
        out[name] = {
            "median_ms": statistics.median(times),
            "p95_ms": float(np.percentile(times, 95)),
            "max_ms": max(times),
        }
    return out


def _floor(db: Path, rows: int, args: argparse.Namespace) -> dict:
    import pyarrow as pa

    from engine.decision import ACTION_LABELS, Decisions
    from engine.features import FeatureColumns, HistoryCounts
    from engine.ids import IdAllocator
    from engine.simulation import SimulationParams
    from engine.simulation.population import population_size
    from engine.simulation.rows import Rows
    from engine.simulation.table import transactions_table
    from engine.simulation.world import WorldColumns
    from engine.store import RollupDelta, Store

    params = SimulationParams(rows=rows, days=args.days, chunk_rows=args.chunk_rows)
    step = params.write_chunk_rows  # what the full run writes per transaction
    sizes = population_size(params)
    n_cards, n_merchants = sizes.cards, sizes.merchants
    pop = _random_dictionaries(n_cards, n_merchants)
    store, ids = Store(db), IdAllocator()
    store.set_memory_limit(args.memory_limit)
    rng = np.random.default_rng(1)
    start, cpu = time.perf_counter(), time.process_time()
    for first in range(0, rows, step):
        k = min(step, rows - first)
        u = rng.random((6, k))
        i = rng.integers(0, 2**31 - 1, (6, k))
        chunk = Rows(
            t_ms=1_767_225_600_000 + np.sort(i[0] % (args.days * 86_400_000)),
            card=i[1] % n_cards,
            merchant=(i[2] % n_merchants).astype(np.int32),
            channel=(i[3] % 5).astype(np.int8),
            device=(i[4] % (len(pop.device_names) + 1)) - 1,
            currency=(i[5] % 5).astype(np.int8),
            amount_cents=(i[3] % 500_000).astype(np.int64),
            draw=u[0],
            latency_ms=u[1] * 200,
            scenario=np.where(u[2] < 0.01, (i[0] % 4), -1).astype(np.int8),
            label_at_ms=i[1].astype(np.int64),
            dispute=np.where(u[2] < 0.01, 1, -1).astype(np.int8),
        )
        small = (i[5] % 7).astype(np.int64)
        counts = HistoryCounts(small, small, small, u[3] < 0.03, *[small] * 6)
        features = FeatureColumns(u[3], u[4], u[5])
        flagged = np.where(u[4] < 0.1, i[0] % 20, -1).astype(np.int16)
        decisions = Decisions(u[2], u[2] < 0.9, (i[2] % 5).astype(np.int8), flagged,
                              (i[3] % len(ACTION_LABELS)).astype(np.int8), flagged)  # fmt: skip
        # the world columns: an IP on about 40% of rows, in one of ~250 countries
        ip = np.where(u[5] < 0.4, i[0] % len(pop.ip_names), -1)
        world = WorldColumns(ip, np.where(ip < 0, -1, i[1] % 250).astype(np.int16))
        table = transactions_table(
            chunk, pop, counts, features, decisions, 1, 1, i[4] % 99_999, world
        ).append_column("challenge_draw", pa.array(u[1], pa.float64()))
        rollup = RollupDelta.from_columns(
            1, decisions.approved, chunk.amount_cents, chunk.latency_ms
        )
        with store.write() as tx:
            tx.append_transactions(table.add_column(0, "id", ids.next_block(k)))
            tx.add_to_rollups(rollup)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    store.close()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mib": _peak_rss_mib(),
        "db_mib": db.stat().st_size / 2**20,
    }


def _random_dictionaries(n_cards: int, n_merchants: int):
    """String dictionaries of the population's sizes, from random bytes (no HMAC)."""
    from types import SimpleNamespace

    import pyarrow as pa

    from engine.geo import ip_texts
    from engine.simulation.population import hex_strings

    rng = np.random.default_rng(2)
    n_devices = int(n_cards * 0.8) + max(n_cards // 200, 8)
    n_ips = int(n_cards * 2.13)  # as many addresses as a population has (engine.simulation)
    return SimpleNamespace(
        card_digest=rng.integers(0, 256, (n_cards, 16), dtype=np.uint8),
        card_bin=rng.integers(0, 7, n_cards).astype(np.int8),
        card_last4=rng.integers(0, 10_000, n_cards).astype(np.int16),
        card_country=rng.integers(0, 20, n_cards).astype(np.int8),
        merchant_category=rng.integers(0, 20, n_merchants).astype(np.int8),
        merchant_country=rng.integers(0, 20, n_merchants).astype(np.int8),
        ip_names=ip_texts(rng.integers(0, 2**32, n_ips, dtype=np.uint64).astype(np.uint32)),
        merchant_names=pa.array([f"Merchant {m:05d}" for m in range(n_merchants)]),
        device_names=hex_strings(rng.integers(0, 256, (n_devices, 6), dtype=np.uint8)),
    )


def _worker(args: argparse.Namespace) -> None:
    db = Path(args.db)
    result = (_full if args.worker == "full" else _floor)(db, args.rows, args)
    print(json.dumps(result))


def _spawn(mode: str, rows: int, args: argparse.Namespace, workdir: Path, lookups: bool) -> dict:
    db = workdir / f"{mode}-{rows}.duckdb"
    for stale in (db, db.with_name(db.name + ".wal"), db.with_name(db.name + ".cardkey")):
        stale.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--worker", mode, "--rows", str(rows), "--db", str(db),
           "--days", str(args.days), "--fraud-rate", str(args.fraud_rate),
           "--chunk-rows", str(args.chunk_rows), "--memory-limit", args.memory_limit]  # fmt: skip
    if lookups:
        cmd.append("--lookups")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{mode} {rows}: worker failed\n{done.stderr}")
    for stale in (db, db.with_name(db.name + ".wal"), db.with_name(db.name + ".cardkey")):
        stale.unlink(missing_ok=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _print_row(rows: int, mode: str, r: dict, ratio: str) -> None:
    print(f"{rows:>12,} {mode:>6} {r['seconds']:>8.2f} {rows / r['seconds']:>11,.0f} "
          f"{r['cpu_seconds']:>7.2f} {r['peak_rss_mib']:>12,.0f} {r['db_mib']:>8,.0f} "
          f"{ratio:>10}")  # fmt: skip


def _print_medians(rows: int, runs: dict[str, list[dict]]) -> None:
    for mode, done in runs.items():
        if not done:
            continue
        rates = sorted(rows / r["seconds"] for r in done)
        print(f"{rows:>12,} {mode:>6} median {statistics.median(rates):>11,.0f} rows/s over "
              f"{len(rates)} runs (min {rates[0]:,.0f}, max {rates[-1]:,.0f}); peak RSS max "
              f"{max(r['peak_rss_mib'] for r in done):,.0f} MiB")  # fmt: skip
    if runs["floor"]:
        pairs = zip(runs["full"], runs["floor"], strict=True)
        ratios = [floor["seconds"] / full["seconds"] for full, floor in pairs]
        print(f"{'':>12} full/floor median {statistics.median(ratios):.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M", help="comma-separated, e.g. 1M,10M,50M")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--fraud-rate", type=float, default=0.01)
    parser.add_argument(
        "--chunk-rows", type=int, default=ROW_GROUP_ROWS, help="as ptsim generate's option"
    )
    parser.add_argument("--memory-limit", default="512MB", help="DuckDB memory_limit (as the CLI)")
    parser.add_argument("--workdir", help="where the temporary databases go (default: a tmp dir)")
    parser.add_argument("--no-floor", action="store_true", help="skip the raw floor runs")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of (full, floor) per size, interleaved; medians printed when > 1",
    )
    parser.add_argument("--worker", choices=["full", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--lookups", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    sizes = [_size(s) for s in args.sizes.split(",")]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ptsim-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average at start "
          f"{os.getloadavg()[0]:.2f}; chunk {args.chunk_rows:,} rows, "
          f"{args.days} days, fraud rate {args.fraud_rate}, "
          f"DuckDB memory_limit {args.memory_limit}")  # fmt: skip
    header = (f"{'rows':>12} {'mode':>6} {'seconds':>8} {'rows/s':>11} {'cpu s':>7} "
              f"{'peak RSS MiB':>12} {'db MiB':>8} {'full/floor':>10}")  # fmt: skip
    print(header)
    print("-" * len(header))
    lookups = None
    for rows in sizes:
        runs: dict[str, list[dict]] = {"full": [], "floor": []}
        for round_ in range(args.repeat):  # interleaved: both modes see the same machine state
            full = _spawn("full", rows, args, workdir, lookups=rows == max(sizes) and not round_)
            floor = None if args.no_floor else _spawn("floor", rows, args, workdir, lookups=False)
            for mode, r in (("full", full), ("floor", floor)):
                if r is None:
                    continue
                runs[mode].append(r)
                ratio = f"{floor['seconds'] / full['seconds']:.0%}" if floor and r is full else ""
                _print_row(rows, mode, r, ratio)
            print(f"{'':>12} stages (s, overlapping): {json.dumps(full['timings'])}")
            lookups = full.get("lookups", lookups)
        if args.repeat > 1:
            _print_medians(rows, runs)
    if lookups:
        print(f"\nlookups by id at {max(sizes):,} rows (200 random rows, ms):")
        for name, t in lookups.items():
            print(f"  {name:16s} median {t['median_ms']:.2f}  p95 {t['p95_ms']:.2f}  "
                  f"max {t['max_ms']:.2f}")  # fmt: skip
    print(f"\nload average at end {os.getloadavg()[0]:.2f} (full/floor = floor s / full s)")


if __name__ == "__main__":
    main()
