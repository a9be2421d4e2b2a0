"""Simulation runs: start a bulk synthetic run in the server, follow its progress."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.background import BackgroundTask

from api.deps import EngineDep, bearer, require_admin
from api.errors import ErrorResponse
from api.heavy import HeavyDep
from engine.errors import InvalidRequestError, NotFoundError
from engine.idempotency import MAX_KEY_LENGTH
from engine.pan import PAN_RULE, contains_pan
from engine.simulation.params import (
    DEFAULT_START,
    KNOB_NAMES,
    SCENARIOS,
    Difficulty,
    RunRecord,
    SimulationParams,
)
from engine.validation import PRINTABLE_ASCII, describe_first, quoted_field

router = APIRouter(tags=["simulations"])
PARQUET = "application/vnd.apache.parquet"
MAX_RUN_ID = 2**31 - 1  # run ids are INTEGER columns
_DEFAULT = SimulationParams.model_fields


def _optional(name: str) -> Any:
    """An optional field with SimulationParams' bounds and description (checked there too)."""
    field = _DEFAULT[name]
    bounds = {k: getattr(m, k) for m in field.metadata for k in ("ge", "le") if hasattr(m, k)}
    return Field(None, description=field.description, **bounds)


_NUMBERS = ("rows", "seed", "days", "fraud_rate", "scenario_mix", *KNOB_NAMES, "cards",
            "merchants", "devices")  # fmt: skip


class SimulationRequest(BaseModel):
    """A run to start; the server caps ``rows`` at PTSIM_MAX_SIMULATION_ROWS."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"rows": 100000, "seed": 42, "days": 7, "difficulty": "hard"}]
        },
    )

    rows: int = Field(ge=1, le=2_000_000_000, description="Payments to generate.")
    # 2**53 - 1: every JSON parser reads it exactly (a 2**63 bound becomes a float in generators
    # and clients, so values just above it look valid).
    # defaults from SimulationParams: the API, the CLI and the dashboard agree
    seed: int = Field(
        _DEFAULT["seed"].default, ge=0, le=2**53 - 1, description="Seed of every random process."
    )
    days: int = Field(_DEFAULT["days"].default, ge=1, le=3650)
    fraud_rate: float = Field(_DEFAULT["fraud_rate"].default, ge=0.0, le=0.5, allow_inf_nan=False)
    scenario_mix: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = Field(
        None,
        description="Relative weights by scenario: " + ", ".join(SCENARIOS) + ".",
        json_schema_extra={"propertyNames": {"enum": list(SCENARIOS)}},
    )
    difficulty: Difficulty = Field(
        _DEFAULT["difficulty"].default, description=_DEFAULT["difficulty"].description
    )
    # the difficulty knobs and the population sizes: absent = the preset's / sized from rows
    overlap: float | None = _optional("overlap")
    missed_disputes: float | None = _optional("missed_disputes")
    false_disputes: float | None = _optional("false_disputes")
    drift: float | None = _optional("drift")
    friendly_fraud_rate: float | None = _optional("friendly_fraud_rate")
    adaptation: float | None = _optional("adaptation")
    cards: int | None = _optional("cards")
    merchants: int | None = _optional("merchants")
    devices: int | None = _optional("devices")

    @field_validator("difficulty", mode="before")
    @classmethod
    def _text_only(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("must be one of 'easy', 'realistic' or 'hard'")
        return value

    @field_validator(*_NUMBERS, mode="before")
    @classmethod
    def _json_numbers_only(cls, value: object) -> object:
        # Every field is a number (or an object of numbers); lax mode would take true as 1 and
        # "5" as 5, which the schema refuses.
        inner = list(value.values()) if isinstance(value, dict) else [value]
        if any(isinstance(item, bool | str) for item in inner):
            raise ValueError("must be a JSON number")
        return value


class SimulationStarted(BaseModel):
    """Where to follow a run."""

    run_id: int
    status: str
    status_url: str


_ERRORS = {
    400: {"model": ErrorResponse, "description": "Invalid parameters or too many rows."},
    409: {"model": ErrorResponse, "description": "Idempotency-Key reused with other parameters."},
    429: {
        "model": ErrorResponse,
        "description": "PTSIM_MAX_CONCURRENT_SIMULATIONS runs are running; see Retry-After.",
    },
}


@router.post("/simulations", status_code=202, response_model=SimulationStarted, responses=_ERRORS)
async def start_simulation(
    body: SimulationRequest,
    engine: EngineDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(min_length=1, max_length=MAX_KEY_LENGTH, pattern=PRINTABLE_ASCII),
    ] = None,
) -> SimulationStarted:
    """Start a run in the server process (which owns the database); returns its id at once."""
    if idempotency_key is not None and contains_pan(idempotency_key):  # keys are stored in full
        raise InvalidRequestError(
            "Idempotency-Key", f"{quoted_field('Idempotency-Key')} {PAN_RULE}."
        )
    cap = engine.settings.max_simulation_rows
    if body.rows > cap:
        raise InvalidRequestError(
            "rows",
            f"{quoted_field('rows')} must be at most {cap} per request "
            "(PTSIM_MAX_SIMULATION_ROWS).",
        )
    fields = body.model_dump(exclude_none=True)
    try:
        params = SimulationParams(start=DEFAULT_START, **fields)
    except ValidationError as exc:  # name the field, never a 500
        raise InvalidRequestError(*describe_first(exc)) from None
    if idempotency_key is None:
        run_id, replayed = await run_in_threadpool(engine.start_simulation, params), False
    else:
        run_id, replayed = await run_in_threadpool(
            engine.start_simulation_idempotent, params, idempotency_key
        )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    run = await run_in_threadpool(engine.get_run, run_id)
    return SimulationStarted(run_id=run_id, status=run.status, status_url=f"/simulations/{run_id}")


def _run_id(text: str) -> int:
    """A run id from the path: database runs and lake runs (above 1,000,000,000) are 32-bit
    integers; anything else names no run (404)."""
    if not text.isdigit() or len(text) > 10 or int(text) > MAX_RUN_ID:
        raise NotFoundError(f"Simulation run {text[:32]!r} not found.")
    return int(text)


@router.get(
    "/simulations/{run_id}",
    response_model=RunRecord,
    responses={404: {"model": ErrorResponse, "description": "Unknown run."}},
)
async def get_simulation(run_id: str, engine: EngineDep) -> RunRecord:
    """A run's status, progress, parameters and summary (404 for unknown or malformed ids)."""
    return await run_in_threadpool(engine.get_run, _run_id(run_id))


@router.get(
    "/simulations/{run_id}/export",
    response_class=FileResponse,
    responses={
        200: {
            "content": {PARQUET: {}},
            "description": "The run's rows as one Parquet file; X-Row-Count says how many.",
        },
        400: {"model": ErrorResponse, "description": "A lake run still being written."},
        401: {"model": ErrorResponse, "description": "live: missing or wrong admin token."},
        404: {"model": ErrorResponse, "description": "Unknown run."},
        429: {"model": ErrorResponse, "description": "Heavy requests are queued; see Retry-After."},
        503: {"model": ErrorResponse, "description": "A file of the lake could not be read."},
    },
)
async def export_simulation(
    run_id: str,
    request: Request,
    engine: EngineDep,
    heavy: HeavyDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Response:
    """A run (database or lake) as Parquet, while the server runs; ``live`` exports live
    traffic and needs the admin token. Every stored column, the amount also in minor units
    (``amount_minor``), cards only as fingerprint, BIN and last four."""
    if run_id == "live":
        require_admin(request, engine, credentials)
        run: int | str = "live"
    else:
        run = _run_id(run_id)
        await run_in_threadpool(engine.get_run, run)  # 404 for an unknown run
    name = f"run-{run_id}.parquet"
    stitched = await heavy.run(engine.stitched_export, run)
    if stitched is not None:  # a lake run: its files' bytes, streamed as they are read
        return StreamingResponse(
            stitched.blocks(),
            media_type=PARQUET,
            headers={
                "Content-Length": str(stitched.size),
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Row-Count": str(stitched.rows),
            },
        )
    folder = Path(tempfile.mkdtemp(prefix="ptsim-export-"))
    target = folder / name
    try:
        rows = await heavy.run(engine.export_run, run, target)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        target,
        media_type=PARQUET,
        filename=name,
        headers={"X-Row-Count": str(rows)},
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


@router.get("/simulations", response_model=list[RunRecord])
async def list_simulations(engine: EngineDep) -> list[RunRecord]:
    """Every run, newest first."""
    return await run_in_threadpool(engine.list_runs)
