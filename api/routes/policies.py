"""Policy versions: read them, store a new one as a draft, activate one (admin)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminDep, EngineDep
from api.errors import ErrorResponse
from api.exact_json import ExactJsonRoute
from engine.challenge import ChallengeModel
from engine.models import Money, UtcDateTime
from engine.policy import Policy, ScoreWeights
from engine.service import Engine

# Bodies are read with exact numbers: the score weights' amount_scale is money.
router = APIRouter(tags=["policies"], route_class=ExactJsonRoute)
Version = Annotated[int, Path(ge=1, le=2**31 - 1, description="A stored policy version.")]
_NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such policy version."}}


class RuleOut(BaseModel):
    """One rule of a stored policy."""

    name: str
    action: Literal["allow", "challenge", "block", "review"]
    when: str
    flags_risk: bool = Field(
        True, description="false: the rule's match is never reported as risk_flag."
    )


class ScoreWeightsOut(BaseModel):
    """The risk score's weights (money as a JSON number, as everywhere)."""

    device: float
    ip: float
    amount: float
    velocity: float
    amount_scale: Money = Field(description="The amount at which the amount part reaches 1.")


class PolicyOut(BaseModel):
    """A stored policy version."""

    version: int
    created_at: UtcDateTime
    active: bool
    note: str
    rules: list[RuleOut]
    score_weights: ScoreWeightsOut
    lists: dict[str, int] = Field(description="The version of every list the rules read.")
    challenge: ChallengeModel = Field(
        description="The pass probabilities the policy's challenge rules decide with."
    )

    @staticmethod
    def of(policy: Policy, active_version: int) -> PolicyOut:
        """The API view of ``policy``."""
        return PolicyOut.model_validate(policy.public(policy.version == active_version))


# What JSON Schema can say of rules; the compiler checks the rest (names, conditions, lists).
RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "action": {"enum": ["allow", "challenge", "block", "review"]},
        "when": {"type": "string", "minLength": 1, "maxLength": 4000},
        "flags_risk": {"type": "boolean"},
    },
    "required": ["name", "action", "when"],
    "additionalProperties": False,
}
RULES_SCHEMA: dict[str, Any] = {"items": RULE_SCHEMA, "minItems": 1, "maxItems": 200}


class PolicyIn(BaseModel):
    """A policy to store: ordered rules, optional score weights and note."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "rules": [
                        {
                            "name": "New device, big ecommerce payment",
                            "action": "block",
                            "when": ":channel: = 'ecommerce' and :amount_in_gbp: > 300 "
                            "and :is_new_device:",
                        }
                    ],
                    "note": "card-not-present control",
                }
            ]
        },
    )

    rules: list[Any] = Field(
        description='1–200 rules {"name", "action": "allow"|"challenge"|"block"|"review", '
        '"when"}; GET /attributes lists what a condition can read.',
        json_schema_extra=RULES_SCHEMA,
    )
    score_weights: ScoreWeights | None = None
    challenge: ChallengeModel | None = Field(
        None,
        description="Pass probabilities of the policy's challenge rules (3-D Secure step-up); "
        "left out: the documented defaults (README, The challenge model).",
    )
    note: str = Field("", max_length=500)


class ActivateIn(BaseModel):
    """Why the version is activated (kept in the audit trail)."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field("activated", max_length=500)


def _view(engine: Engine, policy: Policy) -> PolicyOut:
    return PolicyOut.of(policy, engine.active_policy().version)


@router.get("/policies", response_model=list[PolicyOut])
async def list_policies(engine: EngineDep) -> list[PolicyOut]:
    """Every stored policy version, newest first."""
    policies = await run_in_threadpool(engine.policy_history)
    return [_view(engine, p) for p in policies]


@router.get("/policies/active", response_model=PolicyOut)
async def active_policy(engine: EngineDep) -> PolicyOut:
    """The policy new payments are decided with."""
    return _view(engine, engine.active_policy())


@router.get("/policies/{version}", response_model=PolicyOut, responses=_NOT_FOUND)
async def get_policy(version: Version, engine: EngineDep) -> PolicyOut:
    """One stored policy version."""
    return _view(engine, await run_in_threadpool(engine.policy, version))


@router.post(
    "/policies",
    response_model=PolicyOut,
    status_code=201,
    responses={
        400: {
            "model": ErrorResponse,
            "description": "Invalid rules: names the field (rules[2].when) with line and column.",
        }
    },
)
async def create_policy(body: PolicyIn, engine: EngineDep) -> PolicyOut:
    """Check and store a policy as a new version; nothing becomes active."""
    stored = await run_in_threadpool(
        engine.create_policy, body.rules, body.score_weights, body.note, body.challenge
    )
    return _view(engine, stored)


@router.post(
    "/policies/{version}/activate",
    response_model=PolicyOut,
    dependencies=[AdminDep],
    responses={
        **_NOT_FOUND,
        401: {"model": ErrorResponse, "description": "Missing or wrong admin token."},
        403: {"model": ErrorResponse, "description": "No admin token is configured."},
        429: {"model": ErrorResponse, "description": "Too many wrong tokens; Retry-After."},
    },
)
async def activate_policy(
    version: Version, engine: EngineDep, body: ActivateIn | None = None
) -> PolicyOut:
    """Make a stored version the active policy (admin token); an audit entry records it."""
    note = body.note if body is not None else "activated"
    return _view(engine, await run_in_threadpool(engine.activate_version, version, note))
