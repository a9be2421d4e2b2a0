"""Uploading 1,000,000-item lists through the real server, end to end, with the server's memory.

One command: ``.venv/bin/python benchmarks/bench_lists.py [--items 1000000] [--repeat 3]``.

1. Starts ``ptsim api`` on a scratch database on a free 127.0.0.1 port (admin token set,
   periodic backups off).
2. For each kind (``card``: random 16-digit numbers; ``bin``: random six-digit BINs, so about
   63% distinct) it sends ``--repeat`` times a ``PUT /lists/{name}`` holding ``--items`` new items
   (a new version each time), then once the last body again (unchanged: validated and
   fingerprinted, nothing written), timing each from the first byte sent to the parsed answer,
   and reads the first page (``GET /lists/{name}``).
3. Reference, same run: the same items through ``Engine.lists.put`` in this process on an
   in-memory database (no HTTP, no JSON), and a 1,000-item PUT (the fixed cost of a request).
4. Prints a table (median seconds, items/s, body MB) and the server's peak resident memory
   (``VmHWM``) against its memory before the uploads, then stops the server by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from bench_payments import stop  # the script's folder is on sys.path

PTSIM = str(Path(sys.executable).with_name("ptsim"))
TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _items(kind: str, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    if kind == "card":
        numbers = rng.integers(4_000_000_000_000_000, 4_999_999_999_999_999, count, dtype=np.int64)
    else:
        numbers = rng.integers(0, 1_000_000, count)
    width = 16 if kind == "card" else 6
    return [f"{n:0{width}d}" for n in numbers.tolist()]


def _put(client: httpx.Client, name: str, body: bytes) -> tuple[float, dict]:
    started = time.perf_counter()
    answer = client.put(f"/lists/{name}", content=body, headers=AUTH)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"PUT /lists/{name} answered {answer.status_code}: {answer.text[:300]}")
    return elapsed, answer.json()


def _in_process(kind: str, items: list[str], repeat: int) -> float:
    from engine.service import Engine

    times = []
    with Engine.open(":memory:", card_key="bench-lists-key-0123456789abcdef") as eng:
        for i in range(repeat):
            batch = items if i == 0 else [*items[1:], _items(kind, 1, 1000 + i)[0]]
            started = time.perf_counter()
            eng.lists.put("reference", kind, batch)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ptsim-bench-lists-"))
    port = _free_port()
    env = {
        **os.environ,
        "PTSIM_ADMIN_TOKEN": TOKEN,
        "PTSIM_BACKUP_INTERVAL_S": "0",
        "PTSIM_CARD_KEY": "bench-lists-key-0123456789abcdef",
        "PTSIM_HOST": "127.0.0.1",
    }
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [PTSIM, "api", "--db", str(folder / "lists.duckdb"), "--api-port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    rows: list[tuple[str, str, float, str, str]] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for _ in range(300):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise SystemExit("the server did not start; see " + str(folder / "server.log"))
            rss_before = _memory_kib(server.pid, "VmRSS")
            small = json.dumps({"kind": "bin", "items": _items("bin", 1_000, 0)}).encode()
            small_times = [_put(client, f"small{i}", small)[0] for i in range(args.repeat)]
            rows.append(
                (
                    "bin",
                    "PUT 1,000 items (fixed cost)",
                    statistics.median(small_times),
                    "",
                    f"{len(small) / 1e6:.2f}",
                )
            )
            for kind in ("card", "bin"):
                times, stored = [], 0
                body = b""
                for i in range(args.repeat):
                    items = _items(kind, args.items, seed=i + (100 if kind == "bin" else 0))
                    body = json.dumps({"kind": kind, "items": items}).encode()
                    del items
                    elapsed, answer = _put(client, f"big_{kind}", body)
                    times.append(elapsed)
                    stored = answer["item_count"]
                median = statistics.median(times)
                mb = f"{len(body) / 1e6:.1f}"
                rows.append(
                    (
                        kind,
                        f"PUT {args.items:,} items, new version ({stored:,} distinct)",
                        median,
                        f"{args.items / median:,.0f}",
                        mb,
                    )
                )
                elapsed, answer = _put(client, f"big_{kind}", body)
                assert answer["changed"] is False
                rows.append(
                    (
                        kind,
                        "PUT the same items again (unchanged, nothing written)",
                        elapsed,
                        f"{args.items / elapsed:,.0f}",
                        mb,
                    )
                )
                started = time.perf_counter()
                page = client.get(f"/lists/big_{kind}")
                assert page.status_code == 200 and len(page.json()["items"]) == 100
                rows.append(
                    (kind, "GET the first page (100 items)", time.perf_counter() - started, "", "")
                )
                reference = _in_process(kind, _items(kind, args.items, seed=7), args.repeat)
                rows.append(
                    (
                        kind,
                        "reference: Engine.lists.put in process (no HTTP/JSON)",
                        reference,
                        f"{args.items / reference:,.0f}",
                        "",
                    )
                )
            peak = _memory_kib(server.pid, "VmHWM")
    finally:
        stop(server, timeout=60)
        log.close()
    size = sum(p.stat().st_size for p in folder.glob("lists.duckdb*") if p.is_file())
    print(f"\n{'kind':5} {'step':62} {'median s':>9} {'items/s':>11} {'body MB':>8}")
    for kind, step, seconds, rate, mb in rows:
        print(f"{kind:5} {step:62} {seconds:9.3f} {rate:>11} {mb:>8}")
    print(
        f"\nserver memory: {rss_before / 1024:,.0f} MiB before the uploads, peak "
        f"{peak / 1024:,.0f} MiB; database file and WAL after {size / 1e6:,.0f} MB"
    )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
