"""Policies: immutable, validated, versioned values holding every decision knob."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.validation import plain_decimal_text

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Weight = Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False)]


class Policy(BaseModel):
    """Every knob of a decision. ``version`` is 0 for a candidate not yet stored.

    The default values are the original heuristic: payments above ``amount_threshold`` are
    declined with probability ``high_amount_decline_prob``, the rest with ``base_decline_prob``.
    ``score_threshold`` and ``velocity_limit`` are opt-in rules (None = off).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(0, ge=0)
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

    @model_validator(mode="after")
    def _weights_not_all_zero(self) -> Policy:
        if self.weight_device + self.weight_ip + self.weight_amount + self.weight_velocity <= 0:
            raise ValueError("At least one score weight must be positive")
        return self

    @property
    def amount_threshold_cents(self) -> int:
        """The threshold in minor units, for exact integer comparison."""
        return int(self.amount_threshold * 100)

    def knobs(self) -> dict[str, object]:
        """The decision parameters without the version (what makes two policies equal)."""
        return self.model_dump(mode="json", exclude={"version"})

    def same_rules_as(self, other: Policy) -> bool:
        """True when both policies decide identically (versions aside)."""
        return self.knobs() == other.knobs()


DEFAULT_POLICY = Policy()
