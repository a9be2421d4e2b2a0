"""Hand-made stored transactions for backtest and dashboard tests (no generator involved).

``insert_rows`` appends rows with chosen features, draws and labels; every other column gets a
plain default. Decisions stored with the rows come from the engine's own decider under
``policy``, as the live path and the generator would store them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa
from knob_reference import decide_as_engine

from engine.decision import ACTION_LABELS, REASON_NAMES, ChallengeInputs
from engine.policy import DEFAULT_POLICY, Policy
from engine.store import RollupDelta, Store

SCENARIOS = ["stolen_card", "card_testing", "account_takeover", "compromised_merchant"]
START = datetime(2026, 1, 1)


def random_columns(n: int, seed: int, fraud_rate: float = 0.05) -> dict[str, np.ndarray]:
    """Feature, draw and label columns for ``n`` rows from a fixed seed."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(n) < fraud_rate
    return {
        "cents": np.clip(np.round(rng.lognormal(4.0, 1.5, n) * 100), 1, 99_999_999).astype(
            np.int64
        ),
        "sv": np.round(rng.random(n), 3),
        "dt": np.round(rng.random(n), 3),
        "ip": np.round(rng.random(n), 3),
        "vc": rng.integers(0, 12, n).astype(np.int32),
        "draw": rng.random(n),
        "is_fraud": fraud,
        "scenario": np.where(fraud, np.array(SCENARIOS)[rng.integers(0, 4, n)], None),
        "minutes": np.sort(rng.integers(0, 60 * 24 * 10, n)),
        # its own stream: the other columns keep the values they had before challenges
        "challenge_draw": np.random.default_rng([seed, 14]).random(n),
    }


def insert_rows(
    store: Store,
    cols: dict[str, np.ndarray],
    run_id: int | None = 1,
    policy: Policy = DEFAULT_POLICY,
    first_index: int = 1,
    channel: str = "ecommerce",
    currency: str = "GBP",
) -> None:
    """Append rows built from ``cols`` (see :func:`random_columns`); labels as given
    (pass ``is_fraud=None`` entries for unlabelled rows)."""
    n = len(cols["cents"])
    labels = cols.get("is_fraud")
    challenge_draw = np.asarray(cols.get("challenge_draw", np.full(n, 0.5)), np.float64)
    truth = None if labels is None else np.array([bool(v) for v in labels])
    d = decide_as_engine(
        policy, cols["cents"], cols["sv"], cols["dt"], cols["ip"], cols["vc"], cols["draw"],
        challenge=ChallengeInputs(challenge_draw, np.full(n, channel == "ecommerce"), truth),
    )  # fmt: skip
    raw = np.zeros((n, 16), dtype=np.uint8)
    raw[:, :8] = np.arange(first_index, first_index + n, dtype=">u8").view(np.uint8).reshape(n, 8)
    created = [START + timedelta(minutes=int(m)) for m in cols.get("minutes", np.zeros(n))]
    table = pa.table(
        {
            "id": pa.array([bytes(r) for r in raw], pa.binary(16)),
            "run_id": pa.array([run_id] * n, pa.int32()),
            "created_at": pa.array(created, pa.timestamp("us")),
            "card_hash": pa.array([bytes(16)] * n, pa.binary(16)),
            "card_bin": pa.array([411111] * n, pa.int32()),
            "card_last4": pa.array([1111] * n, pa.int16()),
            "card_length": pa.array([16] * n, pa.int8()),
            "amount": pa.array(
                [Decimal(int(c)).scaleb(-2) for c in cols["cents"]], pa.decimal128(18, 2)
            ),
            "currency": pa.array([currency] * n),
            "merchant": pa.array(["Test Merchant"] * n),
            "channel": pa.array([channel] * n),
            "device_id": pa.array(["dev-1"] * n),
            "status": pa.array(np.where(d.approved, "Approved", "Declined")),
            "reason_code": pa.array(REASON_NAMES[d.reason]),
            "risk_flag": pa.array(d.risk_flag),
            "rule_index": pa.array(d.rule_index, pa.int16()),
            "action": pa.array(ACTION_LABELS[d.action]),
            "flag_rule": pa.array(d.flag_rule, pa.int16()),
            "score": d.score,
            "spending_velocity": np.asarray(cols["sv"], np.float64),
            "device_trust_score": np.asarray(cols["dt"], np.float64),
            "ip_risk_score": np.asarray(cols["ip"], np.float64),
            "velocity_count": pa.array(np.asarray(cols["vc"], np.int32)),
            "device_seen_count": pa.array([1] * n, pa.int32()),
            "device_other_cards": pa.array([0] * n, pa.int32()),
            # history attributes: plain defaults (these rows are hand-made, not a stream)
            "amount_in_gbp": pa.array(
                [Decimal(int(c)).scaleb(-2) for c in cols["cents"]]
                if currency == "GBP"
                else [None] * n,
                pa.decimal128(18, 2),
            ),
            "payments_per_card_24h": pa.array([0] * n, pa.int32()),
            "amount_per_card_24h": pa.array([Decimal("0.00")] * n, pa.decimal128(18, 2)),
            "payments_per_device_1h": pa.array([0] * n, pa.int32()),
            "cards_per_device_24h": pa.array([0] * n, pa.int32()),
            "devices_per_card_7d": pa.array([0] * n, pa.int32()),
            "card_age_days": pa.array([0] * n, pa.int32()),
            "draw": np.asarray(cols["draw"], np.float64),
            "policy_version": pa.array([1] * n, pa.int32()),
            "latency_ms": np.full(n, 2.5),
            "is_fraud": pa.array([None] * n if labels is None else list(labels), pa.bool_()),
            "fraud_scenario": pa.array(
                list(cols["scenario"]) if "scenario" in cols else [None] * n, pa.string()
            ),
            # when a chargeback reveals the row (None: never), if the test says
            "label_available_at": pa.array(
                list(cols.get("label_at", [None] * n)), pa.timestamp("us")
            ),
            # what that dispute was filed as (default: fraud, where one comes)
            "dispute_reason": pa.array(list(cols.get("dispute", _filed_as_fraud(cols, n)))),
            "challenge_draw": challenge_draw,
        }
    )
    with store.write() as tx:
        if run_id is not None:  # rows of a run come with its record, as a real run's do
            tx.execute(
                "INSERT INTO runs (id, created_at, status, seed, params, policy_version, "
                "code_version, rows_planned, rows_written, timings, summary) "
                "SELECT $id, $now, 'completed', 0, '{}', 1, 'test rows', 0, 0, '{}', '{}' "
                "WHERE NOT EXISTS (SELECT 1 FROM runs WHERE id = $id)",
                {"id": run_id, "now": START},
            )
        tx.append_transactions(table)
        tx.add_to_rollups(
            RollupDelta.from_columns(run_id or 0, d.approved, cols["cents"], np.full(n, 2.5)),
        )


def _filed_as_fraud(cols: dict, n: int) -> list[str | None]:
    """A synthetic row's dispute reason by default: fraud where a dispute comes."""
    return [None if at is None else "fraud" for at in cols.get("label_at", [None] * n)]
