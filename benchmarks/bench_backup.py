"""Live payments while an online backup runs, next to payments with no backup, in one run.

One command: ``.venv/bin/python benchmarks/bench_backup.py [--rows 10500000] [--clients 8]``.

1. Builds (once, cached in ``--cache``) a database of ``--rows`` simulated payments with
   ``ptsim generate`` (10.5M rows is about 600 MB), copies it to a scratch file and starts
   ``ptsim api`` on it on a free 127.0.0.1 port (periodic backups off, an admin token set).
2. ``--clients`` threads post payments in a closed loop for the whole run; every answer's
   latency is kept with the phase it started in.
3. Phase "no backup": ``--quiet-s`` seconds. Phase "during backup": ``POST /admin/backup`` is sent
   and the phase lasts until it answers (bounded by ``--timeout-s``). Phase "after": again
   ``--quiet-s`` seconds, a second reference.
4. Prints p50/p95/p99/max and the count per phase, the backup's duration and size, then stops
   the server by its PID (SIGTERM, SIGKILL only if it hangs) and deletes the scratch files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from bench_payments import stop  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
PTSIM = str(Path(sys.executable).with_name("ptsim"))
TOKEN = "bench-token"
BODY = {"card_number": "4000001234567890", "amount": "42.00", "currency": "USD", "merchant": "B"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _base_database(cache: Path, rows: int) -> Path:
    """The cached database of ``rows`` simulated payments (built once; reused afterwards)."""
    base = cache / f"base-{rows}.duckdb"
    if not base.exists():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"building {base} ({rows:,} rows, once)...", flush=True)
        env = {**os.environ, "PTSIM_CARD_KEY": "bench-backup-key-0123456789abcdef"}
        subprocess.run(
            [PTSIM, "generate", "--rows", str(rows), "--seed", "1", "--db", str(base), "--quiet"],
            check=True,
            env=env,
            timeout=3600,
        )
    return base


class Clients:
    """Threads posting payments; each latency is filed under the phase it started in."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.phase = "warm-up"
        self.samples: dict[str, list[float]] = {}
        self.failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(count)]

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self._stop.is_set():
                phase = self.phase
                started = time.perf_counter()
                answer = client.post("/payment", json=BODY)
                elapsed_ms = (time.perf_counter() - started) * 1000
                with self._lock:
                    if answer.status_code == 201:
                        self.samples.setdefault(phase, []).append(elapsed_ms)
                    else:
                        self.failures += 1


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not start in time")


def main() -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_500_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--quiet-s", type=float, default=10.0)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ptsim-bench-backup"))
    args = parser.parse_args()

    base = _base_database(args.cache, args.rows)
    scratch = args.cache / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    db = scratch / "bench.duckdb"
    shutil.copyfile(base, db)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PTSIM_HOST": "127.0.0.1",
        "PTSIM_ADMIN_TOKEN": TOKEN,
        "PTSIM_BACKUP_INTERVAL_S": "0",
        "PTSIM_CARD_KEY": "bench-backup-key-0123456789abcdef",
        "PTSIM_RATE_LIMIT": "",
    }
    log = (scratch / "server.log").open("wb")
    proc = subprocess.Popen(
        [PTSIM, "api", "--db", str(db), "--api-port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_ready(url, proc)
        with Clients(url, args.clients) as clients:
            time.sleep(3)
            clients.phase = "no backup"
            time.sleep(args.quiet_s)
            clients.phase = "during backup"
            started = time.perf_counter()
            answer = httpx.post(
                f"{url}/admin/backup",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=args.timeout_s,
            )
            backup_s = time.perf_counter() - started
            clients.phase = "after backup"
            time.sleep(args.quiet_s)
        if answer.status_code != 200:
            raise SystemExit(f"backup failed: {answer.status_code} {answer.text}")
        backup = db.parent / answer.json()["backup"]
        print(
            f"\ndatabase {db.stat().st_size / 1e6:,.0f} MB ({args.rows:,} rows), "
            f"{args.clients} clients on 127.0.0.1; backup {backup.stat().st_size / 1e6:,.0f} MB "
            f"written and verified in {backup_s:.1f} s; non-201 answers: {clients.failures}\n"
        )
        heads = ("payments", "p50 ms", "p95 ms", "p99 ms", "max ms")
        print(f"{'phase':<15} {heads[0]:>9} " + " ".join(f"{h:>8}" for h in heads[1:]))
        for phase in ("no backup", "during backup", "after backup"):
            values = np.asarray(clients.samples.get(phase, [float("nan")]))
            p50, p95, p99 = np.percentile(values, [50, 95, 99])
            print(
                f"{phase:<15} {len(values):>9,} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} "
                f"{values.max():>8.1f}"
            )
    finally:
        stop(proc, timeout=120)
        log.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
