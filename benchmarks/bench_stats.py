"""GET /stats and Engine.stats() at 100 thousand and 10 million rows, next to a plain aggregate.

One command: ``.venv/bin/python benchmarks/bench_stats.py [--sizes 100000 10000000]``.

For each size it builds a fresh database in a temporary folder by appending synthetic rows through
Arrow (``WriteTx.append_transactions``) and adding them to the running totals in the same
transaction (``WriteTx.add_to_rollups`` with ``RollupDelta.from_columns``), ids from
``IdAllocator.next_block``. Rows belong to a simulation source (``run_id`` 1), as bulk-generated
rows do. Then, in the same run:

* ``Engine.stats()`` in-process, ``--calls`` times (median and p95);
* the reference: the plain one-query aggregate over the table (count, approved, avg amount and
  ``quantile_cont`` of latency), what stats would cost without the rollup tables;
* ``GET /stats`` over HTTP against the real ``ptsim api`` started on that file (free 127.0.0.1
  port, stopped by PID with SIGTERM).

It also checks that the rollup-based stats agree with the plain aggregate (totals exactly,
percentiles within the histogram's 4-significant-digit resolution).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from bench_payments import stop  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.ids import IdAllocator  # noqa: E402
from engine.service import Engine  # noqa: E402
from engine.store import RollupDelta, Store  # noqa: E402

CHUNK = 1_000_000
RUN_ID = 1
REFERENCE_SQL = (
    "SELECT count(*), count(*) FILTER (status = 'Approved'), "
    "count(*) FILTER (status = 'Declined'), round(avg(amount), 2), "
    "quantile_cont(latency_ms, [0.5, 0.95, 0.99]) FROM transactions"
)


def _dictionary(indices: np.ndarray, values: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array(values))


def _decimal_cents(cents: np.ndarray) -> pa.Array:
    """DECIMAL(18, 2) from integer cents without Python objects (unscaled 128-bit values)."""
    words = np.zeros((len(cents), 2), dtype="<i8")
    words[:, 0] = cents
    return pa.Array.from_buffers(pa.decimal128(18, 2), len(cents), [None, pa.py_buffer(words)])


def synthetic_chunk(
    rng: np.random.Generator, ids: IdAllocator, n: int, start: datetime
) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` plausible rows plus the (approved, cents, latency) columns the rollups need."""
    cards = rng.integers(0, 200_000, n)
    cents = np.round(rng.lognormal(8.0, 1.2, n)).astype(np.int64).clip(1, 100_000_000)
    approved = rng.random(n) >= np.where(cents > 50_000, 0.30, 0.10)
    latency = np.round(rng.lognormal(1.0, 0.6, n), 3)
    created = np.datetime64(start, "us") + np.sort(rng.integers(0, 86_400_000_000, n))
    hashes = np.zeros((n, 16), dtype=np.uint8)  # the card number as a 16-byte fingerprint
    hashes[:, 8:] = cards.astype(">u8").view(np.uint8).reshape(n, 8)
    channels = ["ecommerce", "mobile", "pos", "contactless", "moto"]
    table = pa.table(
        {
            "id": ids.next_block(n),
            "run_id": pa.array(np.full(n, RUN_ID, dtype=np.int32)),
            "created_at": pa.array(created, pa.timestamp("us")),
            "card_hash": pa.Array.from_buffers(pa.binary(16), n, [None, pa.py_buffer(hashes)]),
            "card_bin": pa.array((400_000 + cards % 50).astype(np.int32)),
            "card_last4": pa.array((cards % 10_000).astype(np.int16)),
            "card_length": pa.array(np.full(n, 16, dtype=np.int8)),
            "amount": _decimal_cents(cents),
            "currency": _dictionary(rng.integers(0, 3, n), ["GBP", "EUR", "USD"]),
            "merchant": _dictionary(rng.integers(0, 500, n), [f"merchant-{i}" for i in range(500)]),
            "channel": _dictionary(rng.integers(0, 5, n), channels),
            "device_id": _dictionary(cards % 150_000, [f"dev-{i}" for i in range(150_000)]),
            "status": _dictionary(approved.astype(np.int32), ["Declined", "Approved"]),
            "reason_code": _dictionary(approved.astype(np.int32), ["RANDOM_DECLINE", "APPROVED"]),
            "risk_flag": pa.array(cents > 50_000),
            "rule_index": pa.array(np.where(approved, -1, 0).astype(np.int16)),
            "action": pa.array(np.where(approved, "none", "block")),
            "flag_rule": pa.array(np.where(cents > 50_000, 0, -1).astype(np.int16)),
            "score": rng.random(n),
            "spending_velocity": rng.random(n),
            "device_trust_score": rng.random(n),
            "ip_risk_score": rng.random(n),
            "velocity_count": rng.integers(0, 10, n, dtype=np.int32),
            "amount_in_gbp": _decimal_cents(cents),
            "payments_per_card_24h": rng.integers(0, 20, n, dtype=np.int32),
            "amount_per_card_24h": _decimal_cents(cents * rng.integers(0, 5, n)),
            "payments_per_device_1h": rng.integers(0, 5, n, dtype=np.int32),
            "cards_per_device_24h": rng.integers(0, 3, n, dtype=np.int32),
            "devices_per_card_7d": rng.integers(0, 3, n, dtype=np.int32),
            "card_age_days": rng.integers(0, 30, n, dtype=np.int32),
            "device_seen_count": rng.integers(0, 10, n, dtype=np.int32),
            "device_other_cards": rng.integers(0, 3, n, dtype=np.int32),
            "draw": rng.random(n),
            "challenge_draw": rng.random(n),
            "policy_version": pa.array(np.ones(n, dtype=np.int32)),
            "latency_ms": latency,
            "is_fraud": pa.array(rng.random(n) < 0.01),
        }
    )
    return table, approved, cents, latency


def build(path: Path, rows: int, seed: int = 7) -> float:
    """Fill a fresh database with ``rows`` synthetic rows; seconds taken."""
    started = time.perf_counter()
    store = Store(path)
    try:
        rng = np.random.default_rng(seed)
        ids = IdAllocator()
        with store.write() as tx:
            tx.execute(
                "INSERT INTO runs (id, created_at, status, seed, params, policy_version, "
                "code_version, rows_planned, rows_written) VALUES (?, ?, 'completed', ?, '{}', "
                "1, 'bench_stats', ?, ?)",
                [RUN_ID, datetime(2026, 1, 1), seed, rows, rows],
            )
        for done in range(0, rows, CHUNK):
            n = min(CHUNK, rows - done)
            table, approved, cents, latency = synthetic_chunk(rng, ids, n, datetime(2026, 1, 1))
            with store.write() as tx:
                tx.append_transactions(table)
                tx.add_to_rollups(RollupDelta.from_columns(RUN_ID, approved, cents, latency))
    finally:
        store.close()
    return time.perf_counter() - started


def timed(fn, calls: int) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    """(median ms, p95 ms, last result) of ``calls`` calls after one warm-up call."""
    result = fn()
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - t) * 1000)
    return float(np.median(samples)), float(np.percentile(samples, 95)), result


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_stats(db: Path, calls: int) -> tuple[float, float, dict]:
    """Start ``ptsim api`` on ``db``, time GET /stats over one keep-alive connection, stop it."""
    port = free_port()
    ptsim = Path(sys.executable).parent / "ptsim"
    cmd = ([str(ptsim)] if ptsim.exists() else [sys.executable, "-m", "workbench.cli"]) + [
        "api",
        "--db",
        str(db),
        "--api-port",
        str(port),
    ]
    env = {
        **os.environ,
        "PTSIM_HOST": "127.0.0.1",
        "PTSIM_BACKUP_INTERVAL_S": "0",
        "PTSIM_CARD_KEY": "bench",
    }
    log = db.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ptsim api exited early:\n{log.read_text()[-2000:]}")
            try:
                con = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                con.request("GET", "/health")
                if con.getresponse().read() and True:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("ptsim api did not answer within 120 s") from None
                time.sleep(0.2)

        def get() -> dict:
            con.request("GET", "/stats")
            response = con.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET /stats answered {response.status}: {body[:200]!r}")
            return json.loads(body)

        return timed(get, calls)  # type: ignore[return-value]
    finally:
        stop(proc, timeout=60)


def main() -> int:
    """Build each size, measure, print the table. Exit code 1 when stats disagree."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 10_000_000])
    parser.add_argument("--calls", type=int, default=50, help="timed calls per measurement")
    args = parser.parse_args()
    lines = []
    ok = True
    for rows in args.sizes:
        tmp = Path(tempfile.mkdtemp(prefix="ptsim-bench-stats-"))
        try:
            db = tmp / "stats.duckdb"
            seconds = build(db, rows)
            print(f"{rows:,} rows built in {seconds:.1f} s ({db.stat().st_size / 2**20:.0f} MiB)")
            with Engine.open(db, backup_interval_s=0, card_key="bench") as engine:
                s_med, s_p95, stats = timed(engine.stats, args.calls)
                ref_calls = max(5, min(args.calls, 20_000_000 // max(rows, 1)))
                r_med, r_p95, ref = timed(lambda: engine.store.query(REFERENCE_SQL)[0], ref_calls)
            h_med, h_p95, body = http_stats(db, args.calls)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        total, approved, declined, avg, (p50, p95, p99) = ref  # type: ignore[misc]
        agree = (
            stats.total == total == body["total"]
            and stats.approved == approved
            and stats.declined == declined
            and float(stats.avg_amount) == float(avg)
            and all(
                abs(a - b) <= max(0.0006 * b, 0.002)
                for a, b in ((stats.p50_latency, p50), (stats.p95_latency, p95))
            )
        )
        ok = ok and agree
        print(
            f"  Engine.stats() median {s_med:.2f} ms p95 {s_p95:.2f} ms | GET /stats median "
            f"{h_med:.2f} ms p95 {h_p95:.2f} ms | plain aggregate median {r_med:.1f} ms p95 "
            f"{r_p95:.1f} ms ({ref_calls} calls) | agree with the aggregate: {agree} "
            f"(p95 {stats.p95_latency} vs {p95:.3f}, p99 {stats.p99_latency} vs {p99:.3f})",
            flush=True,
        )
        lines.append(
            f"| {rows:,} | {s_med:.2f} | {s_p95:.2f} | {h_med:.2f} | {h_p95:.2f} | "
            f"{r_med:.1f} | {r_p95:.1f} | {r_med / h_med:.0f}x |"
        )
    print(f"\nGET /stats ({args.calls} calls each; ms; reference = one plain aggregate query)")
    print(
        "| rows | Engine.stats() median | p95 | GET /stats median | p95 | "
        "plain aggregate median | p95 | aggregate / GET |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for line in lines:
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
