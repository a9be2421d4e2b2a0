"""The FastAPI application: thin routes over one shared :class:`~engine.service.Engine`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.errors import install_error_handlers
from api.heavy import HeavyWork
from api.middleware import RateLimitMiddleware, RequestContextMiddleware
from api.routes import (
    admin,
    attributes,
    backtest,
    compare,
    health,
    lists,
    payments,
    policies,
    simulations,
    stats,
    transactions,
)
from engine.config import get_settings
from engine.service import Engine

DESCRIPTION = """
Card-payment authorization simulator. Every decision is scored from history-based risk
features, decided by the active (versioned) policy, committed to DuckDB with an audit entry,
and only then answered. Errors use one envelope: `{"error": {"type", "message", "field"}}`;
invalid input answers **400** and is never stored or echoed.
"""


def create_app(engine: Engine | None = None) -> FastAPI:
    """Build the app. Without ``engine`` the app opens one from the settings at start-up and
    closes it at shutdown; with one (the combined dashboard + API process, tests) it shares it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine is None
        app.state.engine = engine if engine is not None else Engine()
        try:
            yield
        finally:
            app.state.heavy.shutdown()
            if owned:
                app.state.engine.close()

    # /docs and /redoc from assets shipped in the fastapi-offline package, not a CDN: they render
    # on a machine without internet (tests/e2e/test_docs_offline_e2e.py).
    app = FastAPIOffline(
        title="Payment Transaction Simulator",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # No OpenTelemetry: with it on, FastAPI asks the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    if engine is not None:
        app.state.engine = engine
    install_error_handlers(app)
    settings = engine.settings if engine is not None else get_settings()
    app.state.heavy = HeavyWork(settings.analytics_workers, settings.analytics_queue)
    app.add_middleware(payments.PaymentEndpoint)  # innermost: after ids, body limit, rate limit
    if settings.rate_limit:
        app.add_middleware(RateLimitMiddleware, per_second=settings.rate_limit)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        route_limits=(lists.body_limit(settings.max_list_body_bytes, settings.admin_token),),
    )
    for module in (
        transactions,
        stats,
        simulations,
        backtest,
        compare,
        policies,
        attributes,
        lists,
        admin,
        health,
    ):
        app.include_router(module.router)
    _answer_400_not_422(app)
    return app


def _answer_400_not_422(app: FastAPI) -> None:
    """FastAPI documents 422 for validation; this API answers 400, so the schema says so."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None and "400" not in responses:
                    responses["400"] = {
                        "description": "Invalid request; names the field.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                            }
                        },
                    }
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        # POST /payment is served as plain ASGI (api/routes/payments.py), which documents it.
        schema["paths"] = {payments.PATH: {"post": payments.openapi_operation()}, **schema["paths"]}
        for name, model in payments.openapi_models().items():
            components.update(model.pop("$defs", {}))
            components[name] = model
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
