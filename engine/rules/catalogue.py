"""The attribute catalogue: every ``:attribute:`` a rule can read, defined once.

Each attribute has a type (``number``, ``text``, ``bool``, ``card``), a kind (where its value
comes from: ``request``, ``feature``, ``history``, ``time``, ``random``), a definition a person
understands, and how each evaluator reads it: the numpy input array (:attr:`Attribute.dtype`
says what the array must hold) and the SQL expression over a stored ``transactions`` row.
History attributes are point in time: event time, the payment itself excluded.

Numbers come in three forms. ``money`` (hundredths, exact) and ``integer`` compare exactly with
literals; ``double`` compares as a float64. See ``docs/rules.md`` for the semantics.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Any, Literal

from engine.currencies import ISO_4217
from engine.features import CHANNELS
from engine.fx import REFERENCE_DATE
from engine.geo import GEOIP_REGIONS, ISO_COUNTRIES

AttrType = Literal["number", "text", "bool", "card"]
AttrKind = Literal["request", "feature", "history", "time", "random"]
NumberForm = Literal["money", "integer", "double"]

MONEY_SCALE = 2  # money is exact to the hundredth of a unit: stored DECIMAL(18, 2)
BIN_ATTRIBUTE = "card_bin"  # text for rules, stored as an INTEGER: compared as a number inside


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute. ``sql`` is a DuckDB expression over a ``transactions`` row (None when
    the caller supplies it: ``risk_score`` depends on the policy's score weights); ``nullable``
    says whether its value can be missing (a NULL in SQL, a missing mask in numpy)."""

    name: str
    type: AttrType
    kind: AttrKind
    definition: str
    example: str
    dtype: str
    sql: str | None
    nullable: bool = False
    form: NumberForm | None = None
    vocabulary: Set[str] | None = None  # the closed set of values of a text attribute

    @property
    def scale(self) -> int | None:
        """Decimal places of an exact number's integer input (2 for money, 0 for integers);
        None for doubles and non-numbers."""
        return {"money": MONEY_SCALE, "integer": 0}.get(self.form or "")

    def describe(self) -> dict[str, Any]:
        """The JSON-ready description ``GET /attributes`` serves."""
        return {
            "name": self.name,
            "type": self.type,
            "kind": self.kind,
            "definition": self.definition,
            "example": self.example,
        }


_HOURS = "event time, this payment excluded"
# Whether a row has a device, read from an INTEGER column that both writers and the v10 back-fill
# leave NULL exactly when there is no device id: testing the VARCHAR device_id for NULL makes
# DuckDB scan the dictionary-compressed strings (the costliest column of a 20-rule backtest).
_HAS_DEVICE_SQL = "(payments_per_device_1h IS NOT NULL)"
_NO_DEVICE = "Missing when the payment has no device id."
_NO_COUNTRY = "Missing when none was sent."
_MONEY = "int64 hundredths (minor units)"
_PENCE = "int64 pence, with a missing mask"
_INT = "int64"
_DOUBLE = "float64"
_TEXT = "str or object array"

_ATTRIBUTES = (
    Attribute(
        "amount", "number", "request",
        "The payment's amount in its own currency, in units (12.50 is twelve and a half), "
        "exact to the hundredth. Compare with care across currencies: :amount_in_gbp: is "
        "comparable.",
        ":amount: > 500", _MONEY, "amount", form="money",
    ),
    Attribute(
        "amount_in_gbp", "number", "request",
        f"The amount in GBP, converted with the fixed ECB reference rates of {REFERENCE_DATE} "
        "(engine/fx.py), exact to the penny (half to even). Missing when the currency has no "
        "reference rate.",
        ":amount_in_gbp: >= 1000", _PENCE, "amount_in_gbp", nullable=True, form="money",
    ),
    Attribute(
        "currency", "text", "request",
        "The payment's ISO 4217 currency code, upper case, e.g. 'GBP'.",
        ":currency: in ('GBP', 'EUR')", _TEXT, "CAST(currency AS VARCHAR)",
        vocabulary=ISO_4217,
    ),
    Attribute(
        "merchant", "text", "request",
        "The merchant identifier as sent with the payment (compared exactly, case-sensitive).",
        ":merchant: in @risky_merchants", _TEXT, "merchant",
    ),
    Attribute(
        "channel", "text", "request",
        "How the card was presented: " + ", ".join(f"'{c}'" for c in sorted(CHANNELS)) + ".",
        ":channel: = 'ecommerce'", _TEXT, "CAST(channel AS VARCHAR)",
        vocabulary=frozenset(CHANNELS),
    ),
    Attribute(
        "device_id", "text", "request",
        f"The device identifier sent with the payment. {_NO_DEVICE}",
        ":device_id: in @blocked_devices", f"{_TEXT}, with a missing mask", "device_id",
        nullable=True,
    ),
    Attribute(
        "has_device", "bool", "request",
        "True when the payment carries a device id.",
        "not :has_device:", "bool", _HAS_DEVICE_SQL,
    ),
    Attribute(
        BIN_ATTRIBUTE, "text", "request",
        "The card's BIN: its first six digits, as text ('412345'; leading zeros kept).",
        ":card_bin: in @risky_bins", "int64 (the six digits as a number)",
        "lpad(CAST(card_bin AS VARCHAR), 6, '0')",
    ),
    Attribute(
        "card", "card", "request",
        "The card, by its keyed fingerprint; only usable with in / not in a card list (lists "
        "take card numbers and keep fingerprints only).",
        ":card: in @stolen_cards", "16-byte fingerprints: numpy 'S16' array", "card_hash",
    ),
    Attribute(
        "merchant_category", "text", "request",
        "The merchant's ISO 18245 merchant category code as four digits ('5411'; leading zeros "
        "kept), as sent with the payment (any four digits; docs/world.md lists the simulated "
        "categories). Missing when none was sent.",
        ":merchant_category: in ('5816', '7995')", f"{_TEXT}, with a missing mask",
        "lpad(CAST(merchant_category AS VARCHAR), 4, '0')", nullable=True,
    ),
    Attribute(
        "merchant_country", "text", "request",
        f"The merchant's country, ISO 3166-1 alpha-2 ('GB'), as sent. {_NO_COUNTRY}",
        ":merchant_country: != 'GB'", f"{_TEXT}, with a missing mask", "merchant_country",
        nullable=True, vocabulary=ISO_COUNTRIES,
    ),
    Attribute(
        "card_country", "text", "request",
        "The card's issuing country, ISO 3166-1 alpha-2, from its BIN in the simulated test "
        "BIN table (engine/data/test_bins.csv). Missing for a BIN the table does not list.",
        ":card_country: in ('US', 'CA')", f"{_TEXT}, with a missing mask", "card_country",
        nullable=True, vocabulary=ISO_COUNTRIES,
    ),
    Attribute(
        "ip_country", "text", "request",
        "The country of the payment's IP address in the GeoLite2 country data geoip2fast ships "
        "(ISO 3166-1 alpha-2, or the data's 'EU' / 'ASIA' for addresses it places no further). "
        "Missing without an IP address, for private, reserved or unknown addresses and for "
        "IPv6 (the data is IPv4 only).",
        ":ip_country: != :card_country:", f"{_TEXT}, with a missing mask", "ip_country",
        nullable=True, vocabulary=GEOIP_REGIONS,
    ),
    Attribute(
        "is_cross_border", "bool", "request",
        "True when the card's issuing country and the merchant's country are both known and "
        "differ; false when either is missing (never missing itself).",
        ":is_cross_border: and :channel: = 'ecommerce'", "bool",
        "coalesce(card_country <> merchant_country, FALSE)",
    ),
    Attribute(
        "spending_velocity", "number", "feature",
        "min(n / 10, 1), n = the card's payments in the hour before this one "
        f"({_HOURS}); between 0 and 1.",
        ":spending_velocity: >= 0.5", _DOUBLE, "spending_velocity", form="double",
    ),
    Attribute(
        "device_trust_score", "number", "feature",
        "How familiar the device is with this card, between 0 and 1: familiarity = 0.3 + 0.7 x "
        "(1 - exp(-S/3)) x min(1, tenure/14 days) x exp(-idle/60 days), divided by 1 + 0.5 x "
        "the other cards seen on the device before; 0.1 without a device. S counts the card's "
        "earlier payments on the device that were approved, are at least 24 h old and not "
        "disputed (fraud or friendly_fraud) by the payment's time; tenure runs from the first "
        "of them, idle from the pair's last payment. So 0.3 for a device new to the card or "
        "used only in the last day, whatever it did.",
        ":device_trust_score: < 0.2", _DOUBLE, "device_trust_score", form="double",
    ),
    Attribute(
        "ip_risk_score", "number", "feature",
        "How unverifiable the payment's origin is, between 0 and 1: a base per channel (pos and "
        "contactless 0.05, mobile 0.20, ecommerce 0.30, moto 0.45), +0.25 without a device, "
        "+0.25 when the currency differs from the card's first payment's, at most 1.",
        ":ip_risk_score: >= 0.5", _DOUBLE, "ip_risk_score", form="double",
    ),
    Attribute(
        "risk_score", "number", "feature",
        "The policy's risk score between 0 and 1: its score weights applied to (1 - device "
        "trust), IP risk, the amount and spending velocity. A backtest over a run whose "
        "policy had the same weights reads the score each payment was decided with; other "
        "weights score the stored features again.",
        ":risk_score: >= 0.8", _DOUBLE, None, form="double",
    ),
    Attribute(
        "payments_per_card_1h", "number", "history",
        f"The card's payments in the hour before this one ({_HOURS}).",
        ":payments_per_card_1h: >= 5", _INT, "velocity_count", form="integer",
    ),
    Attribute(
        "payments_per_card_24h", "number", "history",
        f"The card's payments in the 24 hours before this one ({_HOURS}).",
        ":payments_per_card_24h: > 20", _INT, "payments_per_card_24h", form="integer",
    ),
    Attribute(
        "amount_per_card_24h", "number", "history",
        "The total in GBP of the card's payments in the 24 hours before this one "
        f"({_HOURS}); payments in a currency without a reference rate add 0.",
        ":amount_per_card_24h: + :amount_in_gbp: > 2000", _PENCE, "amount_per_card_24h",
        nullable=True, form="money",
    ),
    Attribute(
        "payments_per_device_1h", "number", "history",
        f"Payments on this device, any card, in the hour before this one ({_HOURS}). "
        + _NO_DEVICE,
        ":payments_per_device_1h: >= 10", f"{_INT}, with a missing mask",
        "payments_per_device_1h", nullable=True, form="integer",
    ),
    Attribute(
        "cards_per_device_24h", "number", "history",
        f"Distinct cards used on this device in the 24 hours before this payment ({_HOURS}). "
        + _NO_DEVICE,
        ":cards_per_device_24h: >= 5", f"{_INT}, with a missing mask", "cards_per_device_24h",
        nullable=True, form="integer",
    ),
    Attribute(
        "devices_per_card_7d", "number", "history",
        f"Distinct devices this card used in the 7 days before this payment ({_HOURS}).",
        ":devices_per_card_7d: > 3", _INT, "devices_per_card_7d", form="integer",
    ),
    Attribute(
        "is_new_device", "bool", "history",
        "True when the payment has a device and this card never used it before; false "
        "without a device.",
        ":channel: = 'ecommerce' and :is_new_device:", "bool",
        f"({_HAS_DEVICE_SQL} AND device_seen_count = 0)",
    ),
    Attribute(
        "card_age_days", "number", "history",
        "Whole days since the card's first payment (0 on its first day and for its first "
        "payment).",
        ":card_age_days: < 1", _INT, "card_age_days", form="integer",
    ),
    Attribute(
        "hour_of_day", "number", "time",
        "The hour of the payment's event time in UTC, 0 to 23.",
        ":hour_of_day: < 6", f"{_INT} (hour_and_weekday(t_ms) derives it)",
        "CAST(hour(created_at) AS BIGINT)", form="integer",
    ),
    Attribute(
        "day_of_week", "number", "time",
        "The ISO weekday of the payment's event time in UTC: 1 = Monday ... 7 = Sunday.",
        ":day_of_week: >= 6", f"{_INT} (hour_and_weekday(t_ms) derives it)",
        "CAST(isodow(created_at) AS BIGINT)", form="integer",
    ),
    Attribute(
        "random", "number", "random",
        "The payment's stored uniform draw in [0, 1): the same number in live traffic, bulk "
        "runs and backtests, so a rule such as :random: < 0.1 re-decides history identically.",
        ":random: < 0.10", _DOUBLE, "draw", form="double",
    ),
)  # fmt: skip

CATALOGUE: dict[str, Attribute] = {attribute.name: attribute for attribute in _ATTRIBUTES}


def attributes_json() -> list[dict[str, Any]]:
    """The catalogue as ``GET /attributes`` serves it: one object per attribute, in catalogue
    order, with ``name``, ``type``, ``kind``, ``definition`` and ``example``."""
    return [attribute.describe() for attribute in _ATTRIBUTES]
