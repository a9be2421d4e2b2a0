"""The real server as a child process (``ptsim api``) for the crash, concurrency and PCI tests.

Not a conftest.py: other test modules import ``conftest`` by name, and a second conftest module
would shadow tests/conftest.py. Test modules import the ``live_server`` fixture from here.

Bound to 127.0.0.1 on a free port; stopped by PID in teardown even when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ADMIN_TOKEN, SEED

PTSIM = str(Path(sys.executable).with_name("ptsim"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """One ``ptsim api`` child process on ``db``."""

    def __init__(self, db: Path, log: Path, **env: str) -> None:
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = log.open("ab")
        environment = {
            **os.environ,
            "PTSIM_HOST": "127.0.0.1",
            "PTSIM_SEED": str(SEED),
            "PTSIM_ADMIN_TOKEN": ADMIN_TOKEN,
            "PTSIM_BACKUP_INTERVAL_S": "0",
            "PTSIM_RATE_LIMIT": "",
            **env,
        }
        self.proc = subprocess.Popen(
            [PTSIM, "api", "--db", str(db), "--api-port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
        )

    def wait_ready(self, timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.output()}")
            try:
                answer = httpx.get(f"{self.url}/health", timeout=2)
                if answer.status_code == 200:
                    return answer.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready in {timeout_s} s: {self.output()}")

    def kill(self) -> None:
        """SIGKILL: no drain, no checkpoint."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()

    def stop(self) -> int:
        """SIGTERM: graceful (drain, checkpoint, close); SIGKILL if it hangs."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._log.close()
        return self.proc.returncode

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(name="live_server")
def live_server_fixture(tmp_path: Path) -> Iterator[Any]:
    """Factory of LiveServer children; every one is stopped by PID afterwards."""
    started: list[LiveServer] = []

    def start(db: Path | None = None, **env: str) -> LiveServer:
        server = LiveServer(db or tmp_path / "live.duckdb", tmp_path / "server.log", **env)
        started.append(server)
        server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in started:
            if server.proc.poll() is None:
                server.kill()
