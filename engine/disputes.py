"""Disputes: chargebacks and other disputes reported about stored payments (issue 13).

A dispute names a payment (live or simulated), a reason and when it was reported. It is stored
once per (payment, reason), with an audit entry ``transaction.disputed`` in the same commit, so a
repeated report of the same reason changes nothing and answers the stored dispute. A report of
another reason for the same payment is a dispute of its own (a cardholder may first claim the
goods never arrived, then fraud). Backtests read the fraud reasons as labels
(:func:`engine.backtest.label_sql`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import InvalidRequestError, NotFoundError
from engine.filters import AwareDateTime, naive_utc
from engine.models import Dispute, DisputeReason
from engine.store import Store, utc_now
from engine.validation import quoted_field


class DisputeReport(BaseModel):
    """A dispute as reported: its reason, and when it was reported (default: now)."""

    model_config = ConfigDict(extra="forbid")

    reason: DisputeReason = Field(
        description="fraud and friendly_fraud label the payment fraud in backtests; the others "
        "(authorisation, processing_error, not_received, not_as_described) are kept and audited."
    )
    reported_at: AwareDateTime | None = Field(
        None,
        description="When the dispute was reported: RFC 3339 with a time zone, not in the "
        "future and not before the payment. Default: now.",
    )


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :func:`record_dispute` did: the stored dispute, and whether this call stored it."""

    dispute: Dispute
    created: bool


def record_dispute(
    store: Store, transaction_id: uuid.UUID, report: DisputeReport, now: datetime | None = None
) -> Recorded:
    """Store ``report`` about ``transaction_id`` with its audit entry, in one commit.

    A dispute of the same reason already stored is answered as stored (``created`` False) and
    nothing is written. Raises :class:`NotFoundError` for an unknown transaction and
    :class:`InvalidRequestError` naming ``reported_at`` when it is in the future or before the
    payment."""
    now = now or utc_now()
    reported = now if report.reported_at is None else naive_utc(report.reported_at)
    field = quoted_field("reported_at")
    if reported > now:
        raise InvalidRequestError("reported_at", f"{field} must not be in the future.")
    with store.write() as tx:
        row = tx.one("SELECT created_at FROM transactions WHERE id = ?", [transaction_id])
        if row is None:
            raise NotFoundError(f"Transaction {transaction_id} not found.")
        if reported < row[0]:
            raise InvalidRequestError(
                "reported_at", f"{field} must not be before the payment ({_rfc3339(row[0])})."
            )
        stored = tx.one(
            "SELECT reported_at, recorded_at FROM disputes WHERE transaction_id = ? AND reason = ?",
            [transaction_id, report.reason],
        )
        if stored is not None:
            return Recorded(_dispute(transaction_id, report.reason, *stored), created=False)
        dispute = _dispute(transaction_id, report.reason, reported, now)
        tx.execute(
            "INSERT INTO disputes VALUES (?, ?, ?, ?)",
            [transaction_id, report.reason, reported, now],
        )
        tx.execute(
            "INSERT INTO audit_log VALUES (?, ?, 'transaction.disputed', NULL, ?)",
            [transaction_id, now, json.dumps({"dispute": dispute.model_dump(mode="json")})],
        )
    return Recorded(dispute, created=True)


def _dispute(
    transaction_id: uuid.UUID, reason: str, reported_at: datetime, recorded_at: datetime
) -> Dispute:
    return Dispute.model_validate(
        {
            "transaction_id": transaction_id,
            "reason": reason,
            "reported_at": reported_at,
            "recorded_at": recorded_at,
        }
    )


def _rfc3339(value: datetime) -> str:
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
