"""Configuration from ``PTSIM_*`` environment variables, validated at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = PROJECT_ROOT / "data" / "ptsim.duckdb"


class Settings(BaseSettings):
    """Every knob of a ptsim process. Read with :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="PTSIM_", extra="ignore", frozen=True)

    db: str = Field(str(DEFAULT_DB), description="DuckDB file path, or ':memory:'.")
    host: str = Field("127.0.0.1", description="Interface both servers bind to.")
    api_port: int = Field(8000, ge=1, le=65535)
    ui_port: int = Field(8501, ge=1, le=65535)
    seed: int | None = Field(None, ge=0, description="Seed of the live decision RNG.")
    admin_token: SecretStr | None = Field(None, description="Bearer token for admin routes.")
    card_key: SecretStr | None = Field(
        None, description="HMAC key for card fingerprints; generated next to the db if unset."
    )
    max_simulation_rows: int = Field(5_000_000, ge=1)
    max_batch: int = Field(256, ge=1, le=10_000, description="Most payments per group commit.")

    @field_validator("db")
    @classmethod
    def _anchor_relative_paths(cls, value: str) -> str:
        if value == ":memory:":
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else PROJECT_ROOT / path)

    @field_validator("admin_token", "card_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def db_path(self) -> Path | None:
        """The database file, or None for an in-memory database."""
        return None if self.db == ":memory:" else Path(self.db)


def get_settings(**overrides: object) -> Settings:
    """Read and validate the settings; raise :class:`SettingsError` with one clear sentence."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "PTSIM_" + str(first["loc"][0]).upper() if first["loc"] else "PTSIM_*"
        raise SettingsError(
            f"Setting {name} is invalid ({first['msg']}); fix or unset it and start again."
        ) from None
