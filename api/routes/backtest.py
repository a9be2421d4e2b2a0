"""Backtests: what a candidate policy would have decided over stored history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import EngineDep
from api.errors import ErrorResponse
from api.exact_json import ExactJsonRoute
from api.heavy import HeavyDep
from engine.backtest import BacktestResult
from engine.errors import InvalidRequestError
from engine.filters import RowFilter
from engine.policy import Policy
from engine.service import Engine
from engine.validation import describe_first, quoted_field

# Bodies are read with exact numbers: amount_threshold is money (api/exact_json.py).
router = APIRouter(tags=["backtest"], route_class=ExactJsonRoute)


_NUMBER = {"type": "number"}
_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
_WEIGHT = {"type": "number", "minimum": 0, "maximum": 10}
# The policy knobs a candidate may set, as the validator accepts them (JSON numbers only).
_KNOBS: dict[str, Any] = {
    "amount_threshold": {**_NUMBER, "exclusiveMinimum": 0, "maximum": 1000000, "multipleOf": 0.01},
    "high_amount_decline_prob": _PROBABILITY,
    "base_decline_prob": _PROBABILITY,
    "score_threshold": {"anyOf": [_PROBABILITY, {"type": "null"}]},
    "velocity_limit": {
        "anyOf": [{"type": "integer", "minimum": 1, "maximum": 10000}, {"type": "null"}]
    },
    "weight_device": _WEIGHT,
    "weight_ip": _WEIGHT,
    "weight_amount": _WEIGHT,
    "weight_velocity": _WEIGHT,
}


class BacktestRequest(BaseModel):
    """A candidate policy (knobs left out keep the active policy's value; ``null`` switches an
    optional rule off) and which stored rows to re-decide."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "candidate": {"score_threshold": 0.6, "velocity_limit": 8},
                    "filters": {"run": "all"},
                }
            ]
        },
    )

    candidate: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"properties": _KNOBS, "additionalProperties": False},
        description="Policy knobs: amount_threshold, high_amount_decline_prob, "
        "base_decline_prob, score_threshold, velocity_limit, weight_device, weight_ip, "
        "weight_amount, weight_velocity.",
    )
    filters: RowFilter = Field(default_factory=RowFilter)


def candidate_policy(engine: Engine, knobs: dict[str, Any]) -> Policy:
    """The active policy with ``knobs`` applied; invalid knobs raise InvalidRequestError."""
    for name, knob in knobs.items():
        if isinstance(knob, bool | str):  # lax mode would take true as 1 and "0.5" as 0.5
            field = f"candidate.{name}"
            raise InvalidRequestError(
                field, f"{quoted_field(field)} must be a JSON number or null."
            )
    try:
        return Policy(**{**engine.active_policy().knobs(), **knobs, "version": 0})
    except ValidationError as exc:
        raise InvalidRequestError(
            *describe_first(exc, prefix=("candidate",), root="candidate")
        ) from None


@router.post(
    "/backtest",
    response_model=BacktestResult,
    responses={
        400: {"model": ErrorResponse, "description": "Invalid request; names the field."},
        429: {"model": ErrorResponse, "description": "The analytics queue is full; Retry-After."},
    },
)
async def backtest(body: BacktestRequest, engine: EngineDep, heavy: HeavyDep) -> BacktestResult:
    """Re-decide stored payments under a candidate policy with their stored random draws and
    compare it with the active policy (approval, fraud caught, losses, false declines)."""
    candidate = candidate_policy(engine, body.candidate)
    return await heavy.run(engine.backtest, candidate, body.filters)
