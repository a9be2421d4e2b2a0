"""Settings: PTSIM_* variables, validated with one clear sentence."""

from __future__ import annotations

import pytest

from engine.config import PROJECT_ROOT, get_settings
from engine.errors import SettingsError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("PTSIM_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults(clean_env) -> None:
    s = get_settings()
    assert s.host == "127.0.0.1"
    assert (s.api_port, s.ui_port) == (8000, 8501)
    assert s.seed is None and s.admin_token is None
    assert s.db_path == PROJECT_ROOT / "data" / "ptsim.duckdb"


def test_environment_is_read(clean_env) -> None:
    clean_env.setenv("PTSIM_API_PORT", "9001")
    clean_env.setenv("PTSIM_SEED", "42")
    clean_env.setenv("PTSIM_DB", "elsewhere/x.duckdb")
    clean_env.setenv("PTSIM_ADMIN_TOKEN", "")
    s = get_settings()
    assert s.api_port == 9001 and s.seed == 42
    assert s.db_path == PROJECT_ROOT / "elsewhere" / "x.duckdb"
    assert s.admin_token is None
    assert get_settings(db=":memory:").db_path is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PTSIM_API_PORT", "not-a-port"),
        ("PTSIM_API_PORT", "70000"),
        ("PTSIM_UI_PORT", "0"),
        ("PTSIM_SEED", "-1"),
        ("PTSIM_MAX_BATCH", "0"),
    ],
)
def test_bad_value_raises_settings_error_naming_the_variable(clean_env, name, value) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        get_settings()
    message = str(info.value)
    assert name in message
    assert message.count(".") <= 2 and "\n" not in message
