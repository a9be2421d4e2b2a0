"""The process-wide engine shared by the dashboard and the API in one process.

DuckDB lets one process own a database file, so the dashboard (every browser session) and the
REST API must share one :class:`Engine`. ``ptsim serve`` creates it before either server starts;
a bare ``streamlit run`` or an AppTest creates it on first use.
"""

from __future__ import annotations

import atexit
import threading

from engine.service import Engine

_lock = threading.Lock()
_engine: Engine | None = None


def shared_engine() -> Engine:
    """The one engine of this process (created from the PTSIM_* settings on first call)."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = Engine()
            atexit.register(close_shared_engine)
        return _engine


def install_shared_engine(engine: Engine) -> None:
    """Make ``engine`` the process's shared engine (the server and tests do this)."""
    global _engine
    with _lock:
        _engine = engine


def close_shared_engine() -> None:
    """Close the shared engine if one is open (checkpoints the database)."""
    global _engine
    with _lock:
        if _engine is not None:
            _engine.close()
            _engine = None
