"""The cost model: what a policy's decisions cost, in one reporting currency.

A policy costs money seven ways, each priced by a :class:`CostModel` field (amounts in the
model's reporting ``currency``, converted from GBP with the fixed reference rates of
:mod:`engine.fx`):

=====================  ===========================================================================
fraud loss             the amount of every approved fraud payment (the goods are gone)
chargeback fees        ``chargeback_fee`` per approved fraud payment (each comes back as a
                       chargeback and the acquirer charges for handling it)
false-decline cost     ``false_decline_margin`` x the amount of every declined legitimate
                       payment (the margin of the lost sale), plus ``churn_cost_per_card`` per
                       distinct card with a declined legitimate payment (customers who leave)
review cost            ``review_cost`` per payment the review team works (an analyst's time)
challenge cost         ``challenge_cost`` per payment a challenge rule sent to a 3-D Secure
                       step-up, whatever its outcome (the authentication provider's fee)
abandonment cost       ``false_decline_margin`` x the amount of every challenged payment whose
                       genuine payer abandoned (the margin of the lost sale, as a false decline)
friendly-fraud loss    the amount plus ``chargeback_fee`` of every approved friendly-fraud payment
                       (the cardholder's own payment, disputed anyway: it comes back as a
                       chargeback exactly like approved fraud, though it is not fraud)
=====================  ===========================================================================

**Friendly fraud** is a genuine payment its cardholder disputes: a simulated row whose
``fraud_scenario`` is ``friendly_fraud`` (``is_fraud`` false), a live row with a
``friendly_fraud`` dispute. It is not fraud: it counts in neither ``fraud`` nor recall, and
declining it is a false decline (priced as one). Approved, it costs the merchant the amount and
the chargeback fee, whatever approved it: the review team sees a genuine cardholder's payment
(nothing to stop), and the cardholder passes a challenge on their own card (the liability shift
covers fraud by others). With ``labels_as_of`` it costs only once its dispute was reported by then
(a simulated friendly-fraud row filed as ``fraud`` is, as the analyst saw it, fraud).

**Challenge** (a rule's ``challenge`` action, :mod:`engine.challenge`): a passed challenge
approves the payment and shifts the liability for fraud to the card issuer, so fraud that passed
one adds no fraud loss and no chargeback fee (``liability_shifted`` counts it); a failed one is
declined (fraud caught); an abandoned one is a lost sale, priced by the abandonment cost (no
churn: the customer walked away, nobody turned them down).

**Review** (a rule's ``review`` action) approves the payment and puts it in the review queue. Each
day the team works at most ``review_capacity`` queued payments of that day, highest risk score
first (all of them when the capacity is not set). A worked fraud payment is stopped: refunded
before any dispute, so it adds no fraud loss and no chargeback fee; a worked genuine payment goes
through. Unworked payments follow their label like any approved payment.

"Fraud" and "legitimate" are the backtest's labels (:func:`engine.backtest.label_sql`: ground
truth, or what was disputed by ``labels_as_of``); unlabelled rows cost nothing. A payment in a
currency without a reference rate has no GBP amount: it adds its count-based costs but no
amount, and ``unpriced`` says how many there were. Amounts are summed exactly in pence and
converted once per total (half to even), so a breakdown is exact to the hundredth.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)

from engine.fx import RATES_PER_EUR, REPORTING_CURRENCY
from engine.models import Money

_CENT = Decimal("0.01")
_PRICE_SCHEMA = {"type": "number", "minimum": 0, "maximum": 1_000_000, "multipleOf": 0.01}
# Decimal inside, a JSON number outside (as engine.models.Money)
_AS_NUMBER = PlainSerializer(lambda value: float(value), return_type=float, when_used="json")
Price = Annotated[Decimal, WithJsonSchema(_PRICE_SCHEMA), _AS_NUMBER]
_SHARE_SCHEMA = {"type": "number", "minimum": 0, "maximum": 1}
Share = Annotated[Decimal, WithJsonSchema(_SHARE_SCHEMA), _AS_NUMBER]


def whole_number(value: Any) -> Any:
    """A before-validator for integer fields read from JSON: JSON Schema's integer includes 2.0
    (pydantic then takes it), but true and "2" are not integers, though lax mode would read them
    as 1 and 2."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    return value


class CostModel(BaseModel):
    """Prices of a policy's consequences, in ``currency``. Defaults are typical of a European
    card-not-present merchant (see README, "The cost model")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = Field(
        REPORTING_CURRENCY,
        description="Reporting currency: an ISO 4217 code with an ECB reference rate "
        "(engine/fx.py).",
        json_schema_extra={"enum": sorted(RATES_PER_EUR)},
    )
    chargeback_fee: Price = Field(
        Decimal("15.00"), ge=0, le=1_000_000, decimal_places=2,
        description="Fee per chargeback: each approved fraud and friendly-fraud payment.",
    )  # fmt: skip
    false_decline_margin: Share = Field(
        Decimal("0.30"), ge=0, le=1,
        description="Share of a declined legitimate payment's amount lost as margin.",
    )  # fmt: skip
    churn_cost_per_card: Price = Field(
        Decimal("5.00"), ge=0, le=1_000_000, decimal_places=2,
        description="Cost per distinct card with a declined legitimate payment.",
    )  # fmt: skip
    review_cost: Price = Field(
        Decimal("3.00"), ge=0, le=1_000_000, decimal_places=2,
        description="Cost per payment the review team works.",
    )  # fmt: skip
    review_capacity: int | None = Field(
        None, ge=0, le=10_000_000,
        description="Payments the review team works per day, in descending risk-score order "
        "(null: every payment sent to review).",
    )  # fmt: skip

    challenge_cost: Price = Field(
        Decimal("0.05"), ge=0, le=1_000_000, decimal_places=2,
        description="Cost per payment sent to a 3-D Secure challenge (the authentication "
        "fee), whatever its outcome.",
    )  # fmt: skip

    @field_validator("review_capacity", mode="before")
    @classmethod
    def _whole_capacity(cls, value: Any) -> Any:
        return whole_number(value)

    @field_validator("currency", mode="before")
    @classmethod
    def _quoted_currency(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().upper()
            if value not in RATES_PER_EUR:
                raise ValueError("must be a currency with an ECB reference rate, such as GBP")
        return value

    @field_validator("chargeback_fee", "false_decline_margin", "churn_cost_per_card",
                     "review_cost", "challenge_cost", mode="before")  # fmt: skip
    @classmethod
    def _numbers_only(cls, value: Any) -> Any:
        # lax mode would read true as 1 and "5" as 5: the schema says a number
        if isinstance(value, bool | str):
            raise ValueError("must be a JSON number")
        return value

    def from_gbp_pence(self, pence: int) -> Decimal:
        """GBP pence in the reporting currency, to the hundredth (half to even)."""
        if self.currency == REPORTING_CURRENCY:
            return Decimal(pence).scaleb(-2)
        per_gbp = RATES_PER_EUR[self.currency] / RATES_PER_EUR[REPORTING_CURRENCY]
        return (Decimal(pence).scaleb(-2) * per_gbp).quantize(_CENT, ROUND_HALF_EVEN)

    def per_gbp_pence(self) -> float:
        """Reporting-currency units per GBP penny, as a float (for resampled estimates)."""
        return float(RATES_PER_EUR[self.currency] / RATES_PER_EUR[REPORTING_CURRENCY]) / 100.0


@dataclass(frozen=True, slots=True)
class Consequences:
    """What a policy's decisions did, counted: the inputs of its costs."""

    approved_fraud: int
    approved_fraud_pence: int
    false_declines: int
    false_decline_pence: int
    false_declined_cards: int
    reviewed: int
    challenged: int = 0
    abandoned: int = 0  # challenged payments whose genuine payer abandoned
    abandoned_pence: int = 0
    liability_shifted: int = 0  # fraud approved after a passed challenge: the issuer's loss
    friendly_fraud: int = 0  # approved friendly-fraud payments: each a chargeback
    friendly_fraud_pence: int = 0


class CostBreakdown(BaseModel):
    """A policy's costs in the reporting currency, each with what it was computed from."""

    currency: str
    fraud_loss: Money = Field(description="Amount of the approved fraud payments.")
    chargeback_fees: Money = Field(description="chargeback_fee x approved fraud payments.")
    lost_margin: Money = Field(
        description="false_decline_margin x the amount of declined legitimate payments."
    )
    churn: Money = Field(description="churn_cost_per_card x cards falsely declined.")
    false_decline_cost: Money = Field(description="lost_margin + churn.")
    review_cost: Money = Field(description="review_cost x payments the review team worked.")
    challenge_cost: Money = Field(description="challenge_cost x payments challenged.")
    abandonment_cost: Money = Field(
        description="false_decline_margin x the amount of challenged payments abandoned."
    )
    friendly_fraud_loss: Money = Field(
        Decimal("0.00"),
        description="The amount of the approved friendly-fraud payments (genuine payments "
        "their cardholder disputed) plus chargeback_fee for each: friendly_fraud chargebacks.",
    )
    total: Money = Field(
        description="fraud_loss + chargeback_fees + false_decline_cost + review_cost + "
        "challenge_cost + abandonment_cost + friendly_fraud_loss."
    )
    approved_fraud: int = Field(
        description="Approved fraud payments not stopped by review and not liability-shifted."
    )
    false_declines: int
    false_declined_cards: int
    reviewed: int
    challenged: int = Field(description="Payments a challenge rule decided.")
    challenge_abandoned: int = Field(description="Challenged payments a genuine payer abandoned.")
    liability_shifted: int = Field(
        description="Fraud approved after a passed challenge: the issuer's loss, not counted."
    )
    # null only in run summaries stored before these amounts were recorded: those still read
    false_decline_amount: Money | None = Field(
        None,
        description="Amount of the declined legitimate payments (what lost_margin is a share "
        "of); null in a run summary stored before it was recorded.",
    )
    abandoned_amount: Money | None = Field(
        None,
        description="Amount of the abandoned challenged payments (abandonment_cost's base); "
        "null in a run summary stored before it was recorded.",
    )
    friendly_fraud: int = Field(0, description="Approved friendly-fraud payments (chargebacks).")


def cost_breakdown(done: Consequences, model: CostModel) -> CostBreakdown:
    """Price ``done`` with ``model``: exact to the hundredth of the reporting currency."""
    fraud_loss = model.from_gbp_pence(done.approved_fraud_pence)
    fees = model.chargeback_fee * done.approved_fraud
    margin = (model.from_gbp_pence(done.false_decline_pence) * model.false_decline_margin).quantize(
        _CENT, ROUND_HALF_EVEN
    )
    churn = model.churn_cost_per_card * done.false_declined_cards
    review = model.review_cost * done.reviewed
    challenge = model.challenge_cost * done.challenged
    abandonment = (
        model.from_gbp_pence(done.abandoned_pence) * model.false_decline_margin
    ).quantize(_CENT, ROUND_HALF_EVEN)
    friendly = (
        model.from_gbp_pence(done.friendly_fraud_pence) + model.chargeback_fee * done.friendly_fraud
    )
    return CostBreakdown(
        currency=model.currency,
        fraud_loss=fraud_loss,
        chargeback_fees=fees,
        lost_margin=margin,
        churn=churn,
        false_decline_cost=margin + churn,
        review_cost=review,
        challenge_cost=challenge,
        abandonment_cost=abandonment,
        friendly_fraud_loss=friendly,
        total=fraud_loss + fees + margin + churn + review + challenge + abandonment + friendly,
        approved_fraud=done.approved_fraud,
        false_declines=done.false_declines,
        false_declined_cards=done.false_declined_cards,
        reviewed=done.reviewed,
        challenged=done.challenged,
        challenge_abandoned=done.abandoned,
        liability_shifted=done.liability_shifted,
        false_decline_amount=model.from_gbp_pence(done.false_decline_pence),
        abandoned_amount=model.from_gbp_pence(done.abandoned_pence),
        friendly_fraud=done.friendly_fraud,
    )
