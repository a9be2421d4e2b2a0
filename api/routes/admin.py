"""Admin operations; denied unless PTSIM_ADMIN_TOKEN is set and sent as a bearer token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import AdminDep, EngineDep
from api.errors import ErrorResponse
from engine.models import Stats

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[AdminDep],
    responses={429: {"model": ErrorResponse, "description": "Too many wrong admin tokens."}},
)


@router.delete(
    "/reset",
    response_model=Stats,
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong token."},
        403: {"model": ErrorResponse, "description": "Admin routes disabled."},
    },
)
async def reset(engine: EngineDep) -> Stats:
    """Delete every transaction, audit entry, dispute and run in one transaction; return zeroed
    stats."""
    return await run_in_threadpool(engine.reset)


@router.post(
    "/backup",
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong token."},
        403: {"model": ErrorResponse, "description": "Admin routes disabled."},
        503: {
            "model": ErrorResponse,
            "description": "In-memory database, or backup failed or refused (damaged file).",
        },
    },
)
async def backup(engine: EngineDep) -> dict[str, str]:
    """Write a verified online backup beside the database file (the one to use while serving)."""
    path = await run_in_threadpool(engine.store.backup)
    return {"backup": f"{path.parent.name}/{path.name}"}  # relative to the db's folder: no paths
