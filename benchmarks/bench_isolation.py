"""Light routes during a backtest flood, and live payments while a simulation run writes.

One command: ``.venv/bin/python benchmarks/bench_isolation.py [--base-rows 1000000]
[--seconds 10] [--flood 24] [--run-rows 2000000]``.

Starts the real ``ptsim api`` on a free 127.0.0.1 port with a fresh temporary database, fills it
with one simulation run of ``--base-rows`` rows (through ``POST /simulations``), then measures,
each phase for ``--seconds`` s, with one keep-alive connection per client thread:

1. reference: ``/health``, ``GET /transaction/{id}`` and ``GET /stats`` probed in turn by one
   client, nothing else running;
2. the same probes while ``--flood`` clients post ``POST /backtest`` back to back (each answer
   200, or 429 when the analytics queue is full);
3. reference: ``POST /payment`` from 8 concurrent clients;
4. the same while one ``--run-rows`` simulation run writes (started just before; the script says
   whether it was still running when the phase ended).

Prints p50/p95 per route and phase, and the answer counts. The server is stopped by PID.
Clients are Python threads in this process, so their own overhead is in every figure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from bench_payments import stop  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
CARDS = ["4000001234567890", "4111111111111111", "5555555555554444", "378282246310005"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection; ``call`` returns (status, body, seconds)."""

    def __init__(self, port: int) -> None:
        self._con = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, float]:
        data = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        start = time.perf_counter()
        self._con.request(method, path, data, headers)
        response = self._con.getresponse()
        payload = response.read()
        return response.status, payload, time.perf_counter() - start


def start_server(db: Path, port: int) -> subprocess.Popen:
    """``ptsim api`` on ``db``; returns once ``/health`` answers."""
    ptsim = Path(sys.executable).parent / "ptsim"
    cmd = [str(ptsim), "api", "--db", str(db), "--api-port", str(port)]
    env = {**os.environ, "PTSIM_HOST": "127.0.0.1", "PTSIM_BACKUP_INTERVAL_S": "0"}
    log = db.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ptsim api exited early:\n{log.read_text()[-2000:]}")
        try:
            Client(port).call("GET", "/health")
            return proc
        except OSError:
            if time.monotonic() > deadline:
                stop(proc)
                raise RuntimeError("ptsim api did not answer within 120 s") from None
            time.sleep(0.2)


def wait_run(port: int, run_id: int, limit_s: float = 900) -> dict:
    """Poll a run until it is no longer running (bounded)."""
    client = Client(port)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        record = json.loads(client.call("GET", f"/simulations/{run_id}")[1])
        if record["status"] != "running":
            return record
        time.sleep(0.5)
    raise RuntimeError(f"run {run_id} still running after {limit_s} s")


def start_run(port: int, rows: int, seed: int) -> int:
    """POST /simulations; the run id."""
    body = {"rows": rows, "seed": seed, "days": 7}
    return json.loads(Client(port).call("POST", "/simulations", body)[1])["run_id"]


def probe(port: int, tx_id: str, until: float) -> dict[str, list[float]]:
    """Probe /health, a lookup and /stats in turn until ``until``; seconds per route."""
    client = Client(port)
    routes = {"/health": "/health", "lookup": f"/transaction/{tx_id}", "/stats": "/stats"}
    times: dict[str, list[float]] = {name: [] for name in routes}
    while time.perf_counter() < until:
        for name, path in routes.items():
            status, _, seconds = client.call("GET", path)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}")
            times[name].append(seconds)
        time.sleep(0.01)
    return times


def flood(port: int, until: float, counts: Counter) -> None:
    """Post backtests back to back until ``until``."""
    client = Client(port)
    body = {"candidate": {"score_threshold": 0.6}, "filters": {"run": "all"}}
    while time.perf_counter() < until:
        status, _, _ = client.call("POST", "/backtest", body)
        counts[status] += 1
        if status == 429:
            time.sleep(0.05)  # a client that got Retry-After backs off a little


def payer(port: int, until: float, seed: int, times: list[float], counts: Counter) -> None:
    """Post varied payments back to back until ``until``."""
    client = Client(port)
    rng = random.Random(seed)
    while time.perf_counter() < until:
        body = {
            "card_number": rng.choice(CARDS),
            "amount": round(rng.uniform(1, 900), 2),
            "currency": "GBP",
            "merchant": f"Bench {rng.randrange(12)}",
            "channel": "ecommerce",
            "device_id": f"dev-{rng.randrange(3000)}",
        }
        status, _, seconds = client.call("POST", "/payment", body)
        counts[status] += 1
        times.append(seconds)


def run_threads(targets: list[tuple]) -> None:
    threads = [threading.Thread(target=fn, args=args) for fn, *args in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def pct(values: list[float]) -> str:
    if not values:
        return "n/a"
    ms = np.asarray(values) * 1000
    return f"n={len(ms)} p50={np.percentile(ms, 50):.1f} ms p95={np.percentile(ms, 95):.1f} ms"


def probes_phase(port: int, tx_id: str, seconds: float, flooders: int) -> None:
    until = time.perf_counter() + seconds
    result: dict[str, list[float]] = {}
    counts: Counter = Counter()
    targets: list[tuple] = [(lambda: result.update(probe(port, tx_id, until)),)]
    targets += [(flood, port, until, counts) for _ in range(flooders)]
    run_threads(targets)
    label = f"backtest flood x{flooders}" if flooders else "reference (idle)"
    for name, values in result.items():
        print(f"  {label:24} {name:8} {pct(values)}", flush=True)
    if flooders:
        print(f"  {label:24} backtest answers {dict(counts)}", flush=True)


def payments_phase(port: int, seconds: float, label: str) -> None:
    until = time.perf_counter() + seconds
    times: list[float] = []
    counts: Counter = Counter()
    run_threads([(payer, port, until, seed, times, counts) for seed in range(8)])
    print(f"  {label:24} payment  {pct(times)} answers {dict(counts)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flood", type=int, default=24)
    parser.add_argument("--run-rows", type=int, default=2_000_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ptsim-bench-isolation-"))
    port = free_port()
    proc = start_server(tmp / "iso.duckdb", port)
    try:
        base = start_run(port, args.base_rows, seed=1)
        print(f"base run: {wait_run(port, base)['rows_written']} rows", flush=True)
        paid = Client(port).call(
            "POST",
            "/payment",
            {"card_number": CARDS[0], "amount": 10, "currency": "GBP", "merchant": "Bench",
             "channel": "ecommerce"},
        )  # fmt: skip
        tx_id = json.loads(paid[1])["transaction_id"]
        print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
        probes_phase(port, tx_id, args.seconds, 0)
        probes_phase(port, tx_id, args.seconds, args.flood)
        payments_phase(port, args.seconds, "payments c=8 (idle)")
        run_id = start_run(port, args.run_rows, seed=2)
        payments_phase(port, args.seconds, f"payments c=8 + {args.run_rows} run")
        # fresh connections for these one-off calls: the server closes idle keep-alive ones
        record = json.loads(Client(port).call("GET", f"/simulations/{run_id}")[1])
        print(
            f"  run {run_id} after the phase: {record['status']}, "
            f"{record['rows_written']} rows; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    finally:
        stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
