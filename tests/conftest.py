"""Shared fixtures: a real engine on a DuckDB file under ``tmp_path`` and a TestClient over it.

Nothing here is autouse: modules that do not ask for a fixture pay nothing for it.
"""

from __future__ import annotations

import sys
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
