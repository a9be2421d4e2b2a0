"""Payments: authorize one payment."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from api.deps import EngineDep
from api.errors import ErrorResponse
from engine.models import PaymentRequest, PaymentResult

router = APIRouter(tags=["payments"])


@router.post(
    "/payment",
    status_code=201,
    response_model=PaymentResult,
    responses={400: {"model": ErrorResponse, "description": "Invalid request; names the field."}},
)
async def create_payment(payment: PaymentRequest, engine: EngineDep) -> PaymentResult:
    """Score and decide a payment; answers once the decision is committed to disk."""
    return await asyncio.wrap_future(engine.submit(payment))
