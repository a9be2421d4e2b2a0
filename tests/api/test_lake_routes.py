"""An attached lake through the API: its runs in GET /simulations, /stats, POST /backtest and
POST /compare, and GET /simulations/{id}/export streaming runs (and live traffic) as Parquet."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from support import ADMIN_TOKEN, SEED, payment_body

from api.app import create_app
from engine.lake.layout import LAKE_RUN_BASE, Lake
from engine.lake.manifest import Manifest
from engine.service import Engine
from engine.transaction_row import NAMES

PARAMS = {"rows": 6_000, "seed": 5, "days": 10, "fraud_rate": 0.03}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lake_client(tmp_path: Path) -> Iterator[tuple[TestClient, Engine, int, int]]:
    """A client over an engine with a lake attached, holding a lake run and the database run of
    the same parameters."""
    eng = Engine.open(
        tmp_path / "db.duckdb", seed=SEED, admin_token=ADMIN_TOKEN, card_key="k",
        lake=str(tmp_path / "lake"),
    )  # fmt: skip
    try:
        lake_run = eng.simulate_into_lake(tmp_path / "lake", PARAMS, partition_rows=2_500).id
        db_run = eng.simulate(PARAMS).id
        with TestClient(create_app(eng)) as client:
            yield client, eng, lake_run, db_run
    finally:
        eng.close()


def test_lake_runs_are_listed_and_answer_stats_backtests_and_comparisons(lake_client) -> None:
    client, _, lake_run, db_run = lake_client
    runs = client.get("/simulations").json()
    assert [r["id"] for r in runs] == [db_run, lake_run]
    assert client.get(f"/simulations/{lake_run}").json()["rows_written"] == PARAMS["rows"]
    lake_stats = client.get(f"/stats?source={lake_run}").json()
    db_stats = client.get(f"/stats?source={db_run}").json()
    assert lake_stats.pop("selection")["source"] == lake_run
    db_stats.pop("selection")
    assert lake_stats == db_stats
    candidate = {"rules": [{"name": "big", "action": "block", "when": ":amount: > 150"}]}
    backtests = [
        client.post("/backtest", json={"candidate": candidate, "filters": {"run": run}}).json()
        for run in (lake_run, db_run)
    ]
    for name in ("candidate", "active", "rules", "overlap", "curve", "scenarios"):
        assert backtests[0][name] == backtests[1][name], name
    comparisons = [
        client.post(
            "/compare", json={"a": 1, "b": candidate, "filters": {"run": run}, "replicates": 100}
        ).json()
        for run in (lake_run, db_run)
    ]
    assert comparisons[0]["differences"] == comparisons[1]["differences"]
    assert comparisons[0]["b"] == comparisons[1]["b"]


def _read(response: Any) -> pa.Table:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(response.content))
    assert int(response.headers["x-row-count"]) == table.num_rows
    return table


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows without id and run id (the two columns that name where a row is stored)."""
    return table.drop_columns(["id", "run_id"]).to_pylist()


def test_export_streams_a_run_equal_to_its_rows(lake_client) -> None:
    client, eng, lake_run, db_run = lake_client
    lake_rows = _read(client.get(f"/simulations/{lake_run}/export"))  # no token needed
    db_rows = _read(client.get(f"/simulations/{db_run}/export"))
    assert lake_rows.num_rows == db_rows.num_rows == PARAMS["rows"]
    assert _rows(lake_rows) == _rows(db_rows)
    assert set(lake_rows.column("run_id").to_pylist()) == {lake_run}
    ids = lake_rows.column("id").to_pylist()
    assert ids == sorted(ids)  # event order
    # equal to the stored rows, read back with pandas: exact decimals and minor units
    frame = db_rows.to_pandas()
    with eng.store.read() as tx:
        stored = tx.arrow(
            f"SELECT {', '.join(NAMES)} FROM transactions WHERE run_id = ? ORDER BY id", [db_run]
        ).to_pandas()
    assert frame["amount"].tolist() == stored["amount"].tolist()
    assert all(isinstance(v, Decimal) for v in frame["amount"].head())
    assert (frame["amount_minor"] == stored["amount"].map(lambda d: int(d * 100))).all()
    assert frame["amount_minor"].dtype == "int64"
    assert [_uuid(v) for v in frame["card_hash"]] == [_uuid(v) for v in stored["card_hash"]]
    assert frame["draw"].tolist() == stored["draw"].tolist()
    assert not {"card_number", "pan"} & set(frame.columns)


def test_a_lake_run_is_streamed_as_the_file_ptsim_export_writes(lake_client, tmp_path) -> None:
    """A lake run's export is stitched from its files and streamed as it is read, with its
    length known up front; the same bytes as Engine.export_run (and so `ptsim export`)."""
    client, eng, lake_run, _ = lake_client
    response = client.get(f"/simulations/{lake_run}/export")
    assert int(response.headers["content-length"]) == len(response.content)
    assert (
        response.headers["content-disposition"] == f'attachment; filename="run-{lake_run}.parquet"'
    )
    eng.export_run(lake_run, tmp_path / "engine.parquet")
    assert response.content == (tmp_path / "engine.parquet").read_bytes()
    partitions = len(Lake(tmp_path / "lake").manifest(lake_run).partitions)
    assert pq.read_metadata(io.BytesIO(response.content)).num_row_groups >= partitions == 3


def test_a_lake_run_whose_file_is_gone_is_a_503_envelope(lake_client, tmp_path) -> None:
    """A partition file missing (a damaged lake): one sentence in the envelope, no body."""
    client, _, lake_run, _ = lake_client
    assert client.get(f"/simulations/{lake_run}").status_code == 200  # the server has seen it
    part = tmp_path / "lake" / Lake(tmp_path / "lake").manifest(lake_run).partitions[-1].path
    part.rename(part.with_name("moved-away"))
    response = client.get(f"/simulations/{lake_run}/export")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "store_unavailable" and "could not be read" in error["message"]
    assert "Traceback" not in response.text


def test_exporting_live_traffic_needs_the_admin_token(lake_client) -> None:
    client, *_ = lake_client
    assert client.post("/payment", json=payment_body()).status_code == 201
    refused = client.get("/simulations/live/export")
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "unauthorized"
    wrong = client.get("/simulations/live/export", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    live = _read(
        client.get("/simulations/live/export", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    )
    assert live.num_rows == 1 and live.column("run_id").to_pylist() == [None]
    assert "4111111111111111" not in str(live.to_pylist())


@pytest.mark.parametrize("run_id", ["999", "abc", "-1", "99999999999", f"{LAKE_RUN_BASE + 50}"])
def test_export_of_no_run_is_a_404_envelope(lake_client, run_id: str) -> None:
    client, *_ = lake_client
    response = client.get(f"/simulations/{run_id}/export")
    assert response.status_code == 404
    assert set(response.json()["error"]) >= {"type", "message", "request_id"}


def test_a_lake_run_still_being_written_is_refused(lake_client, tmp_path: Path) -> None:
    client, *_ = lake_client
    draft = Manifest(
        run_id=0, status="running", created_at="2026-01-01T00:00:00", seed=1, params={},
        code_version="x", generator_version="2", policy_version=1, policy={},
        rows_planned=10, partition_rows=10,
    )  # fmt: skip
    running = Lake(tmp_path / "lake").reserve(draft).run_id
    assert client.get(f"/simulations/{running}").json()["status"] == "running"
    for response in (
        client.get(f"/simulations/{running}/export"),
        client.get(f"/stats?source={running}"),
    ):
        assert response.status_code == 400
        assert "still being written" in response.json()["error"]["message"]


def test_ptsim_export_reads_a_lake_while_the_database_is_held(lake_client, tmp_path) -> None:
    """The engine of the fixture holds the database (as a server would); the CLI exports the
    lake run without it."""
    _, _, lake_run, _ = lake_client
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "export", "--run", str(lake_run),
         "--lake", str(tmp_path / "lake"), "--to", str(tmp_path / "out")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PTSIM_DB": str(tmp_path / "db.duckdb")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{PARAMS['rows']:,} rows written" in done.stdout
    table = pq.read_table(tmp_path / "out" / f"run-{lake_run}.parquet")
    assert table.num_rows == PARAMS["rows"]
    held = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "export", "--run", "1", "--to", str(tmp_path)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PTSIM_DB": str(tmp_path / "db.duckdb")},
    )  # fmt: skip
    assert held.returncode == 2 and "in use by" in held.stderr
    assert "Traceback" not in held.stderr


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(value) if isinstance(value, str) else uuid.UUID(bytes=bytes(value))
