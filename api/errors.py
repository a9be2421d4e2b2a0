"""Every error answer is one JSON envelope: ``{"error": {"type", "message", "field"}}``.

Mapped in one place. Client input never gets a 500, and no error body echoes the input (it may
hold a card number).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from engine.errors import (
    BusyError,
    IdempotencyConflictError,
    InvalidRequestError,
    NotFoundError,
    StoreError,
    StoreLockedError,
)
from engine.pan import mask_pans
from engine.rules import RuleError
from engine.validation import describe_first

log = logging.getLogger("ptsim.api")


class ErrorBody(BaseModel):
    """What went wrong, and which field (if one) caused it."""

    type: str
    message: str
    field: str | None = None
    line: int | None = Field(None, description="For a rule condition: the 1-based line.")
    column: int | None = Field(None, description="For a rule condition: the 1-based column.")
    request_id: str | None = None


class ErrorResponse(BaseModel):
    """The error envelope of every 4xx/5xx answer."""

    error: ErrorBody


@dataclass(frozen=True, slots=True)
class MappedError:
    """How an exception is answered: status, envelope fields and extra headers."""

    status: int
    type: str
    message: str
    field: str | None = None
    headers: dict[str, str] | None = None
    line: int | None = None
    column: int | None = None

    def body(self, request_id: str | None) -> dict[str, Any]:
        """The envelope as a JSON-ready dict (``line``/``column`` only when known)."""
        error = ErrorBody(
            type=self.type,
            message=self.message,
            field=self.field,
            line=self.line,
            column=self.column,
            request_id=request_id,
        )
        unknown = {name for name in ("line", "column") if getattr(self, name) is None}
        return ErrorResponse(error=error).model_dump(exclude={"error": unknown})


def error_response(
    status: int,
    type_: str,
    message: str,
    field: str | None = None,
    request: Request | None = None,
) -> JSONResponse:
    """Build the envelope as a response (with the request's id when known)."""
    return _respond(MappedError(status, type_, message, field), request)


def _respond(mapped: MappedError, request: Request | None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) if request is not None else None
    return JSONResponse(mapped.body(request_id), mapped.status, headers=mapped.headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def map_error(exc: Exception) -> MappedError | None:
    """The one mapping of validation and engine errors to answers (None: not a client or store
    error, so a 500). Used by the app's exception handlers and by ``POST /payment``."""
    if isinstance(exc, RequestValidationError):
        field, message = describe_first(exc)
        return MappedError(400, "validation_error", message, field)
    if isinstance(exc, InvalidRequestError):
        return MappedError(400, "validation_error", exc.message, exc.field)
    if isinstance(exc, RuleError):
        return MappedError(
            400, "validation_error", mask_pans(exc.message), exc.field, None, exc.line, exc.column
        )
    if isinstance(exc, RecursionError):
        return MappedError(400, "validation_error", "The JSON body is nested too deeply.", "body")
    if isinstance(exc, IdempotencyConflictError):
        return MappedError(409, "idempotency_error", str(exc), "Idempotency-Key")
    if isinstance(exc, NotFoundError):
        return MappedError(404, "not_found", mask_pans(str(exc)))  # it may quote the path
    if isinstance(exc, BusyError):
        return MappedError(429, "busy", str(exc), headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, StoreError):
        log.error("store error: %s", exc)
        return MappedError(503, "store_unavailable", str(exc))
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Map validation, engine and HTTP errors to the envelope."""

    async def _mapped(request: Request, exc: Exception) -> JSONResponse:
        mapped = map_error(exc)
        assert mapped is not None  # registered only for the classes map_error knows
        return _respond(mapped, request)

    for known in (
        RequestValidationError,
        InvalidRequestError,
        RuleError,
        RecursionError,
        IdempotencyConflictError,
        NotFoundError,
        BusyError,
        StoreLockedError,
        StoreError,
    ):
        app.add_exception_handler(known, _mapped)

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
        kinds = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            429: "rate_limited",
        }
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
