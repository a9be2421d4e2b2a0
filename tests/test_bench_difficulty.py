"""The difficulty check (benchmarks/bench_difficulty.py) runs, and trains on what was known.

One small seeded run (40k rows over 30 days) on a real DuckDB file, read the way the check reads
it: training rows in the first 16 days, labels as known at day 23, evaluation on days 23-30.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from benchmarks import bench_difficulty as bench
from engine.simulation import SimulationParams

# disputes arrive after a median of about 40 days: training rows need that long to be labelled
ROWS, DAYS, TEST_DAYS, MATURITY = 60_000, 90, 14, 45
# columns a feature must never read: labels, the scenario, the decision and its score, ids
FORBIDDEN = (
    "is_fraud", "fraud_scenario", "label_available_at", "status", "reason_code", "risk_flag",
    "rule_index", "action", "flag_rule", "score", "draw", "card_hash", "device_id", "merchant",
    "id", "run_id",
)  # fmt: skip


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, int, tuple]]:
    db = Path(tmp_path_factory.mktemp("difficulty")) / "run.duckdb"
    engine, run_id = bench.generate(db, ROWS, DAYS, seed=3, preset=None)
    try:
        window = bench.run_window(engine.get_run(run_id).params, TEST_DAYS, MATURITY)
        yield engine, run_id, window
    finally:
        engine.close()


@pytest.fixture(scope="module")
def split(small_run: tuple[Any, int, tuple]) -> bench.Split:
    engine, run_id, window = small_run
    return bench.read_split(engine, run_id, *window)


def _stored(engine: Any, run_id: int, window: tuple[datetime, datetime, datetime]) -> dict:
    """The rows the check reads, in its order, with the columns it must honour."""
    train_until, cutoff, end = window
    with engine.store.read() as tx:
        return tx.numpy(
            "SELECT is_fraud, coalesce(label_available_at, TIMESTAMP '9999-12-31') AS "
            "label_available_at, coalesce(dispute_reason IN ('fraud', 'friendly_fraud'), false) "
            "AS fraud_dispute, created_at FROM transactions "
            "WHERE run_id = $run AND (created_at < $train_until "
            "OR created_at >= $cutoff AND created_at < $end) ORDER BY id",
            {"run": run_id, "train_until": train_until, "cutoff": cutoff, "end": end},
        )


def test_window_follows_the_run() -> None:
    params = SimulationParams(rows=10, days=DAYS).model_dump(mode="json")
    train_until, cutoff, end = bench.run_window(params, TEST_DAYS, MATURITY)
    start = SimulationParams(rows=10).start
    assert [(t - start).days for t in (train_until, cutoff, end)] == [31, 76, 90]
    with pytest.raises(SystemExit, match="no training days"):
        bench.run_window(params, TEST_DAYS, 76)


def test_a_late_chargeback_trains_as_legitimate(small_run, split, monkeypatch) -> None:
    engine, run_id, window = small_run
    _, cutoff, _ = window
    stored = _stored(engine, run_id, window)
    train = split.train
    assert train.sum() > 0 and (~train).sum() > 0
    # what an analyst knew at the cutoff: the fraud disputes that had arrived by then (a missed
    # dispute never arrives; a false or friendly one labels a genuine payment)
    arrived = stored["label_available_at"] <= np.datetime64(cutoff)
    known = stored["fraud_dispute"] & arrived
    late = stored["is_fraud"] & ~arrived & train
    assert late.sum() > 0, "the run must hold training fraud whose chargeback comes later"
    assert np.array_equal(split.known_fraud[train], known[train])
    assert np.array_equal(split.truth, stored["is_fraud"])

    # what the models are actually fitted on, and scored against
    fitted: list[np.ndarray] = []

    class Recorder:
        def fit(self, features: Any, labels: np.ndarray) -> Recorder:
            fitted.append(np.asarray(labels))
            return self

        def predict_proba(self, features: Any) -> np.ndarray:
            return np.tile([0.5, 0.5], (len(features), 1))

    monkeypatch.setattr(bench, "models", lambda cat, num: {"recorder": Recorder()})
    results = bench.check(split)
    assert len(fitted) == 1
    labels = fitted[0]
    assert np.array_equal(labels, known[train])
    assert not labels[late[train]].any()  # fraud whose chargeback came after the cutoff: legit
    assert results["recorder"].auc == 0.5  # scored against the truth, which has fraud


def test_the_check_runs_and_beats_nothing(split) -> None:
    results = bench.check(split)
    assert set(results) == {"gradient boosting", "logistic regression", "engine risk_score"}
    for scores in results.values():
        assert 0.5 < scores.auc <= 1.0
        assert 0.0 <= scores.precision <= 1.0 and 0.0 <= scores.recall <= 1.0
    assert results == bench.check(split)  # seeded: the same figures again


def test_features_read_no_label_decision_or_id() -> None:
    features = bench.feature_attributes()
    assert {"amount_in_gbp", "channel", "device_trust_score", "card_age_days"} <= set(features)
    for name, sql in features.items():
        for column in FORBIDDEN:
            assert not re.search(rf"\b{column}\b", sql), f"{name} reads {column}"


def test_presets_follow_the_parameters() -> None:
    field = SimulationParams.model_fields.get("difficulty")
    found = bench.presets()
    if field is None:
        assert found == [None]
    else:
        assert {"easy", "realistic", "hard"} <= set(found)


class _Preset(enum.StrEnum):
    EASY = "easy"
    HARD = "hard"


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (Literal["easy", "realistic", "hard"], ["easy", "realistic", "hard"]),
        (Literal["easy", "hard"] | None, ["easy", "hard"]),
        (_Preset, ["easy", "hard"]),
        (_Preset | None, ["easy", "hard"]),
    ],
)
def test_preset_names_come_from_the_annotation(annotation: Any, expected: list[str]) -> None:
    assert bench._choices(annotation) == expected


def test_precision_at_alert_rate_shares_ties() -> None:
    truth = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    # 10% alerts = 1 row; three rows tie at the top, one of them fraud: 1/3 expected
    score = np.array([0.9, 0.9, 0.1, 0.9, 0, 0, 0, 0, 0, 0], dtype=float)
    precision, recall = bench.at_alert_rate(truth, score, 0.1)
    assert math.isclose(precision, 1 / 3) and math.isclose(recall, 1 / 6)
    # no ties: the exact top row
    precision, recall = bench.at_alert_rate(truth, np.arange(10.0)[::-1], 0.2)
    assert (precision, recall) == (0.5, 0.5)
