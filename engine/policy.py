"""Policies: immutable, validated, versioned values — an ordered list of rules plus score weights.

A rule is ``{"name", "action", "when"}`` in the rule language of :mod:`engine.rules`. Today's
nine knobs remain a shorthand: :meth:`Policy.from_knobs` writes them as rules (the default policy
is the original heuristic written that way), and a policy made from knobs remembers them so the
dashboard's knob editor and ``POST /backtest``'s knob form can start from it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from engine.challenge import ChallengeModel
from engine.models import UtcDateTime
from engine.validation import plain_decimal_text

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


def _number_only(value: Any) -> Any:
    """Weights are JSON numbers: lax validation would read true as 1 and "0.5" as 0.5."""
    if isinstance(value, bool | str):
        raise ValueError("must be a number")
    return value


Weight = Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False)]
StrictWeight = Annotated[Weight, BeforeValidator(_number_only)]

# The names of the rules Policy.from_knobs writes: the original decline texts, so a decision made
# by one of them keeps its documented decision_reason and reason_code.
SCORE_RULE = "Risk score at or above the policy's score threshold."
VELOCITY_RULE = "Too many payments on this card within the velocity window."
HIGH_AMOUNT_RULE = "High amount flagged by risk heuristic."
RANDOM_DECLINE_RULE = "Randomized decline to simulate fraud checks."


class Knobs(BaseModel):
    """The original nine decision knobs. Payments above ``amount_threshold`` are declined with
    probability ``high_amount_decline_prob``, the rest with ``base_decline_prob``;
    ``score_threshold`` and ``velocity_limit`` are opt-in rules (None = off)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount_threshold: Decimal = Field(
        Decimal("500"), gt=0, le=Decimal("1000000"), max_digits=12, decimal_places=2
    )
    high_amount_decline_prob: Probability = 0.30
    base_decline_prob: Probability = 0.10
    score_threshold: Probability | None = None
    velocity_limit: int | None = Field(None, ge=1, le=10_000)
    weight_device: Weight = 0.4
    weight_ip: Weight = 0.3
    weight_amount: Weight = 0.2
    weight_velocity: Weight = 0.1

    _plain_threshold_text = field_validator("amount_threshold", mode="before")(plain_decimal_text)


class RuleSpec(BaseModel):
    """One rule as written. ``flags_risk`` (block and review rules): whether the rule's risk
    condition holding is reported as the payment's ``risk_flag`` — false for rules that only
    sample at random (docs/rules.md, "Risk flags")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    action: Literal["allow", "challenge", "block", "review"]
    when: str
    flags_risk: bool = True

    def public(self) -> dict[str, Any]:
        """``{"name", "action", "when"}``, plus ``flags_risk`` only when it is false."""
        shown = self.model_dump(include={"name", "action", "when"})
        return shown if self.flags_risk else {**shown, "flags_risk": False}


class ScoreWeights(BaseModel):
    """The risk score: ``device·(1 − device trust) + ip·IP risk + amount·min(amount /
    amount_scale, 1) + velocity·spending velocity``, clipped to [0, 1]."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: StrictWeight = 0.4
    ip: StrictWeight = 0.3
    amount: StrictWeight = 0.2
    velocity: StrictWeight = 0.1
    amount_scale: Decimal = Field(
        Decimal("1000"),
        gt=0,
        le=Decimal("2000000"),
        max_digits=12,
        decimal_places=2,
        json_schema_extra={"multipleOf": 0.01},  # what decimal_places means, for the schema
    )

    _plain_scale_text = field_validator("amount_scale", mode="before")(plain_decimal_text)

    @model_validator(mode="after")
    def _not_all_zero(self) -> ScoreWeights:
        if self.device + self.ip + self.amount + self.velocity <= 0:
            raise ValueError("At least one score weight must be positive")
        return self

    @property
    def amount_scale_cents(self) -> int:
        """The amount scale in minor units (exact)."""
        return int(self.amount_scale * 100)


class Policy(BaseModel):
    """A decision policy: ``rules`` in order plus ``score_weights``. ``version`` is 0 for a
    draft not yet stored. ``lists`` pins the version of every list the rules read (name →
    version), so a stored decision can be re-derived from its row and its policy version.
    ``knobs`` is set when the policy was written from the nine knobs. ``challenge`` holds the
    pass probabilities its challenge rules decide with (:mod:`engine.challenge`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(0, ge=0)
    created_at: UtcDateTime | None = None
    note: str = ""
    rules: tuple[RuleSpec, ...]
    score_weights: ScoreWeights = ScoreWeights()
    lists: tuple[tuple[str, int], ...] = ()
    knobs: Knobs | None = None
    challenge: ChallengeModel = ChallengeModel()

    @property
    def challenges(self) -> bool:
        """Whether some rule challenges (only then does ``challenge`` decide anything)."""
        return any(rule.action == "challenge" for rule in self.rules)

    @classmethod
    def from_knobs(cls, knobs: Knobs | None = None, **knob_values: Any) -> Policy:
        """Today's knobs written as rules, in the original order (score threshold, velocity
        limit, high amount, randomized decline). ``knob_values`` override fields of ``knobs``
        (default: :class:`Knobs`' defaults, the original heuristic)."""
        k = Knobs(**{**(knobs or Knobs()).model_dump(), **knob_values})
        threshold = format(k.amount_threshold, "f")
        rules = []
        if k.score_threshold is not None:
            rules.append(_rule(SCORE_RULE, f":risk_score: >= {_number(k.score_threshold)}"))
        if k.velocity_limit is not None:
            rules.append(_rule(VELOCITY_RULE, f":payments_per_card_1h: >= {k.velocity_limit}"))
        rules.append(
            _rule(
                HIGH_AMOUNT_RULE,
                f":amount: > {threshold} and :random: < {_number(k.high_amount_decline_prob)}",
            )
        )
        rules.append(
            _rule(
                RANDOM_DECLINE_RULE,
                f":amount: <= {threshold} and :random: < {_number(k.base_decline_prob)}",
                flags_risk=False,
            )
        )
        weights = ScoreWeights(
            device=k.weight_device,
            ip=k.weight_ip,
            amount=k.weight_amount,
            velocity=k.weight_velocity,
            amount_scale=k.amount_threshold * 2,
        )
        return cls(rules=tuple(rules), score_weights=weights, knobs=k)

    def definition(self) -> dict[str, Any]:
        """What the policy decides with (rules, weights, list pins, and its knobs when made from
        them; the challenge model when a rule challenges): two policies with equal definitions
        decide identically. A policy without challenge rules leaves the model out, so
        definitions stored before challenges existed compare equal."""
        parts = {"rules", "score_weights", "lists", "knobs"}
        if self.challenges:
            parts.add("challenge")
        return self.model_dump(mode="json", include=parts)

    def same_rules_as(self, other: Policy) -> bool:
        """True when both policies decide identically (versions and notes aside)."""
        return self.definition() == other.definition()

    def public(self, active: bool) -> dict[str, Any]:
        """The policy as the API shows it."""
        return {
            "version": self.version,
            "created_at": self.created_at,
            "active": active,
            "note": self.note,
            "rules": [rule.public() for rule in self.rules],
            "score_weights": self.score_weights.model_dump(mode="json"),
            "lists": dict(self.lists),
            "challenge": self.challenge.model_dump(mode="json"),
        }


def _number(value: float) -> str:
    """A float as a rule literal: its shortest exact decimal, never in exponent form."""
    return format(Decimal(repr(value)), "f")


def _rule(name: str, when: str, flags_risk: bool = True) -> RuleSpec:
    return RuleSpec(name=name, action="block", when=when, flags_risk=flags_risk)


DEFAULT_POLICY = Policy.from_knobs()
