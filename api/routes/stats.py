"""Aggregate statistics of a selection: every row, live traffic or one simulation run."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import EngineDep
from api.errors import ErrorResponse
from api.heavy import HeavyDep
from engine.filters import utc_in_range
from engine.models import Stats

router = APIRouter(tags=["stats"])
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")


class StatsQuery(BaseModel):
    """The dashboard's selection as query parameters; any other parameter answers 400."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        "all",
        pattern=r"^(all|live|[1-9][0-9]{0,9})$",  # lake runs: 10 digits
        description="'all' (default), 'live' (payments posted to this server) or a run id.",
    )
    since: datetime | None = Field(
        None, description="RFC 3339; rows created at or after it (no offset = UTC)."
    )
    until: datetime | None = Field(
        None, description="RFC 3339; rows created before it (no offset = UTC)."
    )

    @field_validator("since", "until", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        # pydantic would also read "0.5" or "1700000000" as seconds since 1970.
        if isinstance(value, str) and not _RFC3339.match(value):
            raise ValueError("must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z")
        return value

    @field_validator("since", "until")
    @classmethod
    def _utc_in_range(cls, value: datetime | None) -> datetime | None:
        return utc_in_range(value)


@router.get(
    "/stats",
    response_model=Stats,
    responses={
        400: {"model": ErrorResponse, "description": "Invalid or unknown parameter."},
        429: {"model": ErrorResponse, "description": "Time range with the analytics queue full."},
    },
)
async def get_stats(
    query: Annotated[StatsQuery, Query()], engine: EngineDep, heavy: HeavyDep
) -> Stats:
    """Totals, approval rate, average amount and latency percentiles (measured and modelled
    apart) of the selected rows, from one snapshot."""
    source = int(query.source) if query.source.isdigit() else query.source
    if query.since is None and query.until is None:  # running totals: a few hundred rows
        return await run_in_threadpool(engine.stats, source)
    # a time range scans rows: heavy work, on the analytics pool (429 when it is full)
    return await heavy.run(engine.stats, source, query.since, query.until)
