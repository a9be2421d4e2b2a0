"""Configuration from ``PTSIM_*`` environment variables, validated at start-up."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.errors import SettingsError
from engine.validation import MEMORY_SIZE, describe_first

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = PROJECT_ROOT / "data" / "ptsim.duckdb"


class Settings(BaseSettings):
    """Every knob of a ptsim process. Read with :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="PTSIM_", extra="ignore", frozen=True)

    db: str = Field(str(DEFAULT_DB), description="DuckDB file path, or ':memory:'.")
    lake: str | None = Field(
        None,
        description="A Parquet lake (directory or fsspec URL) whose runs are read beside the "
        "database's (ptsim generate --lake writes them); unset: none.",
    )
    dask_scheduler: str | None = Field(
        None,
        description="A Dask scheduler (tcp://HOST:PORT) whose workers run backtests and "
        "comparisons over the lake's runs (they must see the lake at the same path); unset: "
        "in this process.",
    )
    host: str = Field("127.0.0.1", description="Interface both servers bind to.")
    api_port: int = Field(8000, ge=1, le=65535)
    ui_port: int = Field(8501, ge=1, le=65535)
    seed: int | None = Field(None, ge=0, description="Seed of the live decision RNG.")
    admin_token: SecretStr | None = Field(None, description="Bearer token for admin routes.")
    card_key: SecretStr | None = Field(
        None, description="HMAC key for card fingerprints; generated next to the db if unset."
    )
    max_simulation_rows: int = Field(5_000_000, ge=1)
    max_concurrent_simulations: int = Field(
        2, ge=1, le=64, description="Background simulation runs at once; more answer 429."
    )
    run_pacing: float = Field(
        1.0,
        ge=0.0,
        le=100.0,
        allow_inf_nan=False,
        description="While live payments flow, a server run writes 4,000-row slices and pauses "
        "this many times each slice's write time after it (0: never pace).",
    )
    analytics_workers: int = Field(
        2, ge=1, le=64, description="Threads for backtests and /stats over a time range."
    )
    analytics_queue: int = Field(
        8, ge=0, le=10_000, description="Heavy requests waiting for a thread before 429s."
    )
    max_batch: int = Field(256, ge=1, le=10_000, description="Most payments per group commit.")
    backup_interval_s: float = Field(
        600.0, ge=0, description="Seconds between online backups beside the db (0 = off)."
    )
    memory_limit: str = Field(
        "2GB",
        pattern=MEMORY_SIZE,
        description="DuckDB buffer memory of this process, e.g. 512MB or 2GB.",
    )
    max_connections: int = Field(
        1024, ge=8, le=100_000, description="Open connections per server before 503s."
    )
    idle_timeout_s: float = Field(
        5.0, gt=0, le=3600, description="Seconds a connection may wait with no request."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="Seconds from a request's first byte to its last header."
    )
    body_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Seconds from a request's headers to its last body byte."
    )
    max_header_bytes: int = Field(
        32_768, ge=1024, le=16_777_216, description="Largest request line plus headers."
    )
    admin_failure_limit: float = Field(
        10 / 60,  # 10/min
        gt=0,
        description="Wrong admin tokens per client ('10/min'): a minute's worth at once, then 429.",
    )
    allow_public_without_token: bool = Field(
        False, description="Serve on a non-loopback address with admin routes disabled."
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted request body.")
    max_list_body_bytes: int = Field(
        67_108_864,
        ge=1024,
        le=1_073_741_824,
        description="Largest accepted body of PUT /lists/{name} (a 1,000,000-card list is ~20 MB).",
    )
    rate_limit: float | None = Field(
        None, description="POST /payment per client and second ('100/s', '6000/min'); unset = off."
    )

    @field_validator("db")
    @classmethod
    def _anchor_relative_paths(cls, value: str) -> str:
        if value == ":memory:":
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else PROJECT_ROOT / path)

    @field_validator("lake")
    @classmethod
    def _anchor_relative_lake(cls, value: str | None) -> str | None:
        if value is None or value == "" or "://" in value:
            return value or None
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else PROJECT_ROOT / path)

    @field_validator("admin_token", "card_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("rate_limit", "admin_failure_limit", mode="before")
    @classmethod
    def _parse_rate(cls, value: object) -> object:
        if value is None or value == "":
            return None
        if isinstance(value, int | float):
            return value
        return parse_rate(str(value))

    @property
    def db_path(self) -> Path | None:
        """The database file, or None for an in-memory database."""
        return None if self.db == ":memory:" else Path(self.db)


def parse_rate(text: str) -> float:
    """'100/s', '6000/min' or '50' (per second) → requests per second."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError("must be a positive rate such as '100/s' or '6000/min'")
    value = float(match.group(1))
    return value / 60 if (match.group(2) or "s").startswith("m") else value


def get_settings(**overrides: object) -> Settings:
    """Read and validate the settings; raise :class:`SettingsError` with one clear sentence."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        _, message = describe_first(exc, root="*", name=lambda field: f"PTSIM_{field.upper()}")
        raise SettingsError(f"{message[:-1]}; fix or unset it and start again.") from None
