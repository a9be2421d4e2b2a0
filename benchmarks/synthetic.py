"""Fast synthetic transactions for benchmarks: numpy columns decided by the real decision function,
appended with Arrow in chunks (millions of rows per second, no history features).

Used when a large database is needed quickly; the bulk generator (``engine/simulation``) makes
realistic data but is slower. Labels: ``is_fraud`` with a scenario per fraud row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from engine.decision import REASON_NAMES, decide
from engine.policy import DEFAULT_POLICY, Policy
from engine.store import RollupDelta, Store

SCENARIOS = np.array(["stolen_card", "card_testing", "account_takeover", "compromised_merchant"])
CHANNELS = np.array(["ecommerce", "mobile", "pos", "contactless", "moto"])
CURRENCIES = np.array(["GBP", "EUR", "USD"])
MERCHANTS = np.array([f"Merchant {i:03d}" for i in range(200)])


def synthetic_table(
    n: int,
    rng: np.random.Generator,
    start_index: int,
    run_id: int | None,
    start: datetime,
    span: timedelta,
    policy: Policy = DEFAULT_POLICY,
    fraud_rate: float = 0.02,
) -> pa.Table:
    """``n`` decided rows with ids ``start_index ...`` (time-ordered) spread over ``span``."""
    fraud = rng.random(n) < fraud_rate
    scenario = np.where(fraud, SCENARIOS[rng.integers(0, len(SCENARIOS), n)], None)
    cents = np.where(
        fraud,
        np.round(rng.lognormal(5.5, 1.2, n) * 100),
        np.round(rng.lognormal(3.6, 1.0, n) * 100),
    ).astype(np.int64)
    cents = np.clip(cents, 1, 100_000_000)
    sv = np.clip(rng.beta(1.2, 6, n) + fraud * 0.3, 0, 1)
    dt = np.clip(rng.beta(5, 1.5, n) - fraud * 0.4, 0, 1)
    ip = np.clip(rng.beta(1.5, 8, n) + fraud * 0.25, 0, 1)
    vc = rng.poisson(1 + fraud * 4, n).astype(np.int32)
    draw = rng.random(n)
    d = decide(cents, sv, dt, ip, vc, draw, policy)
    offsets = np.sort(rng.random(n)) * span.total_seconds() * 1e6
    created = np.datetime64(start, "us") + offsets.astype("timedelta64[us]")
    raw = np.zeros((n, 16), dtype=np.uint8)
    counter = np.arange(start_index, start_index + n, dtype=">u8").view(np.uint8).reshape(n, 8)
    raw[:, :8] = counter
    raw[:, 8] = 0x80
    ids = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), n, [None, pa.py_buffer(raw.tobytes())]
    )
    cards = rng.integers(0, 200_000, n)
    latency = rng.gamma(2.0, 1.5, n)
    return pa.table(
        {
            "id": ids,
            "run_id": pa.array(np.full(n, run_id or 0, np.int32), mask=np.full(n, run_id is None)),
            "created_at": pa.array(created, pa.timestamp("us")),
            "card_hash": pa.array(np.char.mod("%032x", cards)),
            "card_bin": pa.array(np.full(n, "400000")),
            "card_last4": pa.array(np.char.mod("%04d", cards % 10_000)),
            "card_length": pa.array(np.full(n, 16, np.int8)),
            "amount": _decimal_cents(cents),
            "currency": pa.array(CURRENCIES[rng.integers(0, len(CURRENCIES), n)]),
            "merchant": pa.array(MERCHANTS[rng.integers(0, len(MERCHANTS), n)]),
            "channel": pa.array(CHANNELS[rng.integers(0, len(CHANNELS), n)]),
            "device_id": pa.array(np.char.mod("dev-%06d", rng.integers(0, 300_000, n))),
            "status": pa.array(np.where(d.approved, "Approved", "Declined")),
            "reason_code": pa.array(REASON_NAMES[d.reason]),
            "risk_flag": pa.array(d.risk_flag),
            "score": d.score,
            "spending_velocity": sv,
            "device_trust_score": dt,
            "ip_risk_score": ip,
            "velocity_count": vc,
            "device_seen_count": pa.array(np.ones(n, np.int32)),
            "device_other_cards": pa.array(np.zeros(n, np.int32)),
            "draw": draw,
            "policy_version": pa.array(np.full(n, max(policy.version, 1), np.int32)),
            "latency_ms": latency,
            "is_fraud": pa.array(fraud),
            "fraud_scenario": pa.array(scenario, pa.string()),
            "label_available_at": pa.array(created + np.timedelta64(30, "D"), pa.timestamp("us")),
        }
    )


def _decimal_cents(cents: np.ndarray) -> pa.Array:
    """DECIMAL(18, 2) from positive int64 minor units, built from buffers (exact, fast)."""
    raw = np.zeros((len(cents), 2), dtype="<i8")
    raw[:, 0] = cents
    return pa.Array.from_buffers(pa.decimal128(18, 2), len(cents), [None, pa.py_buffer(raw)])


def fill(
    store: Store,
    rows: int,
    seed: int,
    run_id: int | None = 1,
    start: datetime = datetime(2026, 1, 1),
    span: timedelta = timedelta(days=30),
    chunk: int = 1_000_000,
    first_index: int = 1,
    fraud_rate: float = 0.02,
) -> None:
    """Append ``rows`` synthetic rows (and their running totals) in chunks of ``chunk``."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < rows:
        n = min(chunk, rows - done)
        part_span = span * (n / rows)
        table = synthetic_table(
            n,
            rng,
            first_index + done,
            run_id,
            start + span * (done / rows),
            part_span,
            fraud_rate=fraud_rate,
        )
        cents = np.asarray(table["amount"].cast(pa.float64())) * 100
        with store.write() as cur:
            Store.append_transactions(cur, table)
            delta = RollupDelta.from_columns(
                run_id or 0,
                np.asarray(table["status"].to_numpy(zero_copy_only=False) == "Approved"),
                np.round(cents).astype(np.int64),
                np.asarray(table["latency_ms"]),
            )
            Store.add_to_rollups(cur, delta)
        done += n
