"""POST /payment throughput at c=32 with one shadow policy, next to the same server without one.

One command: ``.venv/bin/python benchmarks/bench_shadow.py [--duration 5] [--rounds 2]
[--shadow rules20|default]``.

1. Stores the shadow candidate in a fresh database before the server opens it: by default
   bench_policies.py's 20-rule policy with its 100,000-card and 1,000-merchant lists (a heavy
   shadow next to the default active policy), or a copy of the default policy.
2. Starts ``ptsim api`` on a free 127.0.0.1 port (fixed ``PTSIM_SEED``, an admin token), warms
   up, then runs ``--rounds`` pairs in the order off, on, on, off, ...: no shadow
   (``DELETE /policies/shadow``) and the candidate in shadow (``POST
   /policies/{version}/shadow``), each a ``wrk -t1 -c32`` run of ``--duration`` seconds with
   ``benchmarks/payment.lua``. Alternating keeps both figures seconds apart on a shared machine
   and the mirrored order cancels a steady drift (the server warming up, the file growing); the
   reference is the no-shadow figure of the same run.
3. Stops the server (SIGTERM by PID) and checks on disk that the shadow ran: at least as many
   rows carry the shadow's decision as wrk counted 201s during the shadow runs.

Target (issue 14): throughput with one shadow >= 85% of the no-shadow figure at c=32.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_payments import SEED, Run, free_port, run_wrk, start_server, stop  # noqa: E402

TOKEN = "bench-shadow-token"
CONNECTIONS = 32
TARGET = 0.85


def prepare(db: Path, shadow: str) -> int:
    """Store the shadow candidate (and its lists) in ``db``; its version."""
    from engine.policy import DEFAULT_POLICY
    from engine.service import Engine

    with Engine.open(db, backup_interval_s=0) as engine:
        if shadow == "default":
            rules = [rule.model_dump() for rule in DEFAULT_POLICY.rules]
        else:
            from bench_policies import prepare_lists, rules_20

            prepare_lists(engine)
            rules = rules_20()
        return engine.create_policy(rules, note=f"bench shadow: {shadow}").version


def admin(port: int, method: str, path: str) -> None:
    """One admin call to the server (the shadow on or off)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        json.load(response)


def shadowed_rows(db: Path, version: int) -> tuple[int, int]:
    """(live rows, rows the shadow decided) on disk."""
    from engine.service import Engine

    with Engine.open(db, backup_interval_s=0, admin_token=TOKEN) as engine:
        ((rows, shadowed),) = engine.store.query(
            "SELECT count(*), count(*) FILTER (shadow_version = ?) FROM transactions", [version]
        )
    return int(rows), int(shadowed)


def main() -> int:
    """Run the benchmark and print the figures; exit 1 when the shadow did not run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="no-shadow/shadow pairs")
    parser.add_argument("--shadow", choices=("rules20", "default"), default="rules20")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: sudo apt-get install -y wrk, then run this again.")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="ptsim-bench-shadow-"))
    try:
        db = tmp / "bench.duckdb"
        version = prepare(db, args.shadow)
        port = free_port()
        env = {**os.environ, "PTSIM_SEED": str(SEED), "PTSIM_ADMIN_TOKEN": TOKEN,
               "PTSIM_HOST": "127.0.0.1"}  # fmt: skip
        ptsim = Path(sys.executable).parent / "ptsim"
        cmd = [str(ptsim), "api", "--db", str(db), "--api-port", str(port)]
        print(
            f"ptsim api on 127.0.0.1:{port}; shadow candidate: version {version} "
            f"({args.shadow}); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
            flush=True,
        )
        runs: dict[str, list[Run]] = {"off": [], "on": []}
        server = start_server(cmd, env, port, tmp / "api.log")
        try:
            warm = run_wrk("warm-up", port, 8, max(2, args.duration // 2))
            print(f"  warm-up: {warm.rps:,.0f} req/s", flush=True)
            for round_ in range(args.rounds):  # off, on, on, off, ...: a drift cancels out
                for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                    if mode == "on":
                        admin(port, "POST", f"/policies/{version}/shadow")
                    else:
                        admin(port, "DELETE", "/policies/shadow")
                    run = run_wrk(mode, port, CONNECTIONS, args.duration)
                    runs[mode].append(run)
                    print(
                        f"  shadow {mode:<3}: c={CONNECTIONS} {run.rps:>7,.0f} req/s  "
                        f"p50 {run.p50_ms:.2f} ms  p95 {run.p95_ms:.2f} ms  "
                        f"non-201 {run.other + run.errors}  "
                        f"(load average {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
        finally:
            stop(server)
        rows, shadowed = shadowed_rows(db, version)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    off = statistics.mean(r.rps for r in runs["off"])
    on = statistics.mean(r.rps for r in runs["on"])
    counted_on = sum(r.created for r in runs["on"])
    ran = shadowed >= counted_on
    ratio = on / off if off else 0.0
    print(
        f"\nc={CONNECTIONS}, {args.rounds} alternating rounds of {args.duration} s: "
        f"no shadow {off:,.0f} req/s, one shadow ({args.shadow}) {on:,.0f} req/s -> "
        f"ratio {ratio:.2f} (target >= {TARGET:.2f}: {'met' if ratio >= TARGET else 'NOT met'})"
        f"\nOn disk: {rows:,} live rows, {shadowed:,} decided by the shadow too "
        f"(wrk counted {counted_on:,} 201s while it shadowed) -> {'OK' if ran else 'FAILED'}"
    )
    return 0 if ran else 1


if __name__ == "__main__":
    sys.exit(main())
