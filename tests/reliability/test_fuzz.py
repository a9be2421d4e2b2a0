"""Schemathesis against the in-process app's OpenAPI schema: every operation, all checks.

A bounded number of generated cases per operation (``PTSIM_FUZZ_EXAMPLES``, default 25) run with
the admin token on a real DuckDB file; no 500s, every answer documented and schema-conformant.
The longer live-server run is ``make fuzz``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from api.app import create_app
from tests.conftest import ADMIN_TOKEN, SEED

MAX_ROWS = 2_000  # the server's row cap (PTSIM_MAX_SIMULATION_ROWS), small so runs are quick
MAX_EXAMPLES = int(os.environ.get("PTSIM_FUZZ_EXAMPLES", "25"))
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CASES: dict[str, int] = {}


def _open_engine() -> tuple[Any, Path]:
    from engine.service import Engine

    folder = Path(tempfile.mkdtemp(prefix="ptsim-fuzz-"))
    eng = Engine.open(
        folder / "fuzz.duckdb",
        seed=SEED,
        admin_token=ADMIN_TOKEN,
        card_key="",
        backup_interval_s=0,
        max_simulation_rows=MAX_ROWS,
    )
    return eng, folder


# Schemathesis loads the schema when the module is imported, so the engine is opened here and
# closed (its folder removed) by the module fixture below.
ENGINE, FOLDER = _open_engine()
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(ENGINE))


@pytest.fixture(scope="module", autouse=True)
def _close_engine() -> Iterator[None]:
    try:
        yield
    finally:
        ENGINE.close()
        shutil.rmtree(FOLDER, ignore_errors=True)


# POST /backtest is left out until its ``candidate`` object is typed in the schema: it is
# documented as a free-form object, so schema-valid bodies with unknown knobs get a 400 (known gap,
# see docs/reliability.md).
@schema.exclude(path="/backtest").parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any) -> None:
    """No 5xx, documented status codes, conformant bodies and headers, for every case."""
    key = f"{case.method} {case.path}"
    CASES[key] = CASES.get(key, 0) + 1
    if _breaks_a_cross_field_rule(case):
        # JSON Schema cannot say "since < until": such schema-valid bodies get the documented 400.
        response = case.call(headers=AUTH)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "validation_error"
        return
    response = case.call_and_validate(headers=AUTH)
    assert response.status_code < 500


def _breaks_a_cross_field_rule(case: Any) -> bool:
    """A positive case the schema allows but a documented rule refuses with 400: an empty time
    range (since >= until), or more rows than the server's configured cap."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return False
    body = case.body if isinstance(case.body, dict) else {}
    if case.path == "/simulations" and isinstance(body.get("rows"), int | float):
        return body["rows"] > MAX_ROWS
    filters = body.get("filters")
    if not isinstance(filters, dict) or not filters.get("since") or not filters.get("until"):
        return False
    try:
        since = datetime.fromisoformat(filters["since"])
        until = datetime.fromisoformat(filters["until"])
        return _utc(since) >= _utc(until)
    except (TypeError, ValueError):
        return False


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
