"""Dashboard test fixtures: a shared engine on a temporary database, and an AppTest factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support import UI_ADMIN_TOKEN

from engine.config import PROJECT_ROOT
from engine.service import Engine
from engine.simulation.params import SimulationParams
from workbench.runtime import close_shared_engine, install_shared_engine

APP = PROJECT_ROOT / "streamlit_app.py"
PAGES = "workbench/pages"


@pytest.fixture
def admin_token() -> str | None:
    """PTSIM_ADMIN_TOKEN of the shared engine (``@pytest.mark.parametrize("admin_token",
    [None])`` for a process without one)."""
    return UI_ADMIN_TOKEN


@pytest.fixture
def shared(tmp_path: Path, admin_token: str | None) -> Iterator[Engine]:
    """An engine on a fresh file, installed as the process's shared engine (as ptsim serve
    does); closed afterwards."""
    engine = Engine.open(tmp_path / "ui.duckdb", seed=7, card_key="", admin_token=admin_token or "")
    install_shared_engine(engine)
    try:
        yield engine
    finally:
        close_shared_engine()


@pytest.fixture
def seeded(shared: Engine) -> Engine:
    """The shared engine with a small labelled simulation run."""
    shared.simulate(SimulationParams(rows=6000, seed=11, days=5, fraud_rate=0.05))
    return shared


@pytest.fixture
def app() -> Callable[[str | None], AppTest]:
    """``app(page)``: the app, run once, switched to ``workbench/pages/<page>.py`` and run."""

    def open_page(page: str | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=30)
        at.run()
        if page is not None:
            at.switch_page(f"{PAGES}/{page}.py").run()
        assert not at.exception, at.exception
        return at

    return open_page
