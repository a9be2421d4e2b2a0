"""Every error answer is one JSON envelope: ``{"error": {"type", "message", "field"}}``.

Mapped in one place. Client input never gets a 500, and no error body echoes the input (it may
hold a card number).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from engine.errors import (
    IdempotencyConflictError,
    InvalidRequestError,
    NotFoundError,
    StoreError,
    StoreLockedError,
)
from engine.validation import describe_first

log = logging.getLogger("ptsim.api")


class ErrorBody(BaseModel):
    """What went wrong, and which field (if one) caused it."""

    type: str
    message: str
    field: str | None = None
    request_id: str | None = None


class ErrorResponse(BaseModel):
    """The error envelope of every 4xx/5xx answer."""

    error: ErrorBody


def error_response(
    status: int,
    type_: str,
    message: str,
    field: str | None = None,
    request: Request | None = None,
) -> JSONResponse:
    """Build the envelope as a response (with the request's id when known)."""
    request_id = getattr(request.state, "request_id", None) if request is not None else None
    body = ErrorResponse(
        error=ErrorBody(type=type_, message=message, field=field, request_id=request_id)
    )
    return JSONResponse(status_code=status, content=body.model_dump())


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    """Map validation, engine and HTTP errors to the envelope."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        field, message = describe_first(exc)
        return error_response(400, "validation_error", message, field, request)

    @app.exception_handler(InvalidRequestError)
    async def _invalid(request: Request, exc: InvalidRequestError) -> JSONResponse:
        return error_response(400, "validation_error", exc.message, exc.field, request)

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, _: RecursionError) -> JSONResponse:
        return error_response(
            400, "validation_error", "The JSON body is nested too deeply.", "body", request
        )

    @app.exception_handler(IdempotencyConflictError)
    async def _conflict(request: Request, exc: IdempotencyConflictError) -> JSONResponse:
        return error_response(409, "idempotency_error", str(exc), "Idempotency-Key", request)

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, "not_found", str(exc), None, request)

    @app.exception_handler(StoreLockedError)
    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        log.error("store error: %s", exc)
        return error_response(503, "store_unavailable", str(exc), None, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # the body could not be parsed at all
            return error_response(
                400,
                "validation_error",
                "The request body could not be parsed as JSON.",
                "body",
                request,
            )
        kinds = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        response = error_response(
            exc.status_code,
            kinds.get(exc.status_code, "http_error"),
            str(exc.detail),
            None,
            request,
        )
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(
            500, "internal_error", "Internal error; the server log has details.", None, request
        )
