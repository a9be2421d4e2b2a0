"""Shared fixtures: a real engine on a DuckDB file under ``tmp_path`` and a TestClient over it.

Nothing here is autouse: modules that do not ask for a fixture pay nothing for it.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# tests/engine and tests/api mirror the package tree, and pytest puts tests/ on sys.path, where
# those folders would be found as *namespace* packages named ``engine`` and ``api`` (the editable
# install's finder runs after the path finder). A regular package anywhere on sys.path beats a
# namespace package, so putting the project root on the path makes ``import engine`` the product.
PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
if PROJECT_ROOT not in sys.path:
    sys.path.insert(0, PROJECT_ROOT)

from support import ADMIN_TOKEN, README_PAYMENT, SEED, TEST_CARDS, payment_body  # noqa: E402, F401


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the ``engine`` fixture keeps its database file."""
    return tmp_path / "t.duckdb"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Any]:
    """A fresh engine on a real DuckDB file, seeded, with an admin token; closed afterwards."""
    from engine.service import Engine

    eng = Engine.open(db_path, seed=SEED, admin_token=ADMIN_TOKEN, card_key="")
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def client(engine: Any) -> Iterator[Any]:
    """A FastAPI TestClient over the ``engine`` fixture (the app shares, not owns, the engine)."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(engine)) as test_client:
        yield test_client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """The bearer header the ``engine`` fixture's admin token accepts."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test a node id of its own, and refuse a collection where two share one.

    pytest 9 builds a test's node id from its function name and callspec, and schemathesis's
    per-operation items have no callspec: all of tests/reliability/test_fuzz.py's operations came
    out as one id. pytest-xdist (``make test`` runs two workers) schedules by node id, so it ran
    one operation and silently dropped the others. Their operation label becomes the id's
    parameter, as schemathesis meant; any duplicate left fails the collection instead."""
    for item in items:
        label = getattr(item, "operation_label", None)  # set on schemathesis's items only
        if label and item.id.params is None:
            item._id = item.id.with_params(label)
    counts = Counter(item.nodeid for item in items)
    duplicates = sorted(nodeid for nodeid, n in counts.items() if n > 1)
    if duplicates:
        raise pytest.UsageError(f"tests share a node id (pytest-xdist would run one): {duplicates}")
