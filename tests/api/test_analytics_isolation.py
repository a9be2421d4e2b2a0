"""Heavy analytics run on their own bounded pool: a flood gets 429s, light routes keep answering."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi.testclient import TestClient
from synthetic_rows import insert_rows, random_columns

from api.app import create_app
from engine.service import Engine

WORKERS, QUEUE = 1, 44  # 45 held backtests: more than the 40 threads every route shares
RANGE = {"since": "2020-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z"}


def test_backtest_flood_beyond_the_queue_gets_429_while_light_routes_answer(
    tmp_path: Path,
) -> None:
    engine = Engine.open(
        tmp_path / "flood.duckdb",
        backup_interval_s=0,
        analytics_workers=WORKERS,
        analytics_queue=QUEUE,
    )
    insert_rows(engine.store, random_columns(2000, seed=5), run_id=1)
    release = threading.Event()
    real_backtest = engine.backtest

    def held_backtest(*args, **kwargs):  # type: ignore[no-untyped-def]
        release.wait(timeout=120)  # every worker stays busy until the test lets go
        return real_backtest(*args, **kwargs)

    engine.backtest = held_backtest  # type: ignore[method-assign]
    flood = ThreadPoolExecutor(WORKERS + QUEUE)
    try:
        with TestClient(create_app(engine)) as client:
            heavy = client.app.state.heavy
            held = [
                flood.submit(client.post, "/backtest", json={"candidate": {}})
                for _ in range(WORKERS + QUEUE)
            ]
            for _ in range(600):  # bounded wait until the whole flood is accepted
                if heavy.in_flight == WORKERS + QUEUE:
                    break
                time.sleep(0.05)
            assert heavy.in_flight == WORKERS + QUEUE

            refused = client.post("/backtest", json={"candidate": {}})
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["Retry-After"]) >= 1
            error = refused.json()["error"]
            assert error["type"] == "busy" and "PTSIM_ANALYTICS_QUEUE" in error["message"]
            assert client.get("/stats", params=RANGE).status_code == 429  # a scan: heavy too

            # the light routes do not wait for the flood
            assert client.get("/health").json()["status"] == "ok"
            assert client.get("/stats").json()["total"] == 2000
            assert client.get(f"/transaction/{uuid.uuid4()}").status_code == 404

            release.set()
            assert [f.result(timeout=120).status_code for f in held] == [200] * len(held)
            assert heavy.in_flight == 0
            assert client.get("/stats", params=RANGE).status_code == 200
    finally:
        release.set()
        flood.shutdown()
        engine.close()
