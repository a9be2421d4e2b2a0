"""``ptsim generate`` end to end, and its one-sentence refusal when the database is held."""

from __future__ import annotations

import os
import subprocess
import sys
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
        assert scenarios <= {None, "stolen_card", "card_testing"}


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
