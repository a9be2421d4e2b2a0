"""``POST /payment`` served straight from ASGI when the request is plainly valid.

Most of the API's per-request cost on the payment hot path was FastAPI's generic machinery
(exception and exit-stack middleware, routing, dependency solving, the response class), not the
payment itself. This middleware answers the common case (a JSON body that validates as a
:class:`~engine.models.PaymentRequest`, no ``Idempotency-Key``) directly: validate, submit to the
engine, answer 201 with the same body the route would send. Anything else, including every body
that fails validation and every engine error, is handed to the FastAPI route unchanged (the body
already read is replayed), so validation messages, error mapping and the OpenAPI schema stay in
one place: ``api/routes/payments.py`` and ``api/errors.py``.
"""

from __future__ import annotations

from pydantic import ValidationError

from api.middleware import ASGIApp, Message, Receive, Scope, Send
from engine.errors import StoreError
from engine.models import PaymentRequest

_JSON_HEADERS = [(b"content-type", b"application/json")]


class PaymentFastPath:
    """Serve valid ``POST /payment`` requests without the framework; defer everything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["path"] == "/payment"
            and scope["method"] == "POST"
            and _plain_json(scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        body, messages = await _read_body(receive)
        if messages[-1]["type"] == "http.disconnect":
            return  # the client left before its body was complete: nothing to decide or answer
        try:
            payment = PaymentRequest.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(messages, receive), send)
            return
        engine = scope["app"].state.engine
        try:
            result = await engine.submit_async(payment)
        except StoreError:
            # The route answers this with the mapped 503; the payment was not committed, so
            # submitting it again there cannot create a second transaction.
            await self.app(scope, _replay(messages, receive), send)
            return
        payload = result.model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _plain_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """A JSON body and no Idempotency-Key (keyed requests need the route's replay logic)."""
    json_body = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"idempotency-key":
            return False
        if lowered == b"content-type":
            json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
    return json_body


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole request body, and the messages it came in (to replay them if needed)."""
    messages = []
    chunks = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that yields ``messages`` again, then continues with the real one."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
