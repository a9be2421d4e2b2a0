"""Crash safety of the real server: SIGKILL under load loses no payment answered 201; a file that
will not open is moved aside and the newest backup restored, loudly; ``ptsim backup``/``restore``.

``PTSIM_CRASH_CYCLES`` (default 3) sets how many kill/restart cycles run; they rotate through a
kill under plain load, during a simulation run and during a backup's copy.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pytest
from support import ADMIN_TOKEN, TEST_CARDS, payment_body

from tests.reliability.live_server import PTSIM, live_server_fixture  # noqa: F401 (the fixture)

CYCLES = int(os.environ.get("PTSIM_CRASH_CYCLES", "3"))
CLIENTS = 4
KILL_SEED = 20240611
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Load:
    """``CLIENTS`` threads posting payments until stopped; keeps every id answered 201."""

    def __init__(self, url: str, cycle: int) -> None:
        self.url = url
        self.cycle = cycle
        self.confirmed: list[str] = []
        self.sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                body = payment_body(
                    card=TEST_CARDS[(worker + n) % len(TEST_CARDS)],
                    amount=round(1 + (n % 900) + worker / 100, 2),
                    merchant=f"crash-{self.cycle}-{worker}",
                )
                try:
                    answer = client.post("/payment", json=body)
                except httpx.HTTPError:
                    if self._stop.is_set():
                        return
                    time.sleep(0.01)  # the server is gone: retry until told to stop
                    continue
                with self._lock:
                    self.sent += 1
                    if answer.status_code == 201:
                        self.confirmed.append(answer.json()["transaction_id"])


def _assert_present_with_audit(url: str, ids: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for tid in ids:
            stored = client.get(f"/transaction/{tid}")
            assert stored.status_code == 200, f"confirmed payment {tid} lost: {stored.text}"
            audit = client.get(f"/audit/{tid}")
            assert audit.status_code == 200 and audit.json(), f"no audit entry for {tid}"
            assert audit.json()[0]["event"] == "payment.decided"


SIMULATION = {"rows": 300_000, "seed": 42, "days": 7, "fraud_rate": 0.01}


def _kill_during(kind: str, server: Any, db: Path, rng: np.random.Generator) -> None:
    """SIGKILL the server at a random moment of a plain load, a simulation run or a backup."""
    if kind == "simulation":
        answer = httpx.post(f"{server.url}/simulations", json=SIMULATION, timeout=30)
        assert answer.status_code == 202, answer.text
        time.sleep(float(rng.uniform(0.2, 1.5)))  # the run is writing chunks
    elif kind == "backup":
        folder = db.with_name(db.name + ".backups")
        threading.Thread(target=_post_backup, args=(server.url,), daemon=True).start()
        deadline = time.monotonic() + 30
        while not list(folder.glob("*.partial")) and time.monotonic() < deadline:
            time.sleep(0.005)  # kill once the copy has started
        assert list(folder.glob("*.partial")), "the backup never started copying"
        time.sleep(float(rng.uniform(0.0, 0.05)))
    else:
        time.sleep(float(rng.uniform(0.05, 1.0)))  # a random moment under load
    server.kill()


def _post_backup(url: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server is killed under it
        httpx.post(f"{url}/admin/backup", headers=AUTH, timeout=60)


@pytest.mark.slow  # PTSIM_CRASH_CYCLES=21 for the full run; make test runs 3 (one of each kind)
@pytest.mark.timeout(120 + 90 * CYCLES)  # server starts on a busy machine take up to ~30 s
def test_sigkill_under_load_loses_no_confirmed_payment(live_server: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(KILL_SEED)
    db = tmp_path / "crash.duckdb"
    confirmed: list[str] = []
    kinds: dict[str, int] = {}
    for cycle in range(CYCLES):
        server = live_server(db)
        _assert_recovered_cleanly(server.url, db, confirmed)  # everything from earlier cycles
        kind = ("load", "simulation", "backup")[cycle % 3]
        with Load(server.url, cycle) as load:
            deadline = time.monotonic() + 30  # generous: the machine may be busy
            while len(load.confirmed) < 20 and time.monotonic() < deadline:
                time.sleep(0.02)
            _kill_during(kind, server, db, rng)
            kinds[kind] = kinds.get(kind, 0) + 1
        assert load.confirmed, f"cycle {cycle}: no payment confirmed before the kill"
        confirmed.extend(load.confirmed)
    server = live_server(db)
    _assert_recovered_cleanly(server.url, db, confirmed)
    stats = httpx.get(f"{server.url}/stats", timeout=10).json()
    assert stats["total"] >= len(confirmed)  # unanswered payments may also have committed
    assert server.stop() == 0
    survived = sum(kinds.values())
    print(f"\ncrash: {survived} SIGKILLs survived {kinds}, {len(confirmed)} confirmed ids checked")


def _assert_recovered_cleanly(url: str, db: Path, confirmed: list[str]) -> None:
    """Every confirmed payment is there, nothing was reported lost, no half backup is left."""
    _assert_present_with_audit(url, confirmed)
    health = httpx.get(f"{url}/health", timeout=10).json()
    assert health["status"] == "ok" and health["storage"] == [], health
    assert not list(db.with_name(db.name + ".backups").glob("*.partial*"))


def test_damaged_file_is_moved_aside_and_the_newest_backup_restored(
    live_server: Any, tmp_path: Path
) -> None:
    from engine.service import Engine

    db = tmp_path / "damaged.duckdb"
    # Written in-process (one server start less); the server then opens what an operator has.
    with Engine.open(db, seed=3, card_key="", backup_interval_s=0) as engine:
        before = [engine.authorize(payment_body()).model_dump(mode="json") for _ in range(5)]
        engine.store.backup()
        after = engine.authorize(payment_body(amount=7)).model_dump(mode="json")
    with db.open("r+b") as handle:  # destroy the header: the file no longer opens
        handle.write(b"\xff" * 4096)

    server = live_server(db)
    health = httpx.get(f"{server.url}/health", timeout=10).json()
    report = health["recovered_from_backup"]
    assert report and "payments committed after that time may be missing" in report
    assert "WARNING:" in server.output()
    damaged = list(tmp_path.glob("damaged.duckdb.damaged-*"))
    assert len(damaged) == 1 and damaged[0].read_bytes()[:4096] == b"\xff" * 4096
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for payment in before:
            assert client.get(f"/transaction/{payment['transaction_id']}").status_code == 200
        assert client.get(f"/transaction/{after['transaction_id']}").status_code == 404
        assert client.post("/payment", json=payment_body()).status_code == 201  # serving again
    assert server.stop() == 0


def _ptsim(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PTSIM_BACKUP_INTERVAL_S": "0"}
    return subprocess.run(
        [PTSIM, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def _ids_in(db: Path) -> set[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {str(row[0]) for row in con.execute("SELECT id FROM transactions").fetchall()}
    finally:
        con.close()


def test_backup_and_restore_commands_round_trip(live_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "ops.duckdb"
    server = live_server(db)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        kept = client.post("/payment", json=payment_body()).json()["transaction_id"]
        assert client.post("/admin/backup", headers=AUTH).status_code == 200  # online backup
        dropped = client.post("/payment", json=payment_body(amount=9)).json()["transaction_id"]
    busy = _ptsim("backup", "--db", str(db))
    assert busy.returncode == 2 and "in use" in busy.stderr  # the server holds the file
    refused = _ptsim("restore", "--db", str(db))
    assert refused.returncode == 2 and "in use" in refused.stderr
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200  # still serving
    assert server.stop() == 0
    assert {kept, dropped} <= _ids_in(db)

    restored = _ptsim("restore", "--db", str(db))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "previous file" in restored.stdout
    assert kept in _ids_in(db) and dropped not in _ids_in(db)
    replaced = list(tmp_path.glob("ops.duckdb.replaced-*"))
    assert len(replaced) == 1 and dropped in _ids_in(replaced[0])  # the old file is kept

    made = _ptsim("backup", "--db", str(db))
    assert made.returncode == 0, made.stdout + made.stderr
    listed = _ptsim("backup", "--list", "--db", str(db))
    assert listed.returncode == 0 and listed.stdout.count("backup-") == 2


def test_taking_a_backup_keeps_the_database_locked(tmp_path: Path) -> None:
    """Regression: copying the open file in-process released DuckDB's fcntl lock."""
    from engine.service import Engine

    db = tmp_path / "locked.duckdb"
    with Engine.open(db, seed=1, card_key="", backup_interval_s=0) as engine:
        engine.authorize(payment_body())
        engine.store.backup()
        probe = subprocess.run(
            [sys.executable, "-c", f"import duckdb; duckdb.connect({str(db)!r})"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert probe.returncode != 0 and "lock" in probe.stderr.lower(), probe.stderr
