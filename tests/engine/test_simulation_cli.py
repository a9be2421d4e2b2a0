"""``ptsim generate`` end to end, and its one-sentence refusal when the database is held."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.service import Engine

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def ptsim(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PTSIM_CARD_KEY": "cli-key", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_generate_smoke(tmp_path: Path) -> None:
    db = tmp_path / "cli.duckdb"
    done = ptsim(
        "generate", "--rows", "5000", "--seed", "4", "--days", "2", "--fraud-rate", "0.05",
        "--scenario-mix", "stolen_card=2,card_testing=1", "--db", str(db),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "run 1 completed: 5,000 rows" in done.stdout
    assert "rows/s" in done.stderr  # the tqdm bar
    with Engine.open(db, card_key="cli-key") as eng:
        run = eng.get_run(1)
        assert run.status == "completed" and run.rows_written == 5_000
        assert run.params["scenario_mix"]["account_takeover"] == 0.0
        scenarios = {
            r[0] for r in eng.store.query("SELECT DISTINCT fraud_scenario FROM transactions")
        }
        assert scenarios <= {None, "stolen_card", "card_testing", "friendly_fraud"}


def test_generate_rejects_bad_arguments_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from workbench.cli import main

    code = main(["generate", "--rows", "0", "--seed", "1", "--db", str(tmp_path / "x.duckdb")])
    err = capsys.readouterr().err
    assert code == 2 and "--rows" in err and "Traceback" not in err
    assert not (tmp_path / "x.duckdb").exists()  # refused before opening anything
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--rows", "5", "--seed", "1", "--scenario-mix", "nope=1"])
    assert exit_info.value.code == 2 and "unknown scenario" in capsys.readouterr().err


def test_generate_takes_the_difficulty_and_population_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from workbench.cli import main

    db = tmp_path / "world.duckdb"
    code = main(["generate", "--rows", "3000", "--seed", "2", "--days", "3", "--db", str(db),
                 "--difficulty", "hard", "--missed-disputes", "0", "--cards", "150",
                 "--merchants", "41", "--devices", "99", "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with Engine.open(db, card_key="cli-key") as eng:
        params = eng.get_run(1).params
        assert params["difficulty"] == "hard" and params["missed_disputes"] == 0.0
        assert (params["cards"], params["merchants"], params["devices"]) == (150, 41, 99)
        assert params["overlap"] is None  # not given: the preset's
        (cards,) = eng.store.query("SELECT count(DISTINCT card_hash) FROM transactions")[0]
        assert 140 <= cards <= 150
    for bad, option in ((["--difficulty", "medium"], "--difficulty"),
                        (["--overlap", "2"], "--overlap"),
                        (["--cards", "0"], "--cards")):  # fmt: skip
        try:
            code = main(["generate", "--rows", "5", "--seed", "1", "--db", str(db), *bad])
        except SystemExit as exit_info:  # argparse refuses a choice itself
            code = exit_info.code
        err = capsys.readouterr().err
        assert code == 2 and option in err and "Traceback" not in err


def test_locked_database_is_refused_in_one_sentence(tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; con = duckdb.connect({str(db)!r}); "
            "print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        done = ptsim("generate", "--rows", "100", "--seed", "1", "--db", str(db))
    finally:
        holder.communicate("", timeout=30)
    assert done.returncode == 2
    message = done.stderr.strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert f"process {holder.pid}" in message
    assert "POST /simulations" in message and "--db" in message


def _wait_for_committed_rows(process: subprocess.Popen, deadline_s: float = 300) -> bytes:
    """Read the progress bar from stderr until it shows committed rows; returns what was read."""
    seen = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        chunk = os.read(process.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        counts = re.findall(rb"\|\s*([0-9.]+)([kM]?)/", seen)
        if any(float(number) > 0 for number, _ in counts):
            return seen
    raise AssertionError(f"no progress before the deadline: {seen[-500:]!r}")


def test_ctrl_c_marks_the_run_interrupted_with_its_committed_rows(tmp_path: Path) -> None:
    """README: "Ctrl-C ... keeps committed chunks and marks the run `interrupted` with its true
    row count". A real SIGINT mid-run, as a terminal sends it."""
    db = tmp_path / "ctrl-c.duckdb"
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "generate", "--rows", "3000000", "--seed", "3",
         "--chunk-rows", "20000", "--db", str(db)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PTSIM_CARD_KEY": "cli-key"},
        # as from a terminal: SIGINT handled (a background job of a script would ignore it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        _wait_for_committed_rows(process)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = err.decode()
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and b"completed" not in out
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("ptsim generate: interrupted; run 1 is marked interrupted with its ")
    with Engine.open(db, card_key="cli-key") as eng:
        run = eng.get_run(1)
        stored = eng.store.query("SELECT count(*) FROM transactions WHERE run_id = 1")[0][0]
    assert run.status == "interrupted"
    assert 0 < run.rows_written == stored < 3_000_000
    assert f"its {stored:,} committed rows." in last
