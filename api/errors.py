"""Every error answer is one JSON envelope: ``{"error": {"type", "message", "field"}}``.

Mapped in one place. Client input never gets a 500, and no error body echoes the input (it may
hold a card number).
"""

from __future__ import annotations

import logging
import re
from typing import Any

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


# Unknown keys are named in errors only when they look like field names: no run of 4+ digits.
_NAMEABLE_FIELD = re.compile(r"^(?!.*[0-9]{4})[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def _describe_validation_error(error: dict[str, Any]) -> tuple[str | None, str]:
    """(field, message) for the first pydantic error, without the offending input."""
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "body", "The request body is not valid JSON."
    if kind == "missing" and not loc:
        return "body", "A JSON request body is required."
    if kind == "model_attributes_type" or (kind.endswith("_type") and not loc):
        return "body", "The request body must be a JSON object."
    if len(loc) == 2 and loc[0] == "header":  # e.g. ('header', 'idempotency-key')
        loc = ["-".join(part.capitalize() for part in loc[1].split("-"))]
    field = ".".join(loc) or "body"
    if kind == "extra_forbidden":
        if not _NAMEABLE_FIELD.match(field):  # the key is client input and may hold a card number
            return "body", "The request body has an unknown field."
        return field, f"Unknown field '{field}'."
    if kind == "missing":
        return field, f"Field '{field}' is required."
    return field, f"Field '{field}' is invalid: {error.get('msg', 'invalid value')}."


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
        field, message = _describe_validation_error(exc.errors()[0] if exc.errors() else {})
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
