"""Decided simulation rows → the Arrow table the store appends (no Python loop per row).

Strings are dictionary-encoded against the population's tables (one HMAC per card, one name per
merchant or device); money is built as decimal128(18, 2) straight from integer cents.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.decision import ACTION_LABELS, REASON_NAMES, Decisions
from engine.features import CHANNELS, FeatureColumns, HistoryCounts
from engine.history import attribute_columns
from engine.simulation.outcomes import DISPUTE_REASONS
from engine.simulation.params import LABELLED_SCENARIOS
from engine.simulation.population import CARD_LENGTH, CURRENCIES, TEST_BINS, Population
from engine.simulation.rows import Rows
from engine.simulation.world import WorldColumns, arrow_labels

_BINS = np.array([int(b) for b in TEST_BINS], dtype=np.int32)  # stored as numbers
_CURRENCIES = pa.array(CURRENCIES, pa.string())
_CHANNELS = pa.array(CHANNELS, pa.string())
_STATUS = pa.array(["Approved", "Declined"], pa.string())
_REASONS = pa.array(REASON_NAMES.tolist(), pa.string())
_ACTIONS = pa.array(ACTION_LABELS.tolist(), pa.string())
_SCENARIOS = pa.array(LABELLED_SCENARIOS, pa.string())
_DISPUTE_REASONS = pa.array(DISPUTE_REASONS, pa.string())


def decimal_from_cents(cents: np.ndarray) -> pa.Array:
    """DECIMAL(18, 2) values from int64 minor units, exactly."""
    n = len(cents)
    words = np.empty((n, 2), dtype="<i8")
    words[:, 0] = cents
    words[:, 1] = cents >> 63  # sign extension into the high word
    return pa.Array.from_buffers(pa.decimal128(18, 2), n, [None, pa.py_buffer(words)])


def _coded(codes: np.ndarray, dictionary: pa.Array, missing: np.ndarray | None = None) -> pa.Array:
    indices = pa.array(codes.astype(np.int32, copy=False), pa.int32(), mask=missing)
    return pa.DictionaryArray.from_arrays(indices, dictionary, safe=False)  # codes are in range


def _fixed_bytes(rows: np.ndarray) -> pa.Array:
    """A (n, 16) uint8 array as Arrow binary values (stored as UUIDs by the store)."""
    data = np.ascontiguousarray(rows)
    return pa.Array.from_buffers(pa.binary(16), len(data), [None, pa.py_buffer(data)])


def transactions_table(
    rows: Rows,
    pop: Population,
    counts: HistoryCounts,
    features: FeatureColumns,
    decisions: Decisions,
    run_id: int,
    policy_version: int,
    gbp_pence: np.ndarray,
    world: WorldColumns,
) -> pa.Table:
    """Every ``transactions`` column except ``id`` (allocated at write time, in order);
    ``gbp_pence`` holds each amount in GBP pence (``NO_GBP`` without a rate). A declined row
    keeps its ground truth and loses its dispute: nothing was charged to dispute."""
    n = len(rows)
    card = rows.card
    no_device = rows.device < 0
    unlabelled = rows.scenario < 0
    undisputed = (rows.dispute < 0) | ~decisions.approved
    no_ip = world.ip < 0
    no_ip_country = world.ip_country < 0
    stored = arrow_labels()
    return pa.table(
        {
            "run_id": np.full(n, run_id, dtype=np.int32),
            "created_at": pa.array(rows.t_ms, pa.timestamp("ms")),
            "card_hash": _fixed_bytes(pop.card_digest[card]),
            "card_bin": _BINS[pop.card_bin[card]],
            "card_last4": pop.card_last4[card],
            "card_length": np.full(n, CARD_LENGTH, dtype=np.int8),
            "amount": decimal_from_cents(rows.amount_cents),
            "currency": _coded(rows.currency, _CURRENCIES),
            "merchant": _coded(rows.merchant, pop.merchant_names),
            "channel": _coded(rows.channel, _CHANNELS),
            "device_id": _coded(np.where(no_device, 0, rows.device), pop.device_names, no_device),
            "status": _coded((~decisions.approved).astype(np.int32), _STATUS),
            "reason_code": _coded(decisions.reason, _REASONS),
            "risk_flag": decisions.risk_flag,
            "rule_index": decisions.rule_index,
            "action": _coded(decisions.action, _ACTIONS),
            "flag_rule": decisions.flag_rule,
            "score": decisions.score,
            "spending_velocity": features.spending_velocity,
            "device_trust_score": features.device_trust_score,
            "ip_risk_score": features.ip_risk_score,
            "velocity_count": counts.velocity_count.astype(np.int32),
            "device_seen_count": counts.device_seen_count.astype(np.int32),
            "device_other_cards": counts.device_other_cards.astype(np.int32),
            **attribute_columns(counts, gbp_pence),
            "draw": rows.draw,
            "policy_version": np.full(n, policy_version, dtype=np.int32),
            "latency_ms": rows.latency_ms,
            "is_fraud": rows.is_fraud,
            "label_available_at": pa.array(rows.label_at_ms, pa.timestamp("ms"), mask=undisputed),
            "merchant_category": stored["mcc_number"][pop.merchant_category[rows.merchant]],
            "merchant_country": _coded(pop.merchant_country[rows.merchant], stored["country"]),
            "card_country": _coded(pop.card_country[card], stored["country"]),
            "ip_address": _coded(np.where(no_ip, 0, world.ip), pop.ip_names, no_ip),
            "ip_country": _coded(
                np.where(no_ip_country, 0, world.ip_country), stored["ip_country"], no_ip_country
            ),
            "fraud_scenario": _coded(
                np.where(unlabelled, 0, rows.scenario), _SCENARIOS, unlabelled
            ),
            "dispute_reason": _coded(
                np.where(undisputed, 0, rows.dispute), _DISPUTE_REASONS, undisputed
            ),
        }
    )
