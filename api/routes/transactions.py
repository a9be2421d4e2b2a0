"""Transactions and their audit trails."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import AdminDep, EngineDep
from api.errors import ErrorResponse
from engine.disputes import DisputeReport
from engine.errors import NotFoundError
from engine.ids import parse_id
from engine.models import AuditEntry, Dispute, StoredTransaction

router = APIRouter(tags=["transactions"])
_NOT_FOUND = {404: {"model": ErrorResponse, "description": "Unknown (or malformed) id."}}


@router.get("/transaction/{transaction_id}", response_model=StoredTransaction, responses=_NOT_FOUND)
async def get_transaction(transaction_id: str, engine: EngineDep) -> StoredTransaction:
    """One transaction with the card masked."""
    return await run_in_threadpool(engine.get_transaction, _parse(transaction_id))


@router.get("/audit/{transaction_id}", response_model=list[AuditEntry], responses=_NOT_FOUND)
async def get_audit(transaction_id: str, engine: EngineDep) -> list[AuditEntry]:
    """The audit trail of a transaction: masked request, decision, features, policy, latency."""
    return await run_in_threadpool(engine.get_audit, _parse(transaction_id))


@router.post(
    "/transaction/{transaction_id}/dispute",
    response_model=Dispute,
    status_code=201,
    dependencies=[AdminDep],
    responses={
        200: {"model": Dispute, "description": "The same reason was reported before: as stored."},
        400: {"model": ErrorResponse, "description": "Invalid body; names the field."},
        401: {"model": ErrorResponse, "description": "Missing or wrong token."},
        403: {"model": ErrorResponse, "description": "Admin routes disabled."},
        429: {"model": ErrorResponse, "description": "Too many wrong admin tokens."},
        **_NOT_FOUND,
    },
)
async def dispute(
    transaction_id: str, body: DisputeReport, engine: EngineDep, response: Response
) -> Dispute:
    """Record a dispute (chargeback) about a payment, with an audit entry (admin). A repeated
    report of the same reason answers 200 with the stored dispute and stores nothing."""
    recorded = await run_in_threadpool(engine.dispute, _parse(transaction_id), body)
    if not recorded.created:
        response.status_code = 200
    return recorded.dispute


def _parse(transaction_id: str) -> uuid.UUID:
    """The id as a UUID; a malformed one is a 404 that does not echo it (it may be a card)."""
    parsed = parse_id(transaction_id)
    if parsed is None:
        raise NotFoundError("No transaction has this id (transaction ids are UUIDs).")
    return parsed
