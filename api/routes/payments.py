"""Payments: authorize one payment."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import EngineDep
from api.errors import ErrorResponse
from engine.idempotency import MAX_KEY_LENGTH
from engine.models import PaymentRequest, PaymentResult
from engine.validation import PRINTABLE_ASCII

router = APIRouter(tags=["payments"])


@router.post(
    "/payment",
    status_code=201,
    response_model=PaymentResult,
    responses={
        400: {"model": ErrorResponse, "description": "Invalid request; names the field."},
        409: {"model": ErrorResponse, "description": "Idempotency-Key reused with another body."},
        413: {"model": ErrorResponse, "description": "Request body too large."},
        429: {"model": ErrorResponse, "description": "Rate limit exceeded (PTSIM_RATE_LIMIT)."},
    },
)
async def create_payment(
    payment: PaymentRequest,
    engine: EngineDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=MAX_KEY_LENGTH,
            pattern=PRINTABLE_ASCII,
            description="Retry-safe key: the same key and body return the first result.",
        ),
    ] = None,
) -> Response:
    """Score and decide a payment; answers once the decision is committed to disk."""
    headers = {}
    if idempotency_key is None:
        result = await asyncio.wrap_future(engine.submit(payment))
    else:
        future, replayed = await run_in_threadpool(
            engine.submit_idempotent, payment, idempotency_key
        )
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        result = await asyncio.wrap_future(future)
    # Serialized here, once: the engine built the result from checked values, so FastAPI's
    # response-model validation would only repeat that work on the hot path.
    return Response(
        result.model_dump_json(), status_code=201, media_type="application/json", headers=headers
    )
