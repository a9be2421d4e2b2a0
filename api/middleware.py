"""Pure-ASGI middleware: request ids, body-size limit, rate limit and one log line per request.

Written as raw ASGI (not ``BaseHTTPMiddleware``) because it wraps every payment on the hot path.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from engine.pan import contains_pan, mask_pans
from engine.throttle import TokenBuckets

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("ptsim.access")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _loggable_path(path: object) -> object:
    # A long run of digits in a path may be a card number sent by mistake: never log it in full.
    return mask_pans(path) if isinstance(path, str) else path


_ID_PREFIX = uuid.uuid4().hex[:16]  # unique per process; a counter makes each id unique within
_ID_COUNTER = itertools.count(1)


def _next_request_id() -> str:
    """A new request id: cheaper than uuid4() (no system call) on the hot path."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"  # 32 hex digits, like uuid4().hex


class _BodyTooLarge(Exception):
    pass


def _error_bytes(type_: str, message: str, request_id: str, field: str | None = None) -> bytes:
    body = {"error": {"type": type_, "message": message, "field": field, "request_id": request_id}}
    return json.dumps(body).encode()


async def _send_error(
    send: Send, status: int, body: bytes, request_id: str, extra: list[tuple[bytes, bytes]] = ()
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"request-id", request_id.encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _after_413(headers: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    """A 413 keeps the connection open: the server reads and discards the rest of the body
    (workbench/connections.py bounds how much and for how long), so a client that writes its
    whole body before reading gets the answer, not a connection reset. A client waiting for
    "100 Continue" sends no body at all, so its connection is simply closed."""
    return [(b"connection", b"close")] if b"expect" in headers else []


# (method, path pattern, largest body in bytes, who may send it: the scope's headers -> bool)
BodyLimit = tuple[str, re.Pattern[str], int, Callable[[Scope], bool]]


class RequestContextMiddleware:
    """Gives every request a ``Request-Id`` (the client's, if well-formed, else a new one),
    returns it as a header, stores it in ``scope["state"]`` for error bodies, refuses bodies
    over ``max_body_bytes`` with 413 (or over the limit of the first ``route_limits`` entry whose
    method and path match), and logs one JSON line per request (never a body)."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, route_limits: tuple[BodyLimit, ...] = ()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.route_limits = route_limits

    def _limit(self, scope: Scope) -> int:
        for method, path, limit, allowed in self.route_limits:
            if scope["method"] == method and path.fullmatch(scope["path"]) and allowed(scope):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        supplied = headers.get(b"request-id", b"").decode("latin-1")
        # The id is echoed and logged: one holding a card number is replaced, like a malformed one.
        usable = supplied and _CLIENT_ID.fullmatch(supplied) and not contains_pan(supplied)
        request_id = supplied if usable else _next_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 499  # no answer started: the client left first (nginx's "client closed request")

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers_out = list(message.get("headers", []))
                if not any(name.lower() == b"request-id" for name, _ in headers_out):
                    headers_out.append((b"request-id", request_id.encode()))
                message["headers"] = headers_out
            await send(message)

        max_body_bytes = self._limit(scope)

        async def refuse_too_large() -> None:
            body = _error_bytes(
                "payload_too_large",
                f"The request body exceeds {max_body_bytes} bytes.",
                request_id,
                "body",
            )
            await _send_error(send, 413, body, request_id, _after_413(headers))

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            status = 413
            await refuse_too_large()
            self._log(scope, request_id, status, started)
            return

        received = 0
        overflowed = False

        async def limited_receive() -> Message:
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body_bytes:
                    overflowed = True
                    raise _BodyTooLarge
            return message

        async def send_unless_overflowed(message: Message) -> None:
            # FastAPI turns the aborted body read into its own 400; too much body is a 413
            # whichever handler read it.
            if overflowed and message["type"] == "http.response.start":
                raise _BodyTooLarge
            await send_with_id(message)

        try:
            await self.app(scope, limited_receive, send_unless_overflowed)
        except _BodyTooLarge:
            status = 413
            await refuse_too_large()
        except Exception:
            status = 500  # Starlette's outermost middleware answers it
            raise
        finally:
            self._log(scope, request_id, status, started)

    @staticmethod
    def _log(scope: Scope, request_id: str, status: int, started: float) -> None:
        if access_log.isEnabledFor(logging.INFO):
            # The same JSON object as json.dumps of a dict gives, built directly: once per
            # request on the payment path, where the dict and the encoder were ~5% of the loop.
            # The request id is [A-Za-z0-9._:-] (checked above), the status an int.
            method = json.dumps(scope.get("method"))
            path = json.dumps(_loggable_path(scope.get("path")))
            duration = round((time.perf_counter() - started) * 1000, 3)
            access_log.info(
                f'{{"request_id": "{request_id}", "method": {method}, "path": {path}, '
                f'"status": {status}, "duration_ms": {duration}}}'
            )


def client_address(scope: Scope) -> str:
    """The peer's address (behind a reverse proxy: the proxy's)."""
    return (scope.get("client") or ("unknown", 0))[0]


class RateLimitMiddleware:
    """Token bucket per client address on ``POST /payment``; 429 with ``Retry-After``."""

    def __init__(self, app: ASGIApp, per_second: float, burst: int | None = None) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_second, burst or max(1, math.ceil(per_second)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/payment":
            wait = self.buckets.take(client_address(scope))
            if wait > 0:
                request_id = scope.get("state", {}).get("request_id", uuid.uuid4().hex)
                retry_after = str(max(1, math.ceil(wait)))
                body = _error_bytes(
                    "rate_limited",
                    f"Too many payments; retry after {retry_after} s.",
                    request_id,
                )
                await _send_error(
                    send, 429, body, request_id, [(b"retry-after", retry_after.encode())]
                )
                return
        await self.app(scope, receive, send)
