"""Live start-up benchmark: how long ``Engine.open`` takes on a database of N live rows.

    .venv/bin/python benchmarks/bench_startup.py                  # 1M and 10M live rows
    .venv/bin/python benchmarks/bench_startup.py --sizes 1M --repeat 5

At start-up the live writer rebuilds its in-memory history (features and history attributes)
and live totals from the rows on disk. Each size builds one database: a simulated run of N rows
over 30 days (cards, devices, currencies as bulk generation makes them), turned into live
traffic (``run_id`` NULL, times shifted so the newest row is now). Then each repeat opens it in a
fresh subprocess and times ``Engine.open`` (everything before the first payment can be taken)
and reports the median, with the peak RSS of that process.

``--open-only DB`` times an existing file (e.g. one built by an older checkout: run this file
from that checkout's tree to build, then from this one to open; the first open of an older
file also migrates it, reported apart as ``first open``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CARD_KEY = "bench-startup-key"


def _size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def build(db: Path, rows: int) -> float:
    """A database whose ``rows`` live rows span the last 30 days; seconds taken."""
    from engine.service import Engine

    started = time.perf_counter()
    with Engine.open(db, card_key=CARD_KEY) as engine:
        engine.store.set_memory_limit("1GB")
        run = engine.simulate({"rows": rows, "seed": 3, "days": 30})
        with engine.store.write() as tx:
            tx.execute(
                "UPDATE transactions SET run_id = NULL, created_at = created_at + "
                "(now()::TIMESTAMP - (SELECT max(created_at) FROM transactions)) "
                "WHERE run_id = ?",
                [run.id],
            )
            tx.execute("DELETE FROM stats_rollup WHERE source = ?", [run.id])
            tx.execute("DELETE FROM latency_histogram WHERE source = ?", [run.id])
            tx.execute("DELETE FROM runs WHERE id = ?", [run.id])
    return time.perf_counter() - started


def _open_once(db: Path) -> None:
    """Worker: time one Engine.open (and close, untimed); print JSON."""
    from engine.service import Engine

    started = time.perf_counter()
    engine = Engine.open(db, card_key=CARD_KEY)
    seconds = time.perf_counter() - started
    (live,) = engine.store.query("SELECT count(*) FROM transactions WHERE run_id IS NULL")[0]
    engine.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak, "live_rows": live}))


def _spawn(db: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(db)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _report(label: str, db: Path, repeat: int) -> None:
    first = _spawn(db)
    runs = [_spawn(db) for _ in range(repeat)]
    seconds = [r["seconds"] for r in runs]
    print(
        f"{label}: {runs[0]['live_rows']:,} live rows  first open {first['seconds']:.2f} s  "
        f"then median {statistics.median(seconds):.2f} s (min {min(seconds):.2f}, "
        f"max {max(seconds):.2f})  peak RSS {max(r['peak_rss_mib'] for r in runs):,.0f} MiB  "
        f"load {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", help="where the databases go (default: a tmp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--build-only", action="store_true", help="build, do not time opens")
    parser.add_argument("--open-only", help="time opens of this existing database")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _open_once(Path(args.worker))
        return
    if args.open_only:
        _report(Path(args.open_only).name, Path(args.open_only), args.repeat)
        return
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_startup_"))
    for text in args.sizes.split(","):
        rows = _size(text)
        db = workdir / f"live_{text.strip()}.duckdb"
        seconds = build(db, rows)
        print(f"built {db} ({rows:,} rows) in {seconds:.1f} s")
        if not args.build_only:
            _report(text.strip(), db, args.repeat)
        if not args.keep and not args.build_only:
            for path in workdir.glob(f"live_{text.strip()}.duckdb*"):
                path.unlink()


if __name__ == "__main__":
    main()
