"""Comparisons: any two policies (stored versions or drafts) over the same stored payments, in
money, with paired confidence intervals."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import EngineDep
from api.errors import ErrorResponse
from api.exact_json import ExactJsonRoute
from api.heavy import HeavyDep
from api.routes.backtest import CANDIDATE_SCHEMA, candidate_policy
from engine.compare import DEFAULT_REPLICATES, Comparison
from engine.costs import CostModel, whole_number
from engine.errors import InvalidRequestError, NotFoundError
from engine.filters import AwareDateTime, RowFilter
from engine.policy import Policy
from engine.service import Engine
from engine.validation import quoted_field

# Bodies are read with exact numbers: costs and knobs are money (api/exact_json.py).
router = APIRouter(tags=["backtest"], route_class=ExactJsonRoute)

_POLICY_REF: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "description": "A stored policy version."},
        {"type": "object", **CANDIDATE_SCHEMA, "description": "A draft, as POST /backtest's "
         "candidate: rules with optional score_weights, or knobs."},
    ]
}  # fmt: skip


class CompareRequest(BaseModel):
    """Two policies, the rows to decide them on, and how to price the outcome."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "a": 1,
                    "b": {"rules": [{"name": "Big", "action": "block", "when": ":amount: > 300"}]},
                    "filters": {"run": "all"},
                    "costs": {"currency": "GBP", "chargeback_fee": 15, "review_cost": 3},
                }
            ]
        },
    )

    a: int | dict[str, Any] = Field(json_schema_extra=_POLICY_REF, description="Policy A.")
    b: int | dict[str, Any] = Field(json_schema_extra=_POLICY_REF, description="Policy B.")
    filters: RowFilter = Field(default_factory=RowFilter)
    costs: CostModel = Field(default_factory=CostModel)
    labels_as_of: AwareDateTime | None = Field(
        None,
        description="Count only the labels known then (as filters.labels_as_of); RFC 3339 "
        "with a time zone.",
    )
    replicates: int = Field(
        DEFAULT_REPLICATES, ge=100, le=20_000, description="Bootstrap replicates."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the bootstrap resampling.")
    maturity_days: list[Annotated[int, Field(ge=0, le=3650)]] = Field(
        default_factory=list,
        max_length=8,
        description="Also answer the comparison with the labels known this many days after "
        "the selection's last payment, for each (e.g. [7, 30, 90]); one more scan each.",
    )

    @field_validator("a", "b", mode="before")
    @classmethod
    def _version_or_draft(cls, value: Any) -> Any:
        if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
            value = int(value)  # JSON Schema's integer: 1.0 is one
        if isinstance(value, bool) or not isinstance(value, int | dict):
            raise ValueError("must be a stored policy version (an integer) or a draft (an object)")
        return value

    @field_validator("replicates", "seed", mode="before")
    @classmethod
    def _whole_numbers(cls, value: Any) -> Any:
        return whole_number(value)

    @field_validator("maturity_days", mode="before")
    @classmethod
    def _whole_days(cls, value: Any) -> Any:
        return [whole_number(v) for v in value] if isinstance(value, list) else value


def _policy(engine: Engine, ref: int | dict[str, Any], field: str) -> Policy:
    if isinstance(ref, dict):
        return candidate_policy(engine, ref, field)
    try:
        return engine.policy(ref)
    except NotFoundError:
        raise InvalidRequestError(
            field, f"{quoted_field(field)} names policy version {ref}, which does not exist."
        ) from None


def _filters(body: CompareRequest) -> RowFilter:
    if body.labels_as_of is None:
        return body.filters
    given = body.filters.labels_as_of
    if given is not None and given != body.labels_as_of:
        raise InvalidRequestError(
            "labels_as_of", "Give labels_as_of once: at the top level or in filters, not both."
        )
    return body.filters.model_copy(update={"labels_as_of": body.labels_as_of})


@router.post(
    "/compare",
    response_model=Comparison,
    responses={
        400: {"model": ErrorResponse, "description": "Invalid request; names the field."},
        429: {"model": ErrorResponse, "description": "The analytics queue is full; Retry-After."},
    },
)
async def compare(body: CompareRequest, engine: EngineDep, heavy: HeavyDep) -> Comparison:
    """Decide the selected payments under policies A and B with their stored random draws,
    price both with the cost model, and give every difference (B − A) a paired day-block
    bootstrap confidence interval."""
    a, b = _policy(engine, body.a, "a"), _policy(engine, body.b, "b")
    filters = _filters(body)
    return await heavy.run(
        lambda: engine.compare(
            a, b, filters, body.costs, body.replicates, body.seed, body.maturity_days
        )
    )
