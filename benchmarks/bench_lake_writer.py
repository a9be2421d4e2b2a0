"""The Parquet writer's share of lake generation: what writing a shard costs a core, against
what generating it costs, in one process (issue 15: 1.5M rows/s on this 2-core machine).

    .venv/bin/python benchmarks/bench_lake_writer.py               # a fresh 2M-row lake run
    .venv/bin/python benchmarks/bench_lake_writer.py --lake /tmp/lake100 --files 4

Takes ``--files`` partition files of a lake run (generated first into a temporary lake with
``Engine.simulate_into_lake`` when ``--lake`` is not given), reads them back into Arrow tables
and writes them again with pyarrow, CPU time (best of ``--repeat``), with the lake's own
settings (``engine.lake.writer.FILE_OPTIONS``: snappy, dictionaries where values repeat) and,
for reference, without compression and without dictionaries. The generation rate of the
fresh run (rows / CPU-s of the process, its writer thread included) is printed beside it when
the run is generated here. The last line says what the writer alone would take of the two
cores at the issue's 1.5M rows/s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.lake.writer import _ROW_GROUP, FILE_OPTIONS  # noqa: E402

TARGET_ROWS_S = 1_500_000
CORES = 2


def fresh_lake(folder: Path, rows: int) -> tuple[Path, float]:
    """A lake with one run of ``rows`` rows, and the rows per CPU-second generating it took."""
    from engine.service import Engine

    lake = folder / "lake"
    with Engine.open(folder / "w.duckdb", backup_interval_s=0, card_key="bench") as engine:
        cpu = time.process_time()
        engine.simulate_into_lake(lake, {"rows": rows, "seed": 4, "days": 30})
        cpu = time.process_time() - cpu
    return lake, rows / cpu


def write_cpu(tables: list, folder: Path, options: dict, repeat: int) -> float:
    """Best CPU seconds of writing every table once with ``options``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for i, table in enumerate(tables):
            pq.write_table(table, folder / f"w{i}.parquet", row_group_size=_ROW_GROUP, **options)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", help="an existing lake (default: a fresh 2M-row run)")
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the fresh run")
    parser.add_argument("--files", type=int, default=2, help="partition files to rewrite")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ptsim-writer-") as tmp:
        folder = Path(tmp)
        generated = None
        lake = Path(args.lake) if args.lake else None
        if lake is None:
            lake, generated = fresh_lake(folder, args.rows)
        files = sorted(lake.glob("transactions/run_id=*/*.parquet"))[-args.files :]
        tables = [pq.read_table(f) for f in files]
        rows = sum(t.num_rows for t in tables)
        variants = {
            "lake settings (snappy, dictionaries where values repeat)": FILE_OPTIONS,
            "no compression (reference)": {**FILE_OPTIONS, "compression": "none"},
            "no compression, no dictionaries (reference)": {
                **FILE_OPTIONS,
                "compression": "none",
                "use_dictionary": False,
            },
        }
        print(f"{rows:,} rows, {tables[0].num_columns} columns, {len(files)} files of {lake}\n")
        print("| write | CPU-s | rows/s per core |\n|---|---:|---:|")
        lake_rate = 0.0
        for label, options in variants.items():
            cpu = write_cpu(tables, folder, options, args.repeat)
            lake_rate = lake_rate or rows / cpu
            print(f"| {label} | {cpu:.2f} | {rows / cpu:,.0f} |")
        if generated is not None:
            print(f"| generating the run (one process, writer included) | | {generated:,.0f} |")
    share = TARGET_ROWS_S / lake_rate
    print(
        f"\nAt {TARGET_ROWS_S:,} rows/s the writer alone, with the lake's settings, would use "
        f"{share:.2f} of this machine's {CORES} cores, leaving {CORES - share:.2f} to generate "
        f"the rows: {TARGET_ROWS_S / max(CORES - share, 1e-9):,.0f} rows/s per core."
    )


if __name__ == "__main__":
    main()
