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

ADMIN_TOKEN = "test-admin-token"
SEED = 7

# Full test card numbers (Luhn-valid test PANs and the README's example card). Tests that drive
# payments with these scan the database, logs and responses for them afterwards.
TEST_CARDS: list[str] = [
    "4000001234567890",  # the README example
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "6011111111111117",
    "4242424242424242",
]

README_PAYMENT: dict[str, Any] = {
    "card_number": "4000001234567890",
    "amount": 150.75,
    "currency": "GBP",
    "merchant": "Amazon",
    "channel": "ecommerce",
    "device_id": "ios-demo-device",
}


def payment_body(card: str = TEST_CARDS[1], amount: float | str = 42.50, **extra: Any) -> dict:
    """A valid POST /payment body; override any field with keyword arguments."""
    body: dict[str, Any] = {
        "card_number": card,
        "amount": amount,
        "currency": "GBP",
        "merchant": "Test Merchant",
        "channel": "ecommerce",
        "device_id": "test-device",
    }
    body.update(extra)
    return body


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
