"""POST /payment throughput and latency against the real server, next to a bare FastAPI app.

One command: ``.venv/bin/python benchmarks/bench_payments.py [--duration 10]``.

1. Starts ``ptsim api`` as a subprocess on a free 127.0.0.1 port with a fresh temporary database
   and a fixed ``PTSIM_SEED``; waits for ``GET /health``.
2. Warms up, then runs ``wrk`` (one thread, so the other core is left to the server) with
   ``benchmarks/payment.lua`` at concurrency 1, 8 and 32 for ``--duration`` seconds each. The Lua
   script varies the body, counts 201 and non-201 responses and prints exact p50/p90/p95/p99.
3. Stops the server (SIGTERM to its PID, bounded wait, SIGKILL only if it hangs), opens the
   database and checks durability: every 201 wrk counted must be a row on disk. wrk stops each
   run at its deadline with up to ``c`` requests in flight; the server may have committed those
   but wrk never counts their answers, so the check is ``201s <= rows <= 201s + in-flight``.
   It also checks every row has its latency written back and the rollups match the rows.
4. ``benchmarks/bare_app.py`` (one POST endpoint with a pydantic body, same uvicorn settings)
   runs alongside, idle while ptsim is measured: at each concurrency the two are measured back
   to back, so the ratio compares figures taken seconds apart even on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LUA = HERE / "payment.lua"
CONCURRENCY = (1, 8, 32)
SEED = 20240601
RESULT = re.compile(r"PTSIM_RESULT (.*)")
RPS = re.compile(r"Requests/sec:\s+([\d.]+)")


@dataclass
class Run:
    """One wrk run's figures."""

    target: str
    connections: int
    rps: float
    created: int
    other: int
    errors: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers 200; fail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM the process by PID, wait (bounded), SIGKILL only if it does not exit."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"  process {proc.pid} ignored SIGTERM for {timeout:.0f} s; killing it")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def run_wrk(target: str, port: int, connections: int, duration: int) -> Run:
    """One bounded wrk run; figures parsed from wrk's summary and the Lua done() line."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True)
    match = RESULT.search(out.stdout)
    rps = RPS.search(out.stdout)
    if not match or not rps:
        raise RuntimeError(f"could not parse wrk output:\n{out.stdout}\n{out.stderr}")
    fields = dict(kv.split("=") for kv in match.group(1).split())
    return Run(
        target=target,
        connections=connections,
        rps=float(rps.group(1)),
        created=int(fields["created"]),
        other=int(fields["other"]),
        errors=sum(int(fields[k]) for k in fields if k.startswith("err_")),
        p50_ms=float(fields["p50_us"]) / 1000,
        p90_ms=float(fields["p90_us"]) / 1000,
        p95_ms=float(fields["p95_us"]) / 1000,
        p99_ms=float(fields["p99_us"]) / 1000,
    )


def start_server(cmd: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """Start ``cmd`` (output to ``log``) and wait until ``GET /health`` answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def measure(targets: dict[str, int], duration: int) -> tuple[dict[str, list[Run]], int]:
    """Warm up every target, then at each concurrency run them back to back (so a ratio
    compares figures taken seconds apart on a shared machine). (runs per target, in-flight)."""
    runs: dict[str, list[Run]] = {name: [] for name in targets}
    in_flight = 0
    for name, port in targets.items():
        warm = run_wrk(name, port, 8, max(2, duration // 3))
        runs[name].append(warm)
        print(f"  {name}: warm-up {warm.rps:,.0f} req/s", flush=True)
    in_flight += 8
    for c in CONCURRENCY:
        in_flight += c
        for name, port in targets.items():
            run = run_wrk(name, port, c, duration)
            runs[name].append(run)
            print(
                f"  {name:<5}: c={c:<3} {run.rps:>8,.0f} req/s  p50 {run.p50_ms:.2f} ms  "
                f"p95 {run.p95_ms:.2f} ms  p99 {run.p99_ms:.2f} ms  non-201 {run.other}  "
                f"(load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    return runs, in_flight


def check_durability(db: Path, runs: list[Run], in_flight: int) -> bool:
    """Rows on disk against the 201s wrk counted; latencies written back; a reopened engine's
    stats (rebuilt from the rows) count every row."""
    from engine.service import Engine

    created = sum(r.created for r in runs)
    with Engine.open(db, backup_interval_s=0) as engine:
        rows, with_latency, approved = engine.store.query(
            "SELECT count(*), count(latency_ms), count(*) FILTER (status = 'Approved') "
            "FROM transactions"
        )[0]
        stats = engine.stats()
    ok = created <= rows <= created + in_flight
    ok = ok and with_latency == rows and stats.total == rows and stats.approved == approved
    print(
        f"\nDurability: wrk counted {created:,} responses 201; {rows:,} rows on disk "
        f"(allowed {created:,}..{created + in_flight:,}: up to {in_flight} requests were in "
        f"flight when wrk's runs ended); rows with latency written back {with_latency:,}; "
        f"stats after reopening: total {stats.total:,}, approved {stats.approved:,} -> "
        f"{'OK' if ok else 'FAILED'}"
    )
    return ok


def activate_twenty_rules(db: Path) -> None:
    """Store the two lists and the 20-rule policy of bench_policies.py in ``db`` and activate
    it (before the server opens the file)."""
    sys.path.insert(0, str(ROOT))
    from bench_policies import prepare_lists, rules_20

    from engine.service import Engine

    with Engine.open(db, backup_interval_s=0) as engine:
        prepare_lists(engine)
        engine.activate_version(engine.create_policy(rules_20()).version, "bench: 20 rules")


def main() -> int:
    """Run the benchmark and print the table. Exit code 1 when durability fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per concurrency level")
    parser.add_argument(
        "--policy",
        choices=("default", "rules20"),
        default="default",
        help="the active policy: the default, or bench_policies.py's 20 rules with a "
        "100,000-card list and a 1,000-merchant list",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed. Install it with: sudo apt-get install -y wrk "
            "(Debian/Ubuntu), then run this again.",
            file=sys.stderr,
        )
        return 2
    bindir = Path(sys.executable).parent
    ptsim = bindir / "ptsim"
    tmp = Path(tempfile.mkdtemp(prefix="ptsim-bench-"))
    try:
        db = tmp / "bench.duckdb"
        if args.policy == "rules20":
            activate_twenty_rules(db)
        api_port, bare_port = free_port(), free_port()
        env = {
            **os.environ,
            "PTSIM_DB": str(db),
            "PTSIM_API_PORT": str(api_port),
            "PTSIM_SEED": str(SEED),
            "PTSIM_HOST": "127.0.0.1",
        }
        api_cmd = ([str(ptsim)] if ptsim.exists() else [sys.executable, "-m", "workbench.cli"]) + [
            "api",
            "--db",
            str(db),
            "--api-port",
            str(api_port),
        ]
        bare_cmd = [sys.executable, str(HERE / "bare_app.py"), "--port", str(bare_port)]
        print(
            f"ptsim api on 127.0.0.1:{api_port} (fresh database {db}, PTSIM_SEED={SEED}); "
            f"bare FastAPI app on 127.0.0.1:{bare_port}; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
            flush=True,
        )
        api = start_server(api_cmd, env, api_port, tmp / "api.log")
        try:
            bare = start_server(bare_cmd, env, bare_port, tmp / "bare.log")
            try:
                runs, in_flight = measure({"ptsim": api_port, "bare": bare_port}, args.duration)
            finally:
                stop(bare)
        finally:
            code = stop(api)
            if code not in (0, -signal.SIGTERM):
                print(f"ptsim api exited with code {code}; log tail:")
                print((tmp / "api.log").read_text(errors="replace")[-2000:])
        api_runs, bare_runs = runs["ptsim"], runs["bare"]
        durable = check_durability(db, api_runs, in_flight)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    bare = {r.connections: r for r in bare_runs[1:]}
    print(
        f"\nPOST /payment, wrk -t1, {args.duration} s per level, policy {args.policy} "
        f"(latencies in ms; ratio = req/s of ptsim / bare FastAPI)"
    )
    header = "| target | concurrency | req/s | p50 | p95 | p99 | non-201 | ratio to bare |"
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for run in api_runs[1:] + bare_runs[1:]:
        ratio = run.rps / bare[run.connections].rps if bare[run.connections].rps else 0.0
        print(
            f"| {run.target} | {run.connections} | {run.rps:,.0f} | {run.p50_ms:.2f} | "
            f"{run.p95_ms:.2f} | {run.p99_ms:.2f} | {run.other + run.errors} | {ratio:.2f} |"
        )
    return 0 if durable else 1


if __name__ == "__main__":
    sys.exit(main())
