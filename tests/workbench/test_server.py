"""The one-process server's uvicorn settings."""

from __future__ import annotations


def test_servers_bound_their_connections() -> None:
    from api.app import create_app
    from engine.config import get_settings
    from workbench.server import _config

    settings = get_settings(db=":memory:", max_connections=64)
    config = _config(create_app(), settings, 18999)
    assert config.limit_concurrency == 64 and config.host == "127.0.0.1"
