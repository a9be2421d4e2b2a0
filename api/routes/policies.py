"""Policy versions: read them, store a new one as a draft, activate one (admin); shadow live
traffic with one and route a share of it to a challenger (admin)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic.fields import FieldInfo

from api.deps import AdminDep, EngineDep
from api.errors import ErrorResponse
from api.exact_json import ExactJsonRoute
from api.heavy import HeavyDep
from engine.challenge import ChallengeModel
from engine.costs import CostModel
from engine.errors import InvalidRequestError
from engine.experiments import RouteInfo, ShadowInfo, ShadowReport
from engine.models import Money, UtcDateTime
from engine.policy import Policy, ScoreWeights
from engine.service import Engine
from engine.validation import describe_first

# Bodies are read with exact numbers: the score weights' amount_scale is money.
router = APIRouter(tags=["policies"], route_class=ExactJsonRoute)
Version = Annotated[int, Path(ge=1, le=2**31 - 1, description="A stored policy version.")]
_NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such policy version."}}
_ADMIN = {
    401: {"model": ErrorResponse, "description": "Missing or wrong admin token."},
    403: {"model": ErrorResponse, "description": "No admin token is configured."},
    429: {"model": ErrorResponse, "description": "Too many wrong admin tokens; Retry-After."},
}


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


class ExperimentsOut(BaseModel):
    """The shadow and route in force after the change."""

    shadow: ShadowInfo | None = Field(description="None when nothing shadows.")
    route: RouteInfo | None = Field(description="None when nothing is routed.")


class RouteIn(BaseModel):
    """The share of live cards to route to the challenger."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"share": 0.1}]})

    share: float = Field(
        ge=0,
        le=1,
        description="In [0, 1]: cards whose routing hash is below it are decided by the "
        "challenger; 0 ends the route.",
    )

    @field_validator("share", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ValueError("must be a number between 0 and 1")
        return value


def _experiments(engine: Engine) -> ExperimentsOut:
    report = ShadowReport.of(engine.experiments.live, None)
    return ExperimentsOut(shadow=report.shadow, route=report.route)


def _optional(field: FieldInfo) -> tuple[Any, FieldInfo]:
    """A CostModel field as an optional query parameter: its type, bounds and schema, absent by
    default (the model's own default then applies)."""
    optional = copy.copy(field)
    optional.default = None
    return field.annotation | None, optional


CostQuery = create_model(
    "CostQuery",
    __config__=ConfigDict(extra="forbid"),
    __doc__="The cost model as query parameters, one per CostModel field (absent: its "
    "default); any other parameter answers 400.",
    **{name: _optional(field) for name, field in CostModel.model_fields.items()},
)


def query_costs(query: BaseModel) -> CostModel:
    """The :class:`CostModel` the query parameters give (read from text by FastAPI with the
    model's own types and bounds); a value the model still refuses raises InvalidRequestError
    naming its parameter."""
    try:
        return CostModel.model_validate(query.model_dump(exclude_none=True))
    except ValidationError as exc:
        raise InvalidRequestError(*describe_first(exc)) from None


@router.get(
    "/policies/shadow",
    response_model=ShadowReport,
    responses={400: {"model": ErrorResponse, "description": "Invalid or unknown parameter."}},
)
async def shadow_report(
    query: Annotated[CostQuery, Query()],  # type: ignore[valid-type]
    engine: EngineDep,
    heavy: HeavyDep,
) -> ShadowReport:
    """The shadow and route in force, and the shadow compared with what was enforced on the
    live payments it decided since it started (POST /compare's metrics and intervals), priced
    with the cost model its query parameters give (``?review_capacity=200&currency=EUR``...;
    the default model's values where absent)."""
    return await heavy.run(engine.shadow_report, query_costs(query))


@router.delete(
    "/policies/shadow", response_model=ExperimentsOut, dependencies=[AdminDep], responses=_ADMIN
)
async def stop_shadow(engine: EngineDep) -> ExperimentsOut:
    """Stop shadowing (admin token; audited). Answers 200 when nothing shadowed too."""
    await run_in_threadpool(engine.stop_shadow)
    return _experiments(engine)


@router.post(
    "/policies/{version}/shadow",
    response_model=ExperimentsOut,
    dependencies=[AdminDep],
    responses={**_NOT_FOUND, **_ADMIN},
)
async def start_shadow(version: Version, engine: EngineDep) -> ExperimentsOut:
    """Shadow every live payment with this version from now on (admin token; audited): it
    decides with the same attributes and draws, its decision is stored, never enforced. One
    shadow at a time: this replaces any other."""
    await run_in_threadpool(engine.start_shadow, version)
    return _experiments(engine)


@router.post(
    "/policies/{version}/route",
    response_model=ExperimentsOut,
    dependencies=[AdminDep],
    responses={
        **_NOT_FOUND,
        **_ADMIN,
        400: {"model": ErrorResponse, "description": "share missing or outside [0, 1]."},
    },
)
async def route_policy(version: Version, body: RouteIn, engine: EngineDep) -> ExperimentsOut:
    """Route a share of live cards to this challenger version (admin token; audited): a card
    whose routing hash is below the share is decided, and enforced, by it. share 0 ends it."""
    await run_in_threadpool(engine.route, version, body.share)
    return _experiments(engine)


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
    responses={**_NOT_FOUND, **_ADMIN},
)
async def activate_policy(
    version: Version, engine: EngineDep, body: ActivateIn | None = None
) -> PolicyOut:
    """Make a stored version the active policy (admin token); an audit entry records it."""
    note = body.note if body is not None else "activated"
    return _view(engine, await run_in_threadpool(engine.activate_version, version, note))
