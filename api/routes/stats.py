"""Aggregate statistics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import EngineDep
from engine.models import Stats

router = APIRouter(tags=["stats"])


@router.get("/stats", response_model=Stats)
async def get_stats(engine: EngineDep) -> Stats:
    """Totals, approval rate, average amount and latency percentiles, from one snapshot."""
    return await run_in_threadpool(engine.stats)
