"""POST /simulations and GET /simulations/{id}: start, follow, cap, idempotency, errors."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from engine.errors import NotFoundError
from engine.service import Engine
from engine.simulation import facade

RUN = {"rows": 5000, "seed": 11, "days": 2, "fraud_rate": 0.05}


@pytest.fixture
def sim_client(tmp_path: Path):
    engine = Engine.open(
        tmp_path / "sim.duckdb", seed=3, backup_interval_s=0, max_simulation_rows=10_000
    )
    with TestClient(create_app(engine)) as client:
        yield client, engine
    engine.close()


def _wait_finished(client: TestClient, run_id: int) -> dict:
    for _ in range(600):  # bounded poll, not a timing assertion
        record = client.get(f"/simulations/{run_id}").json()
        if record["status"] != "running":
            return record
        time.sleep(0.05)
    raise AssertionError("run did not finish")


def test_started_run_completes_and_feeds_stats(sim_client) -> None:
    client, _ = sim_client
    started = client.post("/simulations", json=RUN)
    assert started.status_code == 202
    body = started.json()
    assert body["status_url"] == f"/simulations/{body['run_id']}"
    record = _wait_finished(client, body["run_id"])
    assert record["status"] == "completed"
    assert record["rows_written"] == record["rows_planned"] == RUN["rows"]
    assert record["progress"] == 1.0
    assert record["seed"] == RUN["seed"]
    assert record["summary"]["fraud_rows"] > 0
    assert client.get("/stats").json()["total"] == RUN["rows"]
    assert [r["id"] for r in client.get("/simulations").json()] == [body["run_id"]]


def test_row_cap_is_a_400_naming_rows_and_starts_nothing(sim_client) -> None:
    client, engine = sim_client
    response = client.post("/simulations", json={**RUN, "rows": 10_001})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "rows"
    assert engine.list_runs() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rows": 0}, "rows"),
        ({"rows": 10, "fraud_rate": 0.9}, "fraud_rate"),
        ({"rows": 10, "scenario_mix": {"nope": 1}}, "scenario_mix"),
        ({"rows": 10, "scenario_mix": {"stolen_card": 0}}, "scenario_mix"),
        ({"rows": 10, "chunk_rows": 5}, "chunk_rows"),
        ({"seed": 1}, "rows"),
        ({"rows": 10, "difficulty": "medium"}, "difficulty"),
        ({"rows": 10, "difficulty": 1}, "difficulty"),
        ({"rows": 10, "difficulty": None}, "difficulty"),
        ({"rows": 10, "overlap": 1.5}, "overlap"),
        ({"rows": 10, "missed_disputes": "0.1"}, "missed_disputes"),
        ({"rows": 10, "false_disputes": 0.5}, "false_disputes"),
        ({"rows": 10, "drift": -0.1}, "drift"),
        ({"rows": 10, "friendly_fraud_rate": 0.2}, "friendly_fraud_rate"),
        ({"rows": 10, "cards": 0}, "cards"),
        ({"rows": 10, "merchants": 1.5}, "merchants"),
        ({"rows": 10, "devices": True}, "devices"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(sim_client, body: dict, field: str) -> None:
    client, engine = sim_client
    response = client.post("/simulations", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert engine.list_runs() == []


def test_difficulty_and_population_fields_reach_the_run(sim_client) -> None:
    client, engine = sim_client
    body = {**RUN, "difficulty": "hard", "drift": 0.0, "cards": 120, "merchants": 45,
            "devices": 90}  # fmt: skip
    started = client.post("/simulations", json=body)
    assert started.status_code == 202, started.text
    record = _wait_finished(client, started.json()["run_id"])
    assert record["status"] == "completed"
    params = engine.get_run(record["id"]).params
    assert {k: params[k] for k in body} == body
    assert params["overlap"] is None  # the preset's, resolved when the run is generated
    (cards, merchants, devices) = engine.store.query(
        "SELECT count(DISTINCT card_hash), count(DISTINCT merchant), "
        "count(DISTINCT device_id) FILTER (WHERE fraud_scenario IS NULL) FROM transactions"
    )[0]
    assert cards <= 120 and merchants <= 45 and devices <= 90
    assert cards > 100 and merchants > 40  # 5,000 payments reach nearly all of them


def test_idempotency_key_starts_one_run(sim_client) -> None:
    client, engine = sim_client
    headers = {"Idempotency-Key": "sim-key-1"}
    first = client.post("/simulations", json=RUN, headers=headers)
    again = client.post("/simulations", json=RUN, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["run_id"] == again.json()["run_id"]
    conflict = client.post("/simulations", json={**RUN, "seed": 12}, headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["type"] == "idempotency_error"
    _wait_finished(client, first.json()["run_id"])
    assert len(engine.list_runs()) == 1


@pytest.mark.parametrize("run_id", ["999", "abc", "1" * 40])
def test_unknown_or_malformed_run_is_404(sim_client, run_id: str) -> None:
    client, _ = sim_client
    response = client.get(f"/simulations/{run_id}")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_reset_cancels_a_running_simulation_first(sim_client) -> None:
    _, engine = sim_client
    run_id = engine.start_simulation({**RUN, "rows": 10_000, "chunk_rows": 1_000})
    engine.reset()
    time.sleep(0.3)  # a run that kept going would have appended another chunk by now
    assert engine.list_runs() == []
    assert engine.stats().total == 0
    assert engine.store.query("SELECT count(*) FROM transactions") == [(0,)]
    with pytest.raises(NotFoundError):
        engine.get_run(run_id)


def test_runs_beyond_the_concurrency_bound_answer_429_and_start_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PTSIM_MAX_CONCURRENT_SIMULATIONS=2: the third start is refused with Retry-After, stores
    no run and no key, and a slot freed by a finished run is usable again."""
    release = threading.Event()

    def held_run(*args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        release.wait(timeout=60)  # the run stays 'running' until the test lets it go

    monkeypatch.setattr(facade, "execute_run", held_run)
    engine = Engine.open(tmp_path / "bound.duckdb", backup_interval_s=0)
    assert engine.settings.max_concurrent_simulations == 2
    try:
        with TestClient(create_app(engine)) as client:
            assert [client.post("/simulations", json=RUN).status_code for _ in range(2)] == [
                202
            ] * 2
            refused = client.post("/simulations", json=RUN, headers={"Idempotency-Key": "k-429"})
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            error = refused.json()["error"]
            assert (
                error["type"] == "busy" and "PTSIM_MAX_CONCURRENT_SIMULATIONS" in error["message"]
            )
            assert error["request_id"]
            assert len(client.get("/simulations").json()) == 2
            assert engine.store.query("SELECT count(*) FROM simulation_keys") == [(0,)]
            release.set()
            engine.simulations.stop_all()
            again = client.post("/simulations", json=RUN, headers={"Idempotency-Key": "k-429"})
            assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers
    finally:
        release.set()
        engine.close()
