"""Server CPU per request: the bare app on uvicorn's plain httptools protocol vs the guarded one.

One command: ``.venv/bin/python benchmarks/bench_guard_overhead.py [--rounds 4] [--duration 3]``.

The connection guard (``workbench/connections.py``) runs on every request of the payment path;
this isolates its cost from DuckDB and the engine. ``benchmarks/bare_app.py`` is served on
127.0.0.1 twice per round, once with ``http="httptools"`` and once with the guarded protocol
(default limits), alternating so both see the same machine; ``wrk -t1 -c32`` drives it for
``--duration`` seconds after a 1 s warm-up, and the server's CPU time (user + system, from
``/proc``) is divided by the requests wrk completed. CPU per request moves less with a busy
machine than requests per second do.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_connections import cpu_seconds  # noqa: E402
from bench_payments import LUA, free_port, stop, wait_ready  # noqa: E402

SERVER = """
import sys
import uvicorn
sys.path[:0] = [sys.argv[3], sys.argv[4]]
from bare_app import app
from workbench.connections import ConnectionLimits, guarded_protocol
http = "httptools" if sys.argv[2] == "plain" else guarded_protocol(
    ConnectionLimits(1024, 5.0, 10.0, 30.0, 32768)
)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http=http,
            access_log=False, log_level="warning")
"""
REQUESTS = re.compile(r"(\d+) requests in")


def cpu_per_request_us(kind: str, duration: int) -> float:
    """One server, one warm-up, one measured wrk run: the server's CPU µs per request."""
    port = free_port()
    cmd = [sys.executable, "-c", SERVER, str(port), kind, str(HERE), str(HERE.parent)]
    server = subprocess.Popen(cmd)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", server)
        wrk = ["wrk", "-t1", "-c32", "-s", str(LUA), f"http://127.0.0.1:{port}"]
        subprocess.run([*wrk, "-d1s"], capture_output=True, check=True, timeout=60)
        before = cpu_seconds(server.pid)
        out = subprocess.run(
            [*wrk, f"-d{duration}s"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        used = cpu_seconds(server.pid) - before
    finally:
        stop(server)
    match = REQUESTS.search(out)
    if not match:
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    return used / int(match.group(1)) * 1e6


def main() -> int:
    """Alternate plain and guarded servers; print each run and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=3, help="seconds per measured run")
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"plain": [], "guarded": []}
    for _ in range(args.rounds):
        for kind, figures in runs.items():
            figures.append(cpu_per_request_us(kind, args.duration))
            print(f"  {kind}: {figures[-1]:.1f} us CPU per request", flush=True)
    print("\n| protocol | runs (us CPU per request) | median |\n|---|---|---:|")
    for kind, figures in runs.items():
        median = sorted(figures)[len(figures) // 2]
        print(f"| {kind} | {' / '.join(f'{f:.1f}' for f in figures)} | {median:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
