"""Schemathesis against the in-process app's OpenAPI schema: every operation, all checks.

A bounded number of generated cases per operation (``PTSIM_FUZZ_EXAMPLES``, default 25) run with
the admin token on a real DuckDB file; no 500s, every answer documented and schema-conformant.
The longer live-server run is ``make fuzz``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from support import ADMIN_TOKEN, SEED

from api.app import create_app
from tests.reliability.fuzz_hooks import breaks_a_documented_rule

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
        admin_failure_limit=1e9,  # the fuzzer sends wrong admin tokens by design, thousands
    )
    return eng, folder


# Schemathesis loads the schema when the module is imported, so the engine is opened here and
# closed (its folder removed) by the module fixture below, or at exit by a pytest-xdist worker
# that collected this module but ran none of it.
ENGINE, FOLDER = _open_engine()
# POST /compare's body nests two policy drafts, a cost model and filters: its coverage phase
# alone generates a thousand boundary cases, most of them negative (each a 400 the schema
# already promises). In this bounded run it keeps the positive boundaries; `make fuzz` keeps all.
CONFIG = schemathesis.config.SchemathesisConfig.from_str(
    """
[[operations]]
include-name = "POST /compare"
phases.coverage.generation.mode = "positive"
"""
)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(ENGINE), config=CONFIG)


def _close_once() -> None:
    if FOLDER.exists():
        ENGINE.close()
        shutil.rmtree(FOLDER, ignore_errors=True)


atexit.register(_close_once)


@pytest.fixture(scope="module", autouse=True)
def _close_engine() -> Iterator[None]:
    try:
        yield
    finally:
        _close_once()
        if CASES:
            print(f"\nfuzz: {sum(CASES.values())} cases over {len(CASES)} operations: {CASES}")


@schema.parametrize()
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
    runs = {run.id for run in ENGINE.list_runs()}
    policies = {policy.version for policy in ENGINE.policy_history()}
    if breaks_a_documented_rule(case, MAX_ROWS, runs, policies):
        # Rules JSON Schema cannot state (since < until, known runs, the row cap): the 400.
        response = case.call(headers=AUTH)
        negative = case.meta is not None and not case.meta.generation.mode.is_positive
        if negative and response.status_code == 401:
            return  # a negative case may drop the credentials: refused before the body is read
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "validation_error"
        return
    response = case.call_and_validate(headers=AUTH)
    assert response.status_code < 500
