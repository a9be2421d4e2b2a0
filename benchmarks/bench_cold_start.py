"""What a user waits for before a command does anything: ``ptsim`` start-up, end to end.

One command: ``.venv/bin/python benchmarks/bench_cold_start.py [--repeat 5]``.

Times three commands as fresh processes, median of ``--repeat``: ``ptsim --help``, a small
``ptsim generate`` (20,000 rows into a new file) and ``ptsim api`` until ``GET /health``
answers. Each runs twice per repetition, alternating: with the bytecode ``make setup`` compiles
(``uv sync --compile-bytecode``) and caches, and, as the reference, with no usable bytecode at
all (``PYTHONDONTWRITEBYTECODE=1`` and an empty ``PYTHONPYCACHEPREFIX``: every module compiled
from source on every start, which is what a machine that sets ``PYTHONDONTWRITEBYTECODE`` got
before the Makefile unset it).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PTSIM = str(Path(sys.executable).with_name("ptsim"))


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(compiled: bool, empty_cache: Path) -> dict[str, str]:
    """The process environment: cached bytecode, or none (the reference)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE",)}
    env.update(PTSIM_BACKUP_INTERVAL_S="0", PTSIM_HOST="127.0.0.1", PTSIM_RATE_LIMIT="")
    if not compiled:
        env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=str(empty_cache))
    return env


def run_help(env: dict[str, str], folder: Path) -> float:
    started = time.perf_counter()
    subprocess.run([PTSIM, "--help"], env=env, cwd=ROOT, capture_output=True, check=True)
    return time.perf_counter() - started


def run_generate(env: dict[str, str], folder: Path) -> float:
    db = folder / f"gen-{time.monotonic_ns()}.duckdb"
    cmd = [PTSIM, "generate", "--rows", "20000", "--seed", "1", "--db", str(db)]
    started = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, check=True)
    return time.perf_counter() - started


def run_api(env: dict[str, str], folder: Path) -> float:
    port = free_port()
    db = folder / f"api-{time.monotonic_ns()}.duckdb"
    cmd = [PTSIM, "api", "--db", str(db), "--api-port", str(port)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ptsim api exited with {proc.returncode} before answering")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    return time.perf_counter() - started
            except OSError:
                time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


COMMANDS: list[tuple[str, Callable[[dict[str, str], Path], float]]] = [
    ("ptsim --help", run_help),
    ("ptsim generate --rows 20000 (new file)", run_generate),
    ("ptsim api until GET /health answers", run_api),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"median of {args.repeat}, load average {load:.1f} at the start\n")
    print("| command | cached bytecode s | no bytecode (reference) s | speed-up |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="ptsim-cold-") as tmp:
        folder = Path(tmp)
        for label, command in COMMANDS:
            compiled, reference = [], []
            for i in range(args.repeat):
                empty = folder / f"pycache-{label[:5]}-{i}"  # a new, empty prefix every time
                compiled.append(command(environment(True, empty), folder))
                reference.append(command(environment(False, empty), folder))
            fast, slow = statistics.median(compiled), statistics.median(reference)
            print(f"| {label} | {fast:.2f} | {slow:.2f} | {slow / fast:.1f}x |")


if __name__ == "__main__":
    main()
