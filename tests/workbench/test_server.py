"""The one-process server's uvicorn settings."""

from __future__ import annotations


def test_servers_bound_their_connections() -> None:
    from api.app import create_app
    from engine.config import get_settings
    from workbench.connections import GuardedProtocol
    from workbench.server import _config

    settings = get_settings(
        db=":memory:",
        max_connections=64,
        idle_timeout_s=2,
        header_timeout_s=3,
        body_timeout_s=4,
        max_header_bytes=4096,
    )
    config = _config(create_app(), settings, 18999)
    assert config.host == "127.0.0.1"
    # uvicorn's own limit counted idle sockets and answered plain text: the guard replaces it.
    assert config.limit_concurrency is None
    protocol = config.http
    assert isinstance(protocol, type) and issubclass(protocol, GuardedProtocol)
    limits = protocol.limits
    assert (limits.max_connections, limits.max_header_bytes) == (64, 4096)
    assert (limits.idle_timeout_s, limits.header_timeout_s, limits.body_timeout_s) == (2, 3, 4)


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
