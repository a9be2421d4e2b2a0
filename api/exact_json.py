"""JSON numbers read exactly: money must never pass through a binary float.

pydantic's ``model_validate_json`` reads a JSON number such as ``0.009999999999999999999`` as a
float (0.01) before a ``Decimal`` field sees it, and starlette's ``Request.json`` does the same
for FastAPI routes; either way a body with more than two decimals, or just over a maximum, would
be accepted as a different amount. A number with at most 15 significant digits survives the
float exactly, so the fast path stays for bodies that hold no longer number; anything else is
read with ``json.loads(parse_float=Decimal)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

# A number token (after ':', ',' or '[') with 16 or more digits and points. It may also match
# inside a string, which only costs the exact (slower) reading; it never misses a long number.
_LONG_NUMBER = re.compile(rb"[:,\[][ \t\r\n]*-?[0-9.]{16}")


def may_lose_precision(body: bytes) -> bool:
    """True when ``body`` may hold a JSON number that a binary float would not keep exactly."""
    return _LONG_NUMBER.search(body) is not None


def loads_exact(body: bytes | str) -> Any:
    """``json.loads`` with every non-integer number read as a :class:`~decimal.Decimal`."""
    return json.loads(body, parse_float=Decimal)


class ExactJsonRequest(Request):
    """A request whose ``json()`` reads numbers with a fraction or exponent as Decimal."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_exact(await self.body())
        return self._json


class ExactJsonRoute(APIRoute):
    """A route whose JSON body is read by :class:`ExactJsonRequest` (``route_class=``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_handler(request: Request) -> Response:
            return await handler(ExactJsonRequest(request.scope, request.receive))

        return exact_handler
