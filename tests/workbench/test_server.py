"""The one-process server's uvicorn settings."""

from __future__ import annotations


def test_servers_bound_their_connections() -> None:
    from api.app import create_app
    from engine.config import get_settings
    from workbench.server import _config

    settings = get_settings(db=":memory:", max_connections=64)
    config = _config(create_app(), settings, 18999)
    assert config.limit_concurrency == 64 and config.host == "127.0.0.1"


def test_served_sessions_watch_no_source_files() -> None:
    """Streamlit's rerun-on-save file watching walks the project and adds a watch per imported
    module for every new browser session; the served dashboard turns it off (config.toml)."""
    import subprocess
    import sys

    from engine.config import PROJECT_ROOT

    read = "import streamlit.config as c; print(c.get_option('server.fileWatcherType'))"
    answer = subprocess.run(
        [sys.executable, "-c", read], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "none", answer.stderr
