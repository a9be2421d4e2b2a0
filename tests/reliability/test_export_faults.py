"""A lake run's export streamed by the real server (``ptsim api``) when its storage fails midway:
the client never holds a file that parses, and the next request gets the JSON envelope."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.lake.layout import Lake
from engine.service import Engine
from tests.reliability.live_server import live_server_fixture  # noqa: F401 (the fixture)

# three partition files of ~10 MB: more than the sockets between server and client buffer, so
# the server is still reading the first file when the last one is damaged
PARAMS = {"rows": 300_000, "seed": 3, "days": 10, "fraud_rate": 0.02}


@pytest.fixture
def lake_run(tmp_path: Path) -> tuple[Path, Path, int]:
    with Engine.open(tmp_path / "db.duckdb", card_key="k") as eng:
        run = eng.simulate_into_lake(tmp_path / "lake", PARAMS, partition_rows=100_000).id
    return tmp_path / "db.duckdb", tmp_path / "lake", run


def test_a_stream_cut_short_by_a_damaged_file_never_parses(live_server: Any, lake_run) -> None:
    db, lake, run = lake_run
    server = live_server(db, PTSIM_LAKE=str(lake))
    last = lake / Lake(lake).manifest(run).partitions[-1].path
    received = bytearray()
    with httpx.stream("GET", f"{server.url}/simulations/{run}/export", timeout=60) as response:
        assert response.status_code == 200
        length = int(response.headers["content-length"])
        assert length > 3 * last.stat().st_size // 2
        chunks = response.iter_bytes()
        while len(received) < 1 << 20:
            received += next(chunks)
        os.truncate(last, last.stat().st_size // 2)  # the disk loses half of the last file
        with pytest.raises(httpx.HTTPError):  # the server closes the connection early
            for chunk in chunks:
                received += chunk
    assert len(received) < length
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(pa.BufferReader(bytes(received)))
    again = httpx.get(f"{server.url}/simulations/{run}/export", timeout=60)
    assert again.status_code == 503
    assert again.json()["error"]["type"] == "store_unavailable"
    assert "Traceback" not in again.text
