"""Domain models: what goes into the engine and what comes out of it."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)

from engine.currencies import ISO_4217
from engine.features import CHANNELS
from engine.geo import ISO_COUNTRIES
from engine.merchant_categories import MCC_PATTERN
from engine.pan import refuse_pan
from engine.validation import DIGITS, NOT_ONLY_WHITESPACE, PRINTABLE_ASCII, plain_decimal_text

MAX_AMOUNT = Decimal("1000000.00")

# Money is Decimal inside; JSON carries it as a number whose text is exact (at most 2 decimals).
Money = Annotated[
    Decimal, PlainSerializer(lambda value: float(value), return_type=float, when_used="json")
]
# Timestamps are stored as naive UTC; JSON carries them as RFC 3339 date-times in UTC ("Z"),
# which is what the OpenAPI ``format: date-time`` promises (a zone-less time is not one).
UtcDateTime = Annotated[
    datetime,
    PlainSerializer(
        lambda value: value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC),
        return_type=datetime,
        when_used="json",
    ),
]
Channel = Literal["ecommerce", "mobile", "pos", "contactless", "moto"]
assert set(Channel.__args__) == set(CHANNELS)  # type: ignore[attr-defined]


def _country_enum(schema: dict) -> None:
    """The schema's country list, read from the GeoIP data when a schema is generated (not at
    import: the data loads on first use)."""
    options = schema.get("anyOf", [schema])
    for option in options:
        if option.get("type") == "string":
            option["enum"] = sorted(ISO_COUNTRIES)


class PaymentRequest(BaseModel):
    """A card payment to authorize. The card number is only ever held in memory."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "card_number": "4000001234567890",
                    "amount": 150.75,
                    "currency": "GBP",
                    "merchant": "Amazon",
                    "channel": "ecommerce",
                    "device_id": "ios-demo-device",
                }
            ]
        },
    )

    card_number: str = Field(
        min_length=12, max_length=19, pattern=DIGITS, description="12–19 digits."
    )
    # The documented form is a JSON number (strings such as "10.00" are still accepted from
    # Python callers); the schema states every bound the validator enforces.
    amount: Annotated[
        Decimal,
        WithJsonSchema(
            {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": float(MAX_AMOUNT),
                "multipleOf": 0.01,
            }
        ),
    ] = Field(
        gt=0,
        le=MAX_AMOUNT,
        max_digits=9,
        decimal_places=2,
        allow_inf_nan=False,
        description="Greater than 0, at most 1,000,000.00, at most 2 decimal places.",
    )
    currency: str = Field(
        "GBP",
        min_length=3,
        max_length=3,
        description="ISO 4217 code, e.g. GBP, EUR, USD.",
        json_schema_extra={"enum": sorted(ISO_4217)},
    )
    merchant: str = Field(
        min_length=1,
        max_length=100,
        # At least one character that is not whitespace (leading/trailing whitespace is stripped).
        pattern=NOT_ONLY_WHITESPACE,
        description="Merchant name (surrounding whitespace is removed).",
    )
    channel: Channel = Field("ecommerce", description="How the card was presented.")
    device_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=PRINTABLE_ASCII,
        description="Device fingerprint (printable ASCII, no spaces).",
    )

    # The world (issue 13): optional, absent fields change nothing.
    merchant_category: str | None = Field(
        None,
        json_schema_extra={"pattern": "^[0-9]{4}$"},
        description="The merchant's ISO 18245 merchant category code: four digits as text, "
        "e.g. '5411' (any code of that shape; docs/world.md lists the simulated ones).",
        examples=["5411"],
    )
    merchant_country: str | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="The merchant's country, ISO 3166-1 alpha-2 (e.g. GB; case-insensitive).",
        examples=["GB"],
        json_schema_extra=_country_enum,
    )
    ip_address: Annotated[
        str | None,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "format": "ipv4"},
                    {"type": "string", "format": "ipv6"},
                    {"type": "null"},
                ]
            }
        ),
    ] = Field(
        None,
        description="The payer's IP address (IPv4 or IPv6 text), stored in its canonical form.",
        examples=["81.2.69.160"],
    )

    _plain_amount_text = field_validator("amount", mode="before")(plain_decimal_text)

    @field_validator("merchant_category")
    @classmethod
    def _four_digits(cls, value: str | None) -> str | None:
        if value is not None and not MCC_PATTERN.fullmatch(value):
            raise ValueError("must be four digits, an ISO 18245 merchant category code like 5411")
        return value

    @field_validator("merchant_country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.upper()
        if code not in ISO_COUNTRIES:
            raise ValueError("must be an ISO 3166-1 alpha-2 country code such as GB, DE or US")
        return code

    @field_validator("ip_address")
    @classmethod
    def _an_ip_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("must be an IPv4 or IPv6 address such as 81.2.69.160") from None

    # Free text is stored in full: a card number pasted into it would be too (PCI DSS 3.4).
    _no_card_number = field_validator("merchant", "device_id")(refuse_pan)

    @field_validator("merchant", mode="before")
    @classmethod
    def _raw_length_within_schema(cls, value: object) -> object:
        # Whitespace is stripped before max_length applies; the schema's maxLength is about the
        # text as sent, so check that too.
        if isinstance(value, str) and len(value) > 100:
            raise ValueError("must have at most 100 characters")
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        code = value.upper()
        if code not in ISO_4217:
            raise ValueError("must be an ISO 4217 currency code such as GBP, EUR or USD")
        return code


class Features(BaseModel):
    """The three risk features, each in [0, 1] (definitions in :mod:`engine.features`)."""

    spending_velocity: float
    device_trust_score: float
    ip_risk_score: float


class TransactionAttributes(BaseModel):
    """The payment's point-in-time attributes as stored: what the decision saw. History counts
    use event time and exclude the payment itself (definitions in :mod:`engine.features`)."""

    amount_in_gbp: Money | None = Field(
        description="The amount in GBP at the fixed reference rates (engine/fx.py); null for a "
        "currency without a rate."
    )
    payments_per_card_1h: int = Field(description="The card's earlier payments in 1 h.")
    payments_per_card_24h: int = Field(description="The card's earlier payments in 24 h.")
    amount_per_card_24h: Money = Field(
        description="Those payments' amount_in_gbp summed (no rate: adds 0)."
    )
    payments_per_device_1h: int | None = Field(
        description="Earlier payments on this device (any card) in 1 h; null without a device."
    )
    cards_per_device_24h: int | None = Field(
        description="Distinct cards among the earlier payments on this device in 24 h; null "
        "without a device."
    )
    devices_per_card_7d: int = Field(
        description="Distinct devices among the card's earlier payments in 7 days."
    )
    is_new_device: bool = Field(description="A device id was sent and this card never used it.")
    card_age_days: int = Field(description="Whole days since the card's first payment.")


_DECISION_REASON = (
    "The decline reason (the deciding block rule's name, or 'Challenge abandoned: ...' / "
    "'Challenge failed: ...' when a challenge was not passed); null when approved."
)
_REASON_CODE = (
    "The kind of rule that decided: APPROVED (no rule matched), the original rules' "
    "SCORE_THRESHOLD, VELOCITY_LIMIT, HIGH_AMOUNT, RANDOM_DECLINE, or BLOCKED_BY_RULE, "
    "REVIEW_BY_RULE, ALLOWED_BY_RULE, and for a challenge rule CHALLENGE_PASSED (approved), "
    "CHALLENGE_ABANDONED or CHALLENGE_FAILED (declined)."
)
_RISK_FLAG = (
    "The name of the rule that flagged the payment (e.g. 'High amount flagged by risk "
    "heuristic.'), also when the random draw then approved it; null when no rule flagged it."
)
_FLAGGED = "true exactly when risk_flag is not null."
_ACTION = (
    "The deciding rule's action: allow, challenge, block or review; none when no rule matched."
)
_CHALLENGE = (
    "When a challenge rule decided, the 3-D Secure challenge's outcome: passed (approved, "
    "liability shifted to the issuer), abandoned (a genuine payer gave up: declined) or failed "
    "(a fraudster did not pass: declined; never for live traffic, which has no ground truth); "
    "null when no challenge was made."
)
ChallengeOutcome = Literal["passed", "abandoned", "failed"]
_RULE = "The name of the rule that decided, or null when no rule matched."
_REVIEW = "true when a review rule decided: approved and marked for review."
_MCC = "The ISO 18245 merchant category code (four digits); null: not sent."
_CARD_COUNTRY = "The card's issuing country from its BIN (simulated test BIN table); null: unknown."
_IP_COUNTRY = (
    "The IP address's country (GeoLite2 data shipped by geoip2fast); null: no address, or a "
    "private, reserved, unknown or IPv6 one."
)


class PaymentResult(BaseModel):
    """The decision returned for a payment, once it is committed to disk."""

    transaction_id: uuid.UUID
    status: Literal["Approved", "Declined"]
    decision_reason: str | None = Field(description=_DECISION_REASON)
    reason_code: str = Field(description=_REASON_CODE)
    score: float
    latency_ms: float = Field(
        description="Time from the request reaching the engine to its decision being committed."
    )
    features: Features
    policy_version: int
    risk_flag: str | None = Field(description=_RISK_FLAG)
    flagged_by_risk_rule: bool = Field(description=_FLAGGED)
    action: Literal["allow", "challenge", "block", "review", "none"] = Field(description=_ACTION)
    rule: str | None = Field(description=_RULE)
    review: bool = Field(description=_REVIEW)
    challenge: ChallengeOutcome | None = Field(None, description=_CHALLENGE)
    created_at: UtcDateTime


class StoredTransaction(BaseModel):
    """A transaction as stored, with the card masked."""

    id: uuid.UUID
    card_last4: str
    card_masked: str
    amount: Money
    currency: str
    merchant: str
    channel: str
    device_id: str | None
    status: Literal["Approved", "Declined"]
    risk_flag: str | None = Field(description=_RISK_FLAG)
    created_at: UtcDateTime
    decision_reason: str | None = Field(description=_DECISION_REASON)
    reason_code: str = Field(description=_REASON_CODE)
    flagged_by_risk_rule: bool = Field(description=_FLAGGED)
    action: Literal["allow", "challenge", "block", "review", "none"] = Field(description=_ACTION)
    rule: str | None = Field(description=_RULE)
    review: bool = Field(description=_REVIEW)
    challenge: ChallengeOutcome | None = Field(None, description=_CHALLENGE)
    score: float
    features: Features
    attributes: TransactionAttributes
    draw: float
    challenge_draw: float = Field(description="The second uniform number: a challenge's outcome.")
    policy_version: int
    latency_ms: float | None
    run_id: int | None
    is_fraud: bool | None
    fraud_scenario: str | None
    merchant_category: str | None = Field(description=_MCC)
    merchant_country: str | None = Field(description="ISO 3166-1 alpha-2; null: not sent.")
    card_country: str | None = Field(description=_CARD_COUNTRY)
    ip_address: str | None = Field(description="The IP address sent; null: none.")
    ip_country: str | None = Field(description=_IP_COUNTRY)


class AuditRequest(BaseModel):
    """The request as the audit trail keeps it (card masked)."""

    card: str
    amount: Money
    currency: str
    merchant: str
    channel: str
    device_id: str | None
    merchant_category: str | None = Field(description=_MCC)
    merchant_country: str | None = Field(description="ISO 3166-1 alpha-2; null: not sent.")
    ip_address: str | None = Field(description="The IP address sent; null: none.")


class AuditDecision(BaseModel):
    """The decision as the audit trail keeps it, with the draw the randomized rule used."""

    status: Literal["Approved", "Declined"]
    reason_code: str = Field(description=_REASON_CODE)
    decision_reason: str | None = Field(description=_DECISION_REASON)
    reason_text: str = Field(description="What the reason code means, approvals included.")
    score: float
    risk_flag: str | None = Field(description=_RISK_FLAG)
    flagged_by_risk_rule: bool = Field(description=_FLAGGED)
    action: Literal["allow", "challenge", "block", "review", "none"] = Field(description=_ACTION)
    rule: str | None = Field(description=_RULE)
    review: bool = Field(description=_REVIEW)
    challenge: ChallengeOutcome | None = Field(None, description=_CHALLENGE)
    draw: float = Field(description="The uniform random number the decision used.")
    challenge_draw: float = Field(description="The second uniform number: a challenge's outcome.")


DisputeReason = Literal[
    "fraud", "friendly_fraud", "authorisation", "processing_error", "not_received",
    "not_as_described",
]  # fmt: skip
FRAUD_DISPUTE_REASONS = ("fraud", "friendly_fraud")
"""Dispute reasons that label a payment fraud in backtests (engine/backtest.py)."""


class Dispute(BaseModel):
    """A dispute (chargeback) reported about a stored payment."""

    transaction_id: uuid.UUID
    reason: DisputeReason
    reported_at: UtcDateTime = Field(description="When the dispute was reported (UTC).")
    recorded_at: UtcDateTime = Field(description="When this server stored it (UTC).")


class ShadowDecision(BaseModel):
    """What the shadow policy decided about a live payment: stored, never enforced."""

    policy_version: int = Field(description="The shadow policy version.")
    status: Literal["Approved", "Declined"]
    action: Literal["allow", "challenge", "block", "review", "none"] = Field(description=_ACTION)
    rule: str | None = Field(description=_RULE)
    decision_reason: str | None = Field(description=_DECISION_REASON)
    risk_flag: str | None = Field(description=_RISK_FLAG)
    score: float = Field(description="The shadow policy's risk score.")
    challenge: ChallengeOutcome | None = Field(None, description=_CHALLENGE)


class AuditEntry(BaseModel):
    """One entry of a transaction's audit trail."""

    transaction_id: uuid.UUID
    event: str
    created_at: UtcDateTime
    policy_version: int | None
    request: AuditRequest | None = Field(description="Set on decision entries.")
    decision: AuditDecision | None = Field(description="Set on decision entries.")
    features: dict[str, float]
    latency_ms: float | None
    source: str = Field(description="'live' or 'simulation run N'.")
    dispute: Dispute | None = Field(None, description="Set on transaction.disputed entries.")
    shadow: ShadowDecision | None = Field(
        None,
        description="On a live decision entry: the shadow policy's decision, when one "
        "shadowed the payment (policy_version is the version that decided and was enforced).",
    )


class LatencySummary(BaseModel):
    """Nearest-rank latency percentiles (ms, four significant digits) of one kind of latency."""

    count: int = Field(description="Selected rows that have a latency of this kind.")
    p50: float
    p95: float
    p99: float


class StatsSelection(BaseModel):
    """Which rows the stats cover."""

    source: Literal["all", "live"] | int = Field(
        description="'all', 'live' (payments posted to this server) or a simulation run id."
    )
    since: UtcDateTime | None = Field(description="Inclusive lower bound on created_at.")
    until: UtcDateTime | None = Field(description="Exclusive upper bound on created_at.")
    rows: int = Field(description="Rows selected (the same as total).")


LatencyKind = Literal["measured", "modelled", "mixed"]


class Stats(BaseModel):
    """Totals and latency percentiles of the selected rows, read from one consistent snapshot.

    Live traffic's latency is *measured* (request reaching the engine to its commit); a
    simulation run's is *modelled* (the run's network model). ``p50_latency``/``p95_latency``/
    ``p99_latency`` cover every selected row and ``latency_kind`` says which kind that is;
    ``latency_measured`` and ``latency_modelled`` hold each kind alone."""

    total: int
    approved: int
    declined: int
    approval_rate: float = Field(description="approved / total, 4 decimal places.")
    avg_amount: Money = Field(description="Mean amount, 2 decimal places (currencies mixed).")
    p50_latency: float = Field(description="ms over every selected row; 0.0 without latencies.")
    p95_latency: float = Field(description="ms over every selected row; 0.0 without latencies.")
    p99_latency: float = Field(description="ms over every selected row; 0.0 without latencies.")
    latency_kind: LatencyKind | None = Field(
        description="What p50/p95/p99_latency describe: 'measured' (only live rows), "
        "'modelled' (only simulation rows), 'mixed' (both); null without latencies."
    )
    latency_measured: LatencySummary | None = Field(
        description="Live rows' measured latency; null when the selection has none."
    )
    latency_modelled: LatencySummary | None = Field(
        description="Simulation rows' modelled latency; null when the selection has none."
    )
    selection: StatsSelection
