"""Rows for rule tests: one definition, as numpy inputs and as a real DuckDB ``transactions``
table with the stored column types (DECIMAL money, ENUM channel and currency, INTEGER BIN, UUID
card fingerprint, NULL for missing values)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np

from engine.currencies import ISO_4217
from engine.features import CHANNELS
from engine.rules import CompiledPolicy, hour_and_weekday

_ENUMS = f"""
CREATE TYPE currency_code AS ENUM ({", ".join(f"'{c}'" for c in sorted(ISO_4217))});
CREATE TYPE payment_channel AS ENUM ({", ".join(f"'{c}'" for c in sorted(CHANNELS))});
"""
TABLE = """
CREATE TABLE transactions (
    id INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    card_hash UUID NOT NULL,
    card_bin INTEGER NOT NULL,
    amount DECIMAL(18, 2) NOT NULL,
    amount_in_gbp DECIMAL(18, 2),
    currency currency_code NOT NULL,
    merchant VARCHAR NOT NULL,
    channel payment_channel NOT NULL,
    device_id VARCHAR,
    spending_velocity DOUBLE NOT NULL,
    device_trust_score DOUBLE NOT NULL,
    ip_risk_score DOUBLE NOT NULL,
    score DOUBLE NOT NULL,
    velocity_count INTEGER NOT NULL,
    device_seen_count INTEGER NOT NULL,
    payments_per_card_24h INTEGER NOT NULL,
    amount_per_card_24h DECIMAL(18, 2) NOT NULL,
    payments_per_device_1h INTEGER,
    cards_per_device_24h INTEGER,
    devices_per_card_7d INTEGER NOT NULL,
    card_age_days INTEGER NOT NULL,
    draw DOUBLE NOT NULL,
    challenge_draw DOUBLE NOT NULL,
    is_fraud BOOLEAN
);
"""
RISK_SCORE_SQL = "score"  # the tests' stand-in for the policy-dependent score expression

COLUMNS = (
    "created_at", "card_hash", "card_bin", "amount", "amount_in_gbp", "currency", "merchant",
    "channel", "device_id", "spending_velocity", "device_trust_score", "ip_risk_score", "score",
    "velocity_count", "device_seen_count", "payments_per_card_24h", "amount_per_card_24h",
    "payments_per_device_1h", "cards_per_device_24h", "devices_per_card_7d", "card_age_days",
    "draw", "challenge_draw", "is_fraud",
)  # fmt: skip


def row(**values: Any) -> dict[str, Any]:
    """A row with defaults for every column; ``created_at`` is epoch milliseconds (UTC)."""
    base: dict[str, Any] = {
        "created_at": 1_767_225_600_000,  # 2026-01-01 00:00 UTC, a Thursday
        "card_hash": bytes(range(16)),
        "card_bin": 412345,
        "amount": Decimal("10.00"),
        "amount_in_gbp": Decimal("10.00"),
        "currency": "GBP",
        "merchant": "m1",
        "channel": "ecommerce",
        "device_id": "d1",
        "spending_velocity": 0.0,
        "device_trust_score": 0.5,
        "ip_risk_score": 0.3,
        "score": 0.2,
        "velocity_count": 0,
        "device_seen_count": 1,
        "payments_per_card_24h": 0,
        "amount_per_card_24h": Decimal("0.00"),
        "payments_per_device_1h": 0,
        "cards_per_device_24h": 1,
        "devices_per_card_7d": 1,
        "card_age_days": 0,
        "draw": 0.5,
        "challenge_draw": 0.5,
        "is_fraud": None,  # NULL: a live row (no ground truth)
    }
    unknown = set(values) - set(base)
    assert not unknown, unknown
    base.update(values)
    return base


def database(rows: Sequence[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    """An in-memory database whose ``transactions`` holds ``rows`` (ids 0, 1, ...)."""
    con = duckdb.connect()
    con.execute(_ENUMS + TABLE)
    insert = f"INSERT INTO transactions VALUES ({', '.join('?' for _ in range(len(COLUMNS) + 1))})"
    con.executemany(insert, [[i, *_stored(r)] for i, r in enumerate(rows)])
    return con


def _stored(r: dict[str, Any]) -> list[Any]:
    values = []
    for column in COLUMNS:
        value = r[column]
        if column == "created_at":
            value = datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None)
        elif column == "card_hash":
            value = uuid.UUID(bytes=value)
        values.append(value)
    return values


def inputs(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The same rows as the numpy evaluator's inputs and missing masks (docs/rules.md dtypes)."""

    def col(name: str) -> list[Any]:
        return [r[name] for r in rows]

    def cents(values: list[Any]) -> np.ndarray:
        return np.array([int(v * 100) if v is not None else 0 for v in values], dtype=np.int64)

    def ints(values: list[Any]) -> np.ndarray:
        return np.array([v if v is not None else 0 for v in values], dtype=np.int64)

    def absent(values: list[Any]) -> np.ndarray:
        return np.array([v is None for v in values], dtype=bool)

    device = col("device_id")
    has_device = ~absent(device)
    hour, weekday = hour_and_weekday(np.array(col("created_at"), dtype=np.int64))
    values = {
        "amount": cents(col("amount")),
        "amount_in_gbp": cents(col("amount_in_gbp")),
        "currency": np.array(col("currency"), dtype=object),
        "merchant": np.array(col("merchant"), dtype=object),
        "channel": np.array(col("channel"), dtype=object),
        "device_id": np.array(device, dtype=object),
        "has_device": has_device,
        "card_bin": ints(col("card_bin")),
        "card": np.array(col("card_hash"), dtype="S16"),
        "spending_velocity": np.array(col("spending_velocity"), dtype=np.float64),
        "device_trust_score": np.array(col("device_trust_score"), dtype=np.float64),
        "ip_risk_score": np.array(col("ip_risk_score"), dtype=np.float64),
        "risk_score": np.array(col("score"), dtype=np.float64),
        "payments_per_card_1h": ints(col("velocity_count")),
        "payments_per_card_24h": ints(col("payments_per_card_24h")),
        "amount_per_card_24h": cents(col("amount_per_card_24h")),
        "payments_per_device_1h": ints(col("payments_per_device_1h")),
        "cards_per_device_24h": ints(col("cards_per_device_24h")),
        "devices_per_card_7d": ints(col("devices_per_card_7d")),
        "is_new_device": has_device & (ints(col("device_seen_count")) == 0),
        "card_age_days": ints(col("card_age_days")),
        "hour_of_day": hour,
        "day_of_week": weekday,
        "random": np.array(col("draw"), dtype=np.float64),
    }
    missing = {
        "amount_in_gbp": absent(col("amount_in_gbp")),
        "device_id": absent(device),
        "payments_per_device_1h": absent(col("payments_per_device_1h")),
        "cards_per_device_24h": absent(col("cards_per_device_24h")),
    }
    return values, missing


def sql_matches(
    con: duckdb.DuckDBPyConnection, policy: CompiledPolicy, **sql_options: Any
) -> np.ndarray:
    """Each rule's SQL on each row (rules x rows), read back through the match words; the
    plan's per-rule expressions must say the same and never be NULL."""
    plan = policy.sql(risk_score_sql=RISK_SCORE_SQL, **sql_options)
    columns = ", ".join(plan.words + plan.rules)
    rows = con.execute(f"SELECT {columns} FROM transactions ORDER BY id", plan.params).fetchall()
    words = np.array([r[: len(plan.words)] for r in rows], dtype=np.int64)
    by_words = policy.unpack_words(words.reshape(len(rows), len(plan.words)))
    by_rules = [list(r[len(plan.words) :]) for r in rows]
    assert np.array(by_rules, dtype=object).T.tolist() == by_words.tolist()
    return by_words


def numpy_matches(policy: CompiledPolicy, rows: Sequence[dict[str, Any]]) -> np.ndarray:
    values, missing = inputs(rows)
    return policy.matches(values, missing, n_rows=len(rows))
