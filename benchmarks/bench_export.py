"""Export of a run as one Parquet file (issue 15: "Export of a 10M-row run: >= 2M rows/s"),
end to end where users meet it, against the file-copy floor in the same run.

    .venv/bin/python benchmarks/bench_export.py                  # 10M rows (builds both runs)
    .venv/bin/python benchmarks/bench_export.py --rows 1M        # a quick run
    .venv/bin/python benchmarks/bench_export.py --rows 10M --db D --lake L --keep   # reuse runs
    .venv/bin/python benchmarks/bench_export.py --rows 1M --knobs   # DuckDB writer settings too

It builds (or, given ``--db``/``--lake``, reuses) a database run and a lake run of ``--rows``
rows with ``ptsim generate`` (seed 1), then times, each into a fresh directory on the same disk:

* **file copy floor** — copying the lake run's partition files byte for byte (the kernel's copy,
  as ``shutil.copyfile`` does): the cost of moving that much data here;
* **ptsim export** — the CLI process end to end (start, export, exit) for the lake run
  (``--lake``: stitched from its files) and the database run (``--db``: DuckDB's writer);
* **HTTP** — a real ``ptsim api`` server on 127.0.0.1 (with the lake attached), ``curl``
  downloading ``GET /simulations/{id}/export`` to a file, request to last byte.

Each step starts after ``sync`` (no writeback of the previous step's gigabyte while timing).

Every file is checked: its row count, and count / sum(amount_minor) / min and max created_at
equal across all four exports; the CLI's and the server's lake files are the same bytes.
``--knobs`` also times DuckDB's ``COPY ... TO`` Parquet on the database run with each writer
setting the brief lists (codec, row-group size, threads, order preservation, encodings).
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench_payments import stop  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PTSIM = str(Path(sys.executable).with_name("ptsim"))
SEED = 1


def _size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def _run(*argv: str, env: dict[str, str] | None = None) -> float:
    """Run a ptsim command; its wall-clock seconds (the process end to end)."""
    start = time.perf_counter()
    subprocess.run([PTSIM, *argv], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _completed_run(db: Path, lake: Path | None, rows: int) -> int | None:
    """A completed run of ``rows`` rows already in ``db`` (or ``lake``), to reuse."""
    from engine.service import Engine

    settings = {"lake": str(lake)} if lake is not None else {}
    with Engine.open(":memory:" if lake is not None else db, **settings) as engine:
        for run in engine.list_runs():
            in_lake = run.id > 1_000_000_000
            done = run.status == "completed" and run.rows_written == rows
            if done and in_lake == (lake is not None):
                return run.id
    return None


def _build(db: Path, lake: Path | None, rows: int) -> int:
    found = _completed_run(db, lake, rows) if db.exists() or lake is not None else None
    if found is not None:
        print(f"reusing run {found} ({rows:,} rows)", flush=True)
        return found
    argv = ["generate", "--rows", str(rows), "--seed", str(SEED), "--db", str(db), "--quiet"]
    seconds = _run(*argv, *(["--lake", str(lake)] if lake is not None else []))
    where = "into the lake" if lake else "into the database"
    print(f"generated {rows:,} rows {where} in {seconds:.0f} s", flush=True)
    found = _completed_run(db, lake, rows)
    assert found is not None
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _server(db: Path, lake: Path, log: Path) -> Iterator[str]:
    """``ptsim api`` on 127.0.0.1 with the lake attached; stopped by its PID."""
    import httpx

    port = _free_port()
    env = {**os.environ, "PTSIM_HOST": "127.0.0.1", "PTSIM_LAKE": str(lake),
           "PTSIM_BACKUP_INTERVAL_S": "0", "PTSIM_RATE_LIMIT": ""}  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [PTSIM, "api", "--db", str(db), "--api-port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-2000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        stop(proc, timeout=60)


def _download(url: str, target: Path) -> float:
    """curl the export to ``target``; seconds from request to last byte."""
    start = time.perf_counter()
    done = subprocess.run(
        ["curl", "-s", "-S", "-f", "-o", str(target), "-w", "%{http_code}", url],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    assert done.stdout == "200", done.stdout
    return seconds


def _fingerprint(path: Path) -> tuple:
    import duckdb

    literal = str(path).replace("'", "''")
    return (
        duckdb.connect()
        .execute(
            "SELECT count(*), sum(amount_minor), min(created_at), max(created_at) "
            f"FROM read_parquet('{literal}')"
        )
        .fetchone()
    )


def _floor(lake: Path, run: int, out: Path) -> float:
    from engine.lake.layout import Lake

    files = [lake / p.path for p in Lake(lake).manifest(run).partitions]
    out.mkdir()
    start = time.perf_counter()
    for f in files:
        shutil.copyfile(f, out / f.name)
    return time.perf_counter() - start


KNOBS = {  # name: (COPY options, a setting for the connection)
    "snappy, 262,144-row groups (before)": ("COMPRESSION snappy, ROW_GROUP_SIZE 262144", None),
    "snappy, 122,880-row groups (DuckDB default)": ("COMPRESSION snappy", None),
    "snappy, 1,048,576-row groups": ("COMPRESSION snappy, ROW_GROUP_SIZE 1048576", None),
    "uncompressed": ("COMPRESSION uncompressed", None),
    "lz4_raw": ("COMPRESSION lz4_raw", None),
    "zstd level 1": ("COMPRESSION zstd, COMPRESSION_LEVEL 1", None),
    "snappy, Parquet v2 encodings": ("COMPRESSION snappy, PARQUET_VERSION V2", None),
    "snappy, no dictionaries": ("COMPRESSION snappy, DICTIONARY_SIZE_LIMIT 0", None),
    "snappy, threads = 1": ("COMPRESSION snappy", "SET threads = 1"),
    "snappy, preserve_insertion_order = false": (
        "COMPRESSION snappy", "SET preserve_insertion_order = false"),
}  # fmt: skip


def _knobs(db: Path, run: int, out: Path, repeat: int) -> list[tuple[str, float, int, bool]]:
    """DuckDB's writer with each setting on the database run: best seconds, bytes, order kept."""
    import duckdb
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from engine.service import EXPORT_COLUMNS

    con = duckdb.connect(str(db), read_only=True)
    results = []
    best: dict[str, float] = {}
    for i in range(repeat):
        names = list(KNOBS) if i % 2 == 0 else list(reversed(KNOBS))
        for name in names:
            options, setting = KNOBS[name]
            cur = con.cursor()
            if setting:
                cur.execute(setting)
            target = out / "knob.parquet"
            start = time.perf_counter()
            cur.execute(
                f"COPY (SELECT {EXPORT_COLUMNS} FROM transactions WHERE run_id = {run}) "
                f"TO '{target}' (FORMAT parquet, {options})"
            )
            best[name] = min(best.get(name, 1e9), time.perf_counter() - start)
            cur.close()
            if i == repeat - 1:
                ids = pq.read_table(target, columns=["id"]).column(0).combine_chunks().storage
                kept = bool((pc.array_sort_indices(ids).to_numpy() == np.arange(len(ids))).all())
                results.append((name, best[name], target.stat().st_size, kept))
    order = list(KNOBS)
    return sorted(results, key=lambda r: order.index(r[0]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=_size, default=10_000_000)
    parser.add_argument("--db", type=Path, help="database file to reuse (or build into)")
    parser.add_argument("--lake", type=Path, help="lake to reuse (or build into)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every measurement")
    parser.add_argument("--knobs", action="store_true", help="time DuckDB writer settings too")
    parser.add_argument("--keep", action="store_true", help="keep the built database and lake")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ptsim-bench-export-"))
    db = args.db or work / "db.duckdb"
    lake = args.lake or work / "lake"
    rows = args.rows
    load_before = os.getloadavg()
    try:
        db_run = _build(db, None, rows)
        lake_run = _build(db, lake, rows)
        os.sync()  # no writeback of the built runs during the first measurement
        times: dict[str, list[float]] = {}
        files: dict[str, Path] = {}

        def timed(name: str, seconds: float, file: Path | None = None) -> None:
            times.setdefault(name, []).append(seconds)
            if file is not None:
                files[name] = file
            os.sync()  # the next step starts with no dirty pages (no writeback of this one's)

        for i in range(args.repeat):
            out = work / f"out-{i}"
            out.mkdir()
            timed("file copy floor (lake run's files)", _floor(lake, lake_run, out / "copy"))
            timed("ptsim export: lake run", _run("export", "--run", str(lake_run),
                  "--lake", str(lake), "--to", str(out / "cli")),
                  out / "cli" / f"run-{lake_run}.parquet")  # fmt: skip
            timed("ptsim export: database run", _run("export", "--run", str(db_run),
                  "--db", str(db), "--to", str(out / "cli")),
                  out / "cli" / f"run-{db_run}.parquet")  # fmt: skip
            with _server(db, lake, work / "server.log") as url:
                for name, run in (("lake run", lake_run), ("database run", db_run)):
                    target = out / f"http-{run}.parquet"
                    seconds = _download(f"{url}/simulations/{run}/export", target)
                    timed(f"HTTP GET /simulations/{{id}}/export: {name}", seconds, target)
        load_after = os.getloadavg()
        fingerprints = {name: _fingerprint(f) for name, f in files.items()}
        assert len(set(fingerprints.values())) == 1, fingerprints
        assert fingerprints[next(iter(files))][0] == rows
        lake_files = [f for n, f in files.items() if "lake" in n]
        assert filecmp.cmp(*lake_files, shallow=False), "the CLI's and the server's lake files"

        floor = min(times["file copy floor (lake run's files)"])
        load = f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
        print(f"\n{rows:,} rows; {load}; {os.cpu_count()} CPUs; best of {args.repeat}\n")
        print("| what | seconds | rows/s | vs floor | file |")
        print("|---|---:|---:|---:|---:|")
        for name, seconds in times.items():
            best = min(seconds)
            size = files[name].stat().st_size if name in files else None
            mib = f"{size / 2**20:,.0f} MiB" if size else "—"
            print(f"| {name} | {best:.2f} | {rows / best:,.0f} | {floor / best:.2f}× | {mib} |")
        if args.knobs:
            print("\nDuckDB COPY ... TO parquet of the database run, in process:\n")
            print("| setting | seconds | rows/s | file | event order kept |")
            print("|---|---:|---:|---:|---|")
            for name, best, size, kept in _knobs(db, db_run, work, max(2, args.repeat)):
                print(f"| {name} | {best:.2f} | {rows / best:,.0f} | {size / 2**20:,.0f} MiB "
                      f"| {'yes' if kept else 'no'} |")  # fmt: skip
        print(json.dumps({"rows": rows, "seconds": times, "load": [load_before, load_after]}))
    finally:
        for i in range(args.repeat):
            shutil.rmtree(work / f"out-{i}", ignore_errors=True)
        if args.keep:
            print(f"kept: --db {db} --lake {lake}")
        if not args.keep or (args.db and args.lake):  # nothing of the runs lives in work
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
