"""``ptsim generate --lake`` as a real process: killed (SIGKILL) or stopped (Ctrl-C) mid-run, the
lake holds only committed partitions and the run reads as interrupted with its true row count."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.lake.layout import LAKE_RUN_BASE, Lake
from engine.service import Engine

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN = LAKE_RUN_BASE + 1


def _start(tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "generate", "--rows", "3000000", "--seed", "3",
         "--chunk-rows", "20000", "--partition-rows", "40000", "--quiet",
         "--db", str(tmp_path / "db.duckdb"), "--lake", str(tmp_path / "lake")],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PTSIM_CARD_KEY": "cli-key"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _wait_for_partitions(lake: Lake, count: int, process: subprocess.Popen) -> None:
    end = time.monotonic() + 300
    while time.monotonic() < end and process.poll() is None:
        manifests = lake.manifests()
        if manifests and len(manifests[0].partitions) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {count} committed partitions: {process.stderr.read()[-800:]!r}")


def _stop(process: subprocess.Popen, sig: int) -> tuple[bytes, bytes]:
    try:
        process.send_signal(sig)
        return process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _rows_read(tmp_path: Path) -> tuple[str, int, int]:
    """(status, rows_written, rows a reader sees) of the run, through an attached lake."""
    with Engine.open(
        tmp_path / "db.duckdb", card_key="cli-key", lake=str(tmp_path / "lake")
    ) as eng:
        run = eng.get_run(RUN)
        return run.status, run.rows_written, eng.stats(RUN).total


def test_a_killed_generator_leaves_an_interrupted_run_with_its_true_rows(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    process = _start(tmp_path)
    _wait_for_partitions(lake, 2, process)
    _stop(process, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    status, written, seen = _rows_read(tmp_path)
    listed = lake.manifest(RUN)
    assert status == "interrupted"
    assert 0 < written == seen == sum(p.rows for p in listed.partitions) < 3_000_000
    assert written % 40_000 == 0  # whole partitions only
    lake.recover()  # what a reader reported is now recorded, and the aside file is gone
    assert lake.manifest(RUN).status == "interrupted"
    folder = tmp_path / "lake" / f"transactions/run_id={RUN}"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"part-{i:05d}.parquet" for i in range(len(listed.partitions))]


def test_ctrl_c_marks_the_lake_run_interrupted(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    process = _start(tmp_path)
    _wait_for_partitions(lake, 1, process)
    _, err = _stop(process, signal.SIGINT)
    stderr = err.decode()
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    status, written, seen = _rows_read(tmp_path)
    assert status == "interrupted" and 0 < written == seen < 3_000_000
    last = stderr.strip().splitlines()[-1]
    assert last == (
        f"ptsim generate: interrupted; run {RUN} is marked interrupted with its "
        f"{written:,} committed rows."
    )
