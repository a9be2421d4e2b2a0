"""Backtests: what a candidate policy would have decided over stored history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import EngineDep
from api.errors import ErrorResponse
from api.exact_json import ExactJsonRoute
from api.heavy import HeavyDep
from api.routes.policies import RULES_SCHEMA
from engine.backtest import BacktestResult
from engine.challenge import ChallengeModel
from engine.costs import CostModel
from engine.errors import InvalidRequestError
from engine.filters import RowFilter
from engine.policy import Knobs, Policy, ScoreWeights
from engine.rules import RuleError
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


# A draft policy in a request body: rules with optional score weights, or knobs.
CANDIDATE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "properties": {
                "rules": {"type": "array", **RULES_SCHEMA},
                "score_weights": ScoreWeights.model_json_schema(),
                "challenge": ChallengeModel.model_json_schema(),
            },
            "required": ["rules"],
            "additionalProperties": False,
        },
        {"properties": _KNOBS, "additionalProperties": False},
    ]
}


class BacktestRequest(BaseModel):
    """A candidate policy, which stored rows to re-decide and how to price the outcome. The
    candidate is either rules (``{"rules": [...], "score_weights"?: {...}}``) or knobs (knobs
    left out keep the active policy's value, or the default's when the active policy was
    written as rules; ``null`` switches an optional rule off)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "candidate": {
                        "rules": [
                            {
                                "name": "Card testing",
                                "action": "block",
                                "when": ":cards_per_device_24h: >= 5 and :amount_in_gbp: < 5",
                            }
                        ]
                    },
                    "filters": {"run": "all"},
                },
                {
                    "candidate": {"score_threshold": 0.6, "velocity_limit": 8},
                    "filters": {"run": "all"},
                    "costs": {"currency": "EUR", "review_cost": 2, "review_capacity": 200},
                },
            ]
        },
    )

    candidate: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra=CANDIDATE_SCHEMA,
        description="Rules (as POST /policies takes them) with optional score_weights, or "
        "policy knobs: amount_threshold, high_amount_decline_prob, base_decline_prob, "
        "score_threshold, velocity_limit, weight_device, weight_ip, weight_amount, "
        "weight_velocity.",
    )
    filters: RowFilter = Field(default_factory=RowFilter)
    costs: CostModel = Field(
        default_factory=CostModel,
        description="The cost model both policies are priced with, as POST /compare takes it.",
    )


def candidate_policy(engine: Engine, candidate: dict[str, Any], scope: str = "candidate") -> Policy:
    """The candidate as a checked draft policy; invalid input raises InvalidRequestError or
    RuleError (fields prefixed ``<scope>.``)."""
    if "rules" in candidate:
        return _rules_candidate(engine, candidate, scope)
    for name, knob in candidate.items():
        if isinstance(knob, bool | str):  # lax mode would take true as 1 and "0.5" as 0.5
            field = f"{scope}.{name}"
            raise InvalidRequestError(
                field, f"{quoted_field(field)} must be a JSON number or null."
            )
    base = engine.active_policy().knobs or Knobs()
    try:
        return Policy.from_knobs(base, **candidate)
    except ValidationError as exc:
        raise InvalidRequestError(*describe_first(exc, prefix=(scope,), root=scope)) from None


def _rules_candidate(engine: Engine, candidate: dict[str, Any], scope: str) -> Policy:
    unknown = sorted(set(candidate) - {"rules", "score_weights", "challenge"})
    if unknown:
        field = f"{scope}.{unknown[0]}"
        raise InvalidRequestError(
            field,
            f"{quoted_field(field)} is not allowed beside rules (rules, score_weights, challenge).",
        )
    try:
        weights = ScoreWeights.model_validate(candidate.get("score_weights", {}))
    except ValidationError as exc:
        raise InvalidRequestError(
            *describe_first(exc, prefix=(scope, "score_weights"), root=scope)
        ) from None
    try:
        challenge = ChallengeModel.model_validate(candidate.get("challenge", {}))
    except ValidationError as exc:
        raise InvalidRequestError(
            *describe_first(exc, prefix=(scope, "challenge"), root=scope)
        ) from None
    try:
        return engine.draft_policy(candidate["rules"], weights, challenge=challenge)
    except RuleError as error:
        raise error.under(scope) from None


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
    compare it with the active policy (approval, fraud caught, losses, false declines), both
    priced with the cost model."""
    candidate = candidate_policy(engine, body.candidate)
    return await heavy.run(engine.backtest, candidate, body.filters, body.costs)
