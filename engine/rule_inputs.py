"""A batch's rule attributes in the forms the numpy evaluator reads, for both numpy paths.

The live path (a group of requests) and the bulk generator (a chunk of simulated rows) describe
their batch with the same :class:`BatchFacts`; :func:`rule_inputs` turns it into the inputs and
missing masks of exactly the attributes a policy reads, one definition per attribute, so both
paths feed the compiled rules identical values (their SQL twins are the catalogue's ``sql``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from engine.features import NO_GBP, FeatureColumns, HistoryCounts
from engine.rules import Coded, hour_and_weekday

Text = np.ndarray | Coded


@dataclass(frozen=True, slots=True)
class BatchFacts:
    """What is known about a batch at decision time. Text attributes (``currency``,
    ``merchant``, ``channel``, ``device_id``, ``card`` and the world's ``merchant_category``,
    ``merchant_country``, ``card_country``, ``ip_country``) are produced on demand: a bulk chunk
    decodes a million-device table only when a rule reads devices. A world attribute is missing
    where its value is None (object arrays) or its code is negative (:class:`Coded`)."""

    amount_cents: np.ndarray  # int64
    gbp_pence: np.ndarray  # int64, NO_GBP without a reference rate
    has_device: np.ndarray  # bool
    card_bin: np.ndarray  # int64, the BIN's six digits as a number
    counts: HistoryCounts
    features: FeatureColumns
    score: np.ndarray  # float64, the policy's risk score
    t_ms: np.ndarray  # int64 event time (epoch milliseconds, UTC)
    draw: np.ndarray  # float64, the stored uniform draw
    text: dict[str, Callable[[], Text]]


def rule_inputs(
    facts: BatchFacts, names: Iterable[str]
) -> tuple[dict[str, np.ndarray | Coded], dict[str, np.ndarray]]:
    """The inputs and missing masks of the attributes ``names`` (catalogue names)."""
    values: dict[str, np.ndarray | Coded] = {}
    missing: dict[str, np.ndarray] = {}
    no_device = None
    for name in names:
        if name in facts.text:
            values[name] = facts.text[name]()
        else:
            values[name] = _VALUES[name](facts)
        if name in _MISSING_WITHOUT_DEVICE:
            no_device = ~facts.has_device if no_device is None else no_device
            missing[name] = no_device
        elif name == "amount_in_gbp":
            missing[name] = facts.gbp_pence == NO_GBP
        elif name in WORLD_TEXT:
            missing[name] = _absent(values[name])
    return values, missing


WORLD_TEXT = frozenset({"merchant_category", "merchant_country", "card_country", "ip_country"})


def _absent(value: np.ndarray | Coded) -> np.ndarray:
    """Where a world attribute has no value."""
    if isinstance(value, Coded):
        return np.asarray(value.codes) < 0
    return np.equal(value, None)


def _cross_border(facts: BatchFacts) -> np.ndarray:
    """The card's issuing country is known, the merchant's too, and they differ."""
    card, merchant = facts.text["card_country"](), facts.text["merchant_country"]()
    if isinstance(card, Coded) and isinstance(merchant, Coded) and card.labels is merchant.labels:
        return (card.codes >= 0) & (merchant.codes >= 0) & (card.codes != merchant.codes)
    card_values, merchant_values = (_decoded(v) for v in (card, merchant))
    known = ~np.equal(card_values, None) & ~np.equal(merchant_values, None)
    return known & (card_values != merchant_values)


def _decoded(value: np.ndarray | Coded) -> np.ndarray:
    if isinstance(value, Coded):
        return np.where(np.asarray(value.codes) < 0, None, value.decode())
    return np.asarray(value, dtype=object)


def _hour(facts: BatchFacts) -> np.ndarray:
    return hour_and_weekday(facts.t_ms)[0]


def _weekday(facts: BatchFacts) -> np.ndarray:
    return hour_and_weekday(facts.t_ms)[1]


TRUST_ATTRIBUTES = frozenset({"device_trust_score", "risk_score"})
"""The attributes that read device trust (the risk score weighs it): a policy reading none of
them decides a bulk chunk without waiting for its trust (engine/simulation/runner.py)."""
_MISSING_WITHOUT_DEVICE = frozenset({"device_id", "payments_per_device_1h", "cards_per_device_24h"})
_VALUES: dict[str, Callable[[BatchFacts], np.ndarray]] = {
    "amount": lambda f: f.amount_cents,
    "amount_in_gbp": lambda f: np.where(f.gbp_pence == NO_GBP, 0, f.gbp_pence),
    "has_device": lambda f: f.has_device,
    "card_bin": lambda f: f.card_bin,
    "spending_velocity": lambda f: f.features.spending_velocity,
    "device_trust_score": lambda f: f.features.device_trust_score,
    "ip_risk_score": lambda f: f.features.ip_risk_score,
    "risk_score": lambda f: f.score,
    "payments_per_card_1h": lambda f: f.counts.velocity_count,
    "payments_per_card_24h": lambda f: f.counts.payments_per_card_24h,
    "amount_per_card_24h": lambda f: f.counts.amount_per_card_24h,
    "payments_per_device_1h": lambda f: f.counts.payments_per_device_1h,
    "cards_per_device_24h": lambda f: f.counts.cards_per_device_24h,
    "devices_per_card_7d": lambda f: f.counts.devices_per_card_7d,
    "is_new_device": lambda f: f.has_device & (f.counts.device_seen_count == 0),
    "card_age_days": lambda f: f.counts.card_age_days,
    "hour_of_day": _hour,
    "day_of_week": _weekday,
    "random": lambda f: f.draw,
    "is_cross_border": _cross_border,
}
