"""Transactions and their audit trails."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import EngineDep
from api.errors import ErrorResponse
from engine.models import AuditEntry, StoredTransaction

router = APIRouter(tags=["transactions"])
_NOT_FOUND = {404: {"model": ErrorResponse, "description": "Unknown (or malformed) id."}}


@router.get("/transaction/{transaction_id}", response_model=StoredTransaction, responses=_NOT_FOUND)
async def get_transaction(transaction_id: str, engine: EngineDep) -> StoredTransaction:
    """One transaction with the card masked."""
    return await run_in_threadpool(engine.get_transaction, transaction_id)


@router.get("/audit/{transaction_id}", response_model=list[AuditEntry], responses=_NOT_FOUND)
async def get_audit(transaction_id: str, engine: EngineDep) -> list[AuditEntry]:
    """The audit trail of a transaction: masked request, decision, features, policy, latency."""
    return await run_in_threadpool(engine.get_audit, transaction_id)
