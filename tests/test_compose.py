"""compose.yaml: well-formed, one image and one shared volume, and its services' commands run here
directly (Docker cannot run in CI): the scheduler's and a worker's make a real cluster, the
generate service's writes a run into the lake on it, and the workbench's settings read that run
on the cluster."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.config import get_settings
from engine.policy import Policy
from engine.service import Engine

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("scheduler", "worker", "workbench", "generate")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_file_is_well_formed_and_shares_one_volume() -> None:
    compose = _compose()
    assert set(compose["services"]) == set(SERVICES)
    assert set(compose["volumes"]) == {"data"}
    for name, service in compose["services"].items():
        assert service["build"] == "." and service["image"] == "ptsim:latest", name
        assert service["volumes"] == ["data:/data"], name
        assert isinstance(service["command"], list), name  # exec form: no shell in between
        assert all(isinstance(word, str) for word in service["command"]), name
        assert service["environment"]["PTSIM_LAKE"] == "/data/lake", name
        for dependency in service.get("depends_on", []):
            assert dependency in compose["services"], name
    assert compose["services"]["workbench"]["command"] == ["make", "run"]  # the Dockerfile's CMD
    assert 'CMD ["make", "run"]' in (ROOT / "Dockerfile").read_text()
    workbench = compose["services"]["workbench"]["environment"]
    assert workbench["PTSIM_DASK_SCHEDULER"] == "tcp://scheduler:8786"
    assert "PTSIM_ADMIN_TOKEN" in workbench  # the servers listen beyond the container
    assert compose["services"]["generate"]["environment"]["PTSIM_DB"] != "/data/ptsim.duckdb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _here(word: str, data: Path, port: int, env: dict[str, str]) -> str:
    """A compose word as it runs on this machine: variables interpolated, the volume a folder,
    the scheduler on 127.0.0.1."""

    def variable(m: re.Match[str]) -> str:
        name, kind, rest = m.group(1), m.group(2), m.group(3)
        if name in env:
            return env[name]
        assert kind == ":-", f"${name} has no default and is not set"
        return rest

    word = re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", variable, word)
    word = word.replace("tcp://scheduler:8786", f"tcp://127.0.0.1:{port}")
    word = word.replace("/data", str(data)).replace("/app/", f"{ROOT}/")  # the image's WORKDIR
    if word.startswith(".venv/bin/"):
        word = str(Path(sys.executable).parent / word.removeprefix(".venv/bin/"))
    return {"0.0.0.0": "127.0.0.1", "8786": str(port)}.get(word, word)


def _environment(service: dict[str, Any], data: Path, port: int, env: dict[str, str]) -> dict:
    values = {k: _here(str(v), data, port, env) for k, v in service["environment"].items()}
    return {**os.environ, **values}


@pytest.mark.cluster
@pytest.mark.timeout(600)
def test_every_service_command_runs_directly(tmp_path: Path) -> None:
    compose = _compose()["services"]
    port = _free_port()
    given = {"PTSIM_CARD_KEY": "compose-key", "PTSIM_ADMIN_TOKEN": "t", "ROWS": "30000",
             "SEED": "4"}  # fmt: skip

    def start(name: str) -> subprocess.Popen[bytes]:
        service = compose[name]
        words = [_here(w, tmp_path, port, given) for w in service["command"]]
        return subprocess.Popen(
            words, env=_environment(service, tmp_path, port, given), cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    started = [start("scheduler")]
    try:
        deadline = time.monotonic() + 120
        while True:
            assert started[0].poll() is None, started[0].stderr.read().decode()  # type: ignore[union-attr]
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the scheduler did not listen"
            time.sleep(0.2)
        started.append(start("worker"))
        from distributed import Client  # only here: importing it is slow

        with Client(f"tcp://127.0.0.1:{port}", timeout="60s") as client:
            client.wait_for_workers(1, timeout=120)
            # DASK_CONFIG: the worker's nanny left glibc's malloc as it is (engine/lake/dask.yaml)
            assert set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == {None}
        generate = compose["generate"]
        words = [_here(w, tmp_path, port, given) for w in generate["command"]]
        done = subprocess.run(
            [*words, "--shard-rows", "10000", "--quiet"], cwd=tmp_path, capture_output=True,
            text=True, env=_environment(generate, tmp_path, port, given), timeout=400,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "completed: 30,000 rows" in done.stdout
        # the workbench's settings: the lake attached, its backtests on the cluster
        env = {k: _here(str(v), tmp_path, port, given)
               for k, v in compose["workbench"]["environment"].items()}  # fmt: skip
        settings = get_settings(db=str(tmp_path / "workbench.duckdb"), lake=env["PTSIM_LAKE"],
                                dask_scheduler=env["PTSIM_DASK_SCHEDULER"],
                                card_key=env["PTSIM_CARD_KEY"])  # fmt: skip
        with Engine(settings) as eng:
            (run,) = eng.list_runs()
            strict = Policy.model_validate(
                {"rules": [{"name": "big", "action": "block", "when": ":amount: > 200"}]}
            )
            result = eng.backtest(strict, run=run.id)
            assert eng._cluster is not None  # the read went to the compose scheduler
            assert result.candidate.declined > 0
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
