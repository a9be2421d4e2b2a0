"""Payments: authorize one payment (``POST /payment``, the API's hot path).

This module is the one implementation of ``POST /payment``, and the one place it is documented.
It is served as plain ASGI, ahead of FastAPI's router: FastAPI's per-request machinery
(exception and exit-stack middleware, routing, dependency solving, body parsing into a temporary
field, response-model validation) was most of the event loop's time per payment, and a payment
needs none of it. It still sits inside the app's own middleware (request ids, body limit, rate
limit), takes the engine from :func:`api.deps.get_engine` (or a test's dependency override of
it), and answers errors through the app's one error mapping (:func:`api.errors.map_error`).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from functools import cache
from typing import Annotated, Any

from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, StringConstraints, TypeAdapter, ValidationError

from api.deps import get_engine
from api.errors import MappedError, map_error
from api.exact_json import loads_exact, may_lose_precision
from api.middleware import ASGIApp, Receive, Scope, Send
from engine.idempotency import MAX_KEY_LENGTH
from engine.models import PaymentRequest, PaymentResult
from engine.pan import refuse_pan
from engine.service import Engine
from engine.validation import PRINTABLE_ASCII

PATH = "/payment"
IDEMPOTENCY_KEY = TypeAdapter(
    Annotated[
        str,
        StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH, pattern=PRINTABLE_ASCII),
        AfterValidator(refuse_pan),  # keys are stored in full
    ]
)
_JSON = b"application/json"


class PaymentEndpoint:
    """ASGI: serves every request to ``/payment``; passes everything else on to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _answer_error(
                send, scope, MappedError(405, "method_not_allowed", "Method Not Allowed"),
                {b"allow": b"POST"},
            )  # fmt: skip
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client left before its body was complete: nothing to decide or answer
        try:
            status, payload, headers = await _authorize(scope, body)
        except Exception as exc:
            mapped = map_error(exc)
            if mapped is None:
                raise  # not client input: the server-error middleware answers 500 and logs it
            await _answer_error(send, scope, mapped)
            return
        await _send(send, status, payload, headers)


async def _authorize(scope: Scope, body: bytes) -> tuple[int, bytes, dict[bytes, bytes]]:
    """Validate, submit and wait for the commit: (status, JSON body, extra headers)."""
    headers = dict(scope["headers"])
    payment = _parse_payment(headers.get(b"content-type"), body)
    key = _idempotency_key(headers.get(b"idempotency-key"))
    engine = await resolve_engine(scope)
    extra = {}
    if key is None:
        result = await engine.submit_async(payment)
    else:
        future, replayed = await run_in_threadpool(engine.submit_idempotent, payment, key)
        if replayed:
            extra[b"idempotent-replayed"] = b"true"
        result = await asyncio.wrap_future(future)
    # Serialized here, once: the engine built the result from checked values.
    return 201, result.model_dump_json().encode(), extra


def _parse_payment(content_type: bytes | None, body: bytes) -> PaymentRequest:
    """The validated payment, or a :class:`RequestValidationError` for the one error mapping."""
    if not body:
        raise RequestValidationError([{"type": "missing", "loc": ("body",)}])
    if (content_type or b"").split(b";", 1)[0].strip().lower() != _JSON:
        raise RequestValidationError([{"type": "content_type", "loc": ("body",)}])
    if not may_lose_precision(body):
        try:
            return PaymentRequest.model_validate_json(body)
        except ValidationError as exc:
            errors = exc.errors(include_input=False)
    else:  # a number too long for a float: read it exactly (the same checks, in Python mode)
        errors = [{"type": "json_invalid", "loc": ("body",)}]
    if errors[0]["type"] == "json_invalid":  # e.g. a lone surrogate: name the field it is in
        try:
            return PaymentRequest.model_validate(loads_exact(body))
        except ValidationError as exc:
            errors = exc.errors(include_input=False)
        except (ValueError, RecursionError):  # really not JSON
            pass
    raise RequestValidationError(errors)


def _idempotency_key(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return IDEMPOTENCY_KEY.validate_python(value.decode("latin-1"))
    except ValidationError as exc:
        errors = [{**e, "loc": ("header", "idempotency-key")} for e in exc.errors()]
        raise RequestValidationError(errors) from None


async def resolve_engine(scope: Scope) -> Engine:
    """The engine from :func:`api.deps.get_engine`, or from the app's dependency override of it
    (tests): an override that takes a parameter is called with the request."""
    app = scope["app"]
    provider = app.dependency_overrides.get(get_engine, get_engine)
    if _takes_request(provider):
        from starlette.requests import Request

        value = provider(Request(scope))
    else:
        value = provider()
    return await value if inspect.isawaitable(value) else value


@cache
def _takes_request(provider: Any) -> bool:
    return bool(inspect.signature(provider).parameters)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, status: int, payload: bytes, extra: dict[bytes, bytes]) -> None:
    headers = [
        (b"content-type", _JSON),
        (b"content-length", str(len(payload)).encode()),
        *extra.items(),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _answer_error(
    send: Send, scope: Scope, mapped: MappedError, extra: dict[bytes, bytes] | None = None
) -> None:
    request_id = scope.get("state", {}).get("request_id")
    headers = {k.lower().encode(): v.encode() for k, v in (mapped.headers or {}).items()}
    payload = json.dumps(mapped.body(request_id)).encode()
    await _send(send, mapped.status, payload, {**headers, **(extra or {})})


def openapi_operation() -> dict[str, Any]:
    """The OpenAPI description of ``POST /payment`` (the app adds it to its schema)."""

    def error(description: str) -> dict[str, Any]:
        ref = {"$ref": "#/components/schemas/ErrorResponse"}
        return {"description": description, "content": {"application/json": {"schema": ref}}}

    return {
        "tags": ["payments"],
        "summary": "Create Payment",
        "description": "Score and decide a payment; answers once the decision is committed.",
        "operationId": "create_payment_payment_post",
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Retry-safe key: the same key and body return the first result.",
                "schema": IDEMPOTENCY_KEY.json_schema(),
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PaymentRequest"}}
            },
        },
        "responses": {
            "201": {
                "description": "The decision, committed to disk.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PaymentResult"}}
                },
            },
            "400": error("Invalid request; names the field."),
            "409": error("Idempotency-Key reused with another body."),
            "413": error("Request body too large."),
            "429": error("Rate limit exceeded (PTSIM_RATE_LIMIT)."),
            "503": error("The database cannot take writes now."),
        },
    }


def openapi_models() -> dict[str, dict[str, Any]]:
    """The component schemas :func:`openapi_operation` refers to."""
    template = "#/components/schemas/{model}"
    return {
        "PaymentRequest": PaymentRequest.model_json_schema(ref_template=template),
        "PaymentResult": PaymentResult.model_json_schema(
            ref_template=template, mode="serialization"
        ),
    }
