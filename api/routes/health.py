"""Liveness and the landing page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from api.deps import EngineDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(engine: EngineDep) -> dict[str, object]:
    """``{"status": "ok"}`` when the database answers, with where it is."""
    return await run_in_threadpool(engine.health)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def landing(engine: EngineDep) -> str:
    """A short page pointing to the API docs and the dashboard."""
    settings = engine.settings
    dashboard = f"http://{settings.host}:{settings.ui_port}"
    return (
        "<!doctype html><html><head><title>Payment Transaction Simulator API</title></head>"
        "<body><h1>Payment Transaction Simulator API</h1><ul>"
        '<li><a href="/docs">Interactive API docs (Swagger UI)</a></li>'
        '<li><a href="/redoc">API reference (ReDoc)</a></li>'
        '<li><a href="/health">Health</a> · <a href="/stats">Stats</a></li>'
        f'<li><a href="{dashboard}">Dashboard</a> (when started with <code>make run</code>)</li>'
        "</ul></body></html>"
    )
