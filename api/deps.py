"""Dependencies shared by the routes (tests override ``get_engine``)."""

from __future__ import annotations

import hmac
import math
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.middleware import client_address
from engine.service import Engine

bearer = HTTPBearer(auto_error=False, description="PTSIM_ADMIN_TOKEN")


async def get_engine(request: Request) -> Engine:
    """The process's one engine, created by the app's lifespan or passed to ``create_app``.

    ``async`` so FastAPI calls it on the event loop: a plain ``def`` dependency is run in the
    thread pool, one thread hop per request on the payment hot path."""
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def require_admin(
    request: Request,
    engine: EngineDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Admin routes deny by default: they need ``Authorization: Bearer $PTSIM_ADMIN_TOKEN``;
    a client that sent too many wrong tokens is answered 429 until ``Retry-After`` passes, even
    with the right token, so the throttle never confirms a guess."""
    configured = engine.settings.admin_token
    if configured is None:
        raise HTTPException(
            403,
            "Admin routes are disabled: set PTSIM_ADMIN_TOKEN and send "
            "'Authorization: Bearer <token>'.",
        )
    failures = engine.admin_failures
    client = client_address(request.scope)
    if wait := failures.wait(client):
        retry_after = str(max(1, math.ceil(wait)))
        raise HTTPException(
            429,
            f"Too many wrong admin tokens from this client; retry after {retry_after} s.",
            headers={"Retry-After": retry_after},
        )
    supplied = credentials.credentials if credentials else ""
    if not hmac.compare_digest(supplied.encode(), configured.get_secret_value().encode()):
        failures.take(client)
        raise HTTPException(
            401, "Missing or wrong admin token.", headers={"WWW-Authenticate": "Bearer"}
        )


AdminDep = Depends(require_admin)
