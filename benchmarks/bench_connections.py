"""Payments from a well-behaved client while idle and slowloris sockets are held, on 127.0.0.1.

One command: ``.venv/bin/python benchmarks/bench_connections.py [--duration 10]``.

1. Starts ``ptsim api`` (default connection settings: ``PTSIM_MAX_CONNECTIONS=1024``, idle 5 s,
   headers 10 s, body 30 s) on a free 127.0.0.1 port over a fresh temporary database.
2. The well-behaved client is ``wrk`` (one thread, 4 keep-alive connections, the payment
   benchmark's ``payment.lua``) for ``--duration`` seconds: first alone, then while an attacker
   process holds ``--idle`` silent sockets (1,024), ``--slowloris`` sockets trickling one header
   byte a second (64) and ``--slow-body`` sockets trickling one body byte a second (64). The
   attacker reopens every socket the server closes (after 0.2 s), as an attacker holding them
   would, and samples how many it holds while wrk runs.
3. The same two phases against the reference: a bare uvicorn app with the settings ``ptsim api``
   had before the connection guard (httptools, ``limit_concurrency=1024``,
   ``timeout_keep_alive=5``): it shows the attack's effect on an unguarded server in the same run.
4. Prints one table; every process is stopped by its PID. Bounded: about 4 x duration + 40 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_payments import SEED, Run, free_port, run_wrk, start_server, stop  # noqa: E402

RECONNECT_S = 0.2
TRICKLE_S = 1.0
CLIENTS = 4


@dataclass
class AttackReport:
    """What the attacker saw while the client was measured."""

    held_mean: float
    held_min: int
    wanted: int
    connects: int
    closed_by_server: int
    cpu: float = 0.0  # the attacker process's CPU share while the client was measured


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"The open-file limit is {hard}, below the {needed} this benchmark needs; raise it "
            "(ulimit -Hn) or pass smaller --idle/--slowloris/--slow-body."
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


# -- the attacker (its own process, so its work does not slow the measuring side) --------------


class _Attack:
    def __init__(self, port: int) -> None:
        self.port = port
        self.held = 0
        self.connects = 0
        self.closed_by_server = 0

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            connection = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            await asyncio.sleep(RECONNECT_S)
            return None
        self.connects += 1
        self.held += 1
        return connection

    def _lost(self, writer: asyncio.StreamWriter) -> None:
        self.held -= 1
        self.closed_by_server += 1
        writer.close()

    async def idle(self) -> None:
        """Connect and send nothing; reconnect when the server closes the socket."""
        while True:
            if (opened := await self._open()) is None:
                continue
            reader, writer = opened
            with contextlib.suppress(OSError):
                await reader.read()
            self._lost(writer)
            await asyncio.sleep(RECONNECT_S)

    async def trickle(self, head: bytes, byte: bytes) -> None:
        """Send ``head``, then one ``byte`` a second until the server answers or closes."""
        while True:
            if (opened := await self._open()) is None:
                continue
            reader, writer = opened
            try:
                writer.write(head)
                while True:
                    try:
                        data = await asyncio.wait_for(reader.read(4096), TRICKLE_S)
                    except TimeoutError:
                        writer.write(byte)
                        continue
                    if not data or b"\r\n\r\n" in data:
                        break
            except OSError:
                pass
            self._lost(writer)
            await asyncio.sleep(RECONNECT_S)


def _attacker(port: int, idle: int, slowloris: int, slow_body: int, pipe: Connection) -> None:
    """Hold the sockets until the pipe says stop; sample the held count between 'measure'
    and 'stop' and send back an :class:`AttackReport`."""
    _raise_open_files(idle + slowloris + slow_body + 256)

    async def main() -> None:
        attack = _Attack(port)
        slow_head = b"POST /payment HTTP/1.1\r\nHost: x\r\n"
        body_head = (
            b"POST /payment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        tasks = [asyncio.create_task(attack.idle()) for _ in range(idle)]
        tasks += [asyncio.create_task(attack.trickle(slow_head, b"X")) for _ in range(slowloris)]
        tasks += [asyncio.create_task(attack.trickle(body_head, b"1")) for _ in range(slow_body)]
        loop = asyncio.get_running_loop()
        wanted = idle + slowloris + slow_body
        deadline = time.monotonic() + 20
        while attack.held < wanted and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        pipe.send(("holding", attack.held))
        await loop.run_in_executor(None, pipe.recv)  # "measure"
        samples: list[int] = []
        connects, closed = attack.connects, attack.closed_by_server
        while not pipe.poll():
            samples.append(attack.held)
            await asyncio.sleep(0.25)
        pipe.recv()  # "stop"
        for task in tasks:
            task.cancel()
        pipe.send(
            AttackReport(
                held_mean=sum(samples) / max(1, len(samples)),
                held_min=min(samples, default=0),
                wanted=wanted,
                connects=attack.connects - connects,
                closed_by_server=attack.closed_by_server - closed,
            )
        )

    uvloop.run(main())  # the attacker's own overhead competes for the same CPUs: keep it small


def measure_alone(name: str, port: int, server: int, duration: int) -> tuple[Run, float]:
    """wrk alone; (its figures, the server's CPU share while it ran)."""
    before, started = cpu_seconds(server), time.monotonic()
    run = run_wrk(name, port, CLIENTS, duration)
    return run, (cpu_seconds(server) - before) / (time.monotonic() - started)


def measure_under_attack(
    name: str, port: int, server: int, args: argparse.Namespace
) -> tuple[Run, float, AttackReport]:
    """wrk while the attacker process holds its sockets; the server's and the attacker's CPU
    shares while wrk ran are in the figures (all share the machine's cores)."""
    mine, theirs = multiprocessing.Pipe()
    attacker = multiprocessing.Process(
        target=_attacker,
        args=(port, args.idle, args.slowloris, args.slow_body, theirs),
        daemon=True,
    )
    attacker.start()
    try:
        _, held = mine.recv()
        print(f"  {name}: attacker holds {held} sockets; measuring", flush=True)
        assert attacker.pid is not None
        mine.send("measure")
        before, theirs_before = cpu_seconds(server), cpu_seconds(attacker.pid)
        started = time.monotonic()
        run = run_wrk(name, port, CLIENTS, args.duration)
        elapsed = time.monotonic() - started
        server_cpu = (cpu_seconds(server) - before) / elapsed
        attacker_cpu = (cpu_seconds(attacker.pid) - theirs_before) / elapsed
        mine.send("stop")
        report: AttackReport = mine.recv()
        report.cpu = attacker_cpu
    finally:
        attacker.join(timeout=15)
        if attacker.is_alive() and attacker.pid is not None:
            os.kill(attacker.pid, 9)
            attacker.join(timeout=5)
    return run, server_cpu, report


def _row(label: str, run: Run, server_cpu: float, attack: AttackReport | None) -> str:
    held = f"{attack.held_mean:,.0f} (min {attack.held_min:,})" if attack else "-"
    closed = f"{attack.closed_by_server:,}" if attack else "-"
    attacker_cpu = f"{attack.cpu:.0%}" if attack else "-"
    return (
        f"| {label} | {run.rps:,.0f} | {run.created:,} | {run.other:,} | {run.errors:,} | "
        f"{run.p50_ms:.2f} | {run.p99_ms:.2f} | {server_cpu:.0%} | {held} | {closed} "
        f"| {attacker_cpu} |"
    )


def main() -> int:
    """Run the four phases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per phase")
    parser.add_argument("--idle", type=int, default=1024, help="silent sockets held")
    parser.add_argument("--slowloris", type=int, default=64, help="header-trickling sockets")
    parser.add_argument("--slow-body", type=int, default=64, help="body-trickling sockets")
    args = parser.parse_args()
    _raise_open_files(args.idle + args.slowloris + args.slow_body + 1024)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ptsim-bench-conn-") as tmp:
        env = {
            **os.environ,
            "PTSIM_HOST": "127.0.0.1",
            "PTSIM_SEED": str(SEED),
            "PTSIM_BACKUP_INTERVAL_S": "0",
            "PTSIM_RATE_LIMIT": "",
        }
        targets = {
            "ptsim api (guarded)": [
                str(Path(sys.executable).with_name("ptsim")),
                "api",
                "--db",
                str(Path(tmp) / "bench.duckdb"),
            ],
            "reference: uvicorn limit_concurrency=1024": [
                sys.executable,
                str(HERE / "bare_app.py"),
                "--limit-concurrency",
                "1024",
            ],
        }
        for name, cmd in targets.items():
            port = free_port()
            port_arg = ["--api-port" if "api" in cmd else "--port", str(port)]
            server = start_server(cmd + port_arg, env, port, Path(tmp) / f"{port}.log")
            try:
                run_wrk(name, port, CLIENTS, max(2, args.duration // 3))  # warm-up
                alone, alone_cpu = measure_alone(name, port, server.pid, args.duration)
                print(f"  {name}: alone {alone.rps:,.0f} req/s", flush=True)
                attacked, attacked_cpu, report = measure_under_attack(name, port, server.pid, args)
            finally:
                stop(server)
            rows.append(_row(f"{name}, alone", alone, alone_cpu, None))
            rows.append(_row(f"{name}, attacked", attacked, attacked_cpu, report))
    print(
        f"\nwrk -t1 -c{CLIENTS} POST /payment, {args.duration} s per phase; attacker: "
        f"{args.idle} idle + {args.slowloris} slowloris + {args.slow_body} slow-body sockets, "
        f"reopened {RECONNECT_S} s after the server closes one (load average "
        f"{os.getloadavg()[0]:.1f})\n"
    )
    print(
        "| server, phase | req/s | 201 | non-201 | socket errors | p50 ms | p99 ms | server CPU "
        "| attacker sockets held | closed by server | attacker CPU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
