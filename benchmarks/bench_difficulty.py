"""Is the simulated world hard? A reference model trained on the labels known at a cutoff.

    .venv/bin/python benchmarks/bench_difficulty.py                       # every preset, 400k rows
    .venv/bin/python benchmarks/bench_difficulty.py --rows 100000 --preset realistic

For each difficulty preset (``SimulationParams.difficulty``; one row, "current world", while the
parameter does not exist), one seeded run is generated through the engine into a temporary
DuckDB file. The cutoff is ``--test-days`` before the end of the run; the rows created up to
``--label-maturity`` days before it train two reference models from scikit-learn (the optional
``bench`` extra): a gradient-boosted ``HistGradientBoostingClassifier`` and a logistic
regression. They learn from the labels an analyst had at the cutoff, by the backtest's own
definition (:func:`engine.backtest.label_sql` with ``labels_as_of`` = cutoff): a fraud row whose
chargeback had not arrived yet trains as legitimate. They are scored on the following days
against the ground truth ``is_fraud``, beside the engine's own stored ``risk_score`` as the
baseline of the same run.

Features are the rule attributes of the catalogue (:data:`engine.rules.CATALOGUE`) through their
own SQL, so attributes added to it are used without a change here; left out are identifiers
(card, device, merchant name), the stored uniform draw and the policy's risk score. Label columns,
the scenario and the decision are not attributes. Everything is seeded: the same arguments give
the same figures.
"""

from __future__ import annotations

import argparse
import enum
import os
import sys
import tempfile
import time
import typing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from any directory

from engine.backtest import FRAUD, label_sql  # noqa: E402
from engine.rules import CATALOGUE  # noqa: E402
from engine.service import Engine  # noqa: E402
from engine.simulation import SimulationParams  # noqa: E402

try:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
except ImportError:  # pragma: no cover - the message is the point
    raise SystemExit(
        "scikit-learn is missing: it is the optional 'bench' extra (make setup installs it with "
        "the dev extra, or: .venv/bin/uv sync --extra bench --inexact)."
    ) from None

EXCLUDED = frozenset({"card", "device_id", "merchant", "random", "risk_score"})
"""Catalogue attributes that are no features: identifiers (a model would memorise cards and
devices), the uniform draw the randomized rules use, and the policy's own score (the baseline)."""
ALERT_RATE = 0.01
CURRENT_WORLD = "current world"
SEED = 20261201
MAX_CATEGORIES = 200  # HistGradientBoosting takes at most 255 categories per feature


@dataclass(frozen=True)
class Split:
    """A run's rows read for the check: features, the label known at the cutoff, the truth."""

    features: pd.DataFrame
    categorical: tuple[str, ...]
    known_fraud: np.ndarray  # bool: fraud as known at the cutoff (the training label)
    truth: np.ndarray  # bool: ground truth is_fraud
    risk_score: np.ndarray  # the stored score of the policy that decided the row
    train: np.ndarray  # bool: a training row (else: in the evaluation window)


@dataclass(frozen=True)
class Scores:
    """One scorer over the evaluation window."""

    auc: float
    precision: float
    recall: float


def presets() -> list[str | None]:
    """The difficulty presets ``SimulationParams`` offers, in declaration order; ``[None]``
    (the current world) while it has no ``difficulty`` parameter."""
    field = SimulationParams.model_fields.get("difficulty")
    if field is None:
        return [None]
    return _choices(field.annotation) or [field.default]


def _choices(annotation: typing.Any) -> list[str]:
    """The string values a ``Literal``, an ``Enum`` or a union of them allows, in order."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [member.value for member in annotation]
    choices: list[str] = []
    for arg in typing.get_args(annotation):
        choices += [arg] if isinstance(arg, str) else _choices(arg)
    return choices


def feature_attributes() -> dict[str, str]:
    """Feature name → its SQL over a ``transactions`` row: every catalogue attribute with an
    SQL expression except :data:`EXCLUDED`."""
    return {
        name: attribute.sql
        for name, attribute in CATALOGUE.items()
        if attribute.sql is not None and name not in EXCLUDED and attribute.type != "card"
    }


def generate(db: Path, rows: int, days: int, seed: int, preset: str | None) -> tuple[Engine, int]:
    """A fresh engine on ``db`` with one completed run; the caller closes the engine."""
    params: dict[str, typing.Any] = {"rows": rows, "days": days, "seed": seed}
    if preset is not None:
        params["difficulty"] = preset
    engine = Engine.open(db, card_key="bench-difficulty", backup_interval_s=0)
    run = engine.simulate(SimulationParams(**params))
    if run.status != "completed":
        engine.close()
        raise SystemExit(f"the run ended {run.status}: {run.error}")
    return engine, run.id


def run_window(
    params: dict[str, typing.Any], test_days: int, maturity_days: int
) -> tuple[datetime, datetime, datetime]:
    """(train_until, cutoff, end) of a run recorded with ``params``: the model trains on the
    rows created before ``train_until`` (``maturity_days`` before the cutoff) with the labels
    known at the cutoff, and is scored on the evaluation window [cutoff, end)."""
    settled = SimulationParams(**params)
    end = settled.start + timedelta(days=settled.days)
    cutoff = end - timedelta(days=test_days)
    train_until = cutoff - timedelta(days=maturity_days)
    if train_until <= settled.start or cutoff >= end:
        raise SystemExit(
            f"a {settled.days}-day run has no training days before a {maturity_days}-day "
            f"maturity gap and a {test_days}-day evaluation window"
        )
    return train_until, cutoff, end


def read_split(
    engine: Engine, run_id: int, train_until: datetime, cutoff: datetime, end: datetime
) -> Split:
    """The run's training rows (created before ``train_until``) and evaluation rows (created
    in [cutoff, end)), with the label the backtest would count at ``cutoff`` (its
    ``labels_as_of``) and the ground truth."""
    attributes = feature_attributes()
    select = ", ".join(f'{sql} AS "{name}"' for name, sql in attributes.items())
    label = label_sql(labels_as_of=True)
    sql = (
        f"SELECT {select}, ({label}) = {FRAUD} AS _known_fraud, is_fraud AS _truth, "
        "score AS _risk_score, created_at < $train_until AS _train FROM transactions "
        "WHERE run_id = $run AND (created_at < $train_until "
        "OR created_at >= $labels_as_of AND created_at < $end) ORDER BY id"
    )
    values = {"run": run_id, "train_until": train_until, "labels_as_of": cutoff, "end": end}
    with engine.store.read() as tx:
        frame = tx.arrow(sql, values).to_pandas()
    categorical = tuple(n for n in attributes if CATALOGUE[n].type == "text")
    features = frame[list(attributes)].copy()
    for name in attributes:
        if CATALOGUE[name].type == "bool":
            features[name] = features[name].astype("float64")
        elif name in categorical:
            features[name] = features[name].astype("object")
        else:  # money arrives as Decimal: the models take floats
            features[name] = pd.to_numeric(features[name], errors="coerce").astype("float64")
    return Split(
        features=features,
        categorical=categorical,
        known_fraud=frame["_known_fraud"].to_numpy(dtype=bool),
        truth=frame["_truth"].to_numpy(dtype=bool),
        risk_score=frame["_risk_score"].to_numpy(dtype=np.float64),
        train=frame["_train"].to_numpy(dtype=bool),
    )


def models(categorical: tuple[str, ...], numeric: tuple[str, ...]) -> dict[str, typing.Any]:
    """The reference models, unfitted and seeded: name → scikit-learn estimator."""
    cat, num = list(categorical), list(numeric)
    gbm = make_pipeline(
        ColumnTransformer(
            [
                (
                    "cat",
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value",
                        unknown_value=np.nan,
                        max_categories=MAX_CATEGORIES,
                    ),
                    cat,
                ),
                ("num", "passthrough", num),
            ],
            verbose_feature_names_out=False,
        ),
        HistGradientBoostingClassifier(
            categorical_features=list(range(len(cat))), random_state=SEED
        ),
    )
    logistic = make_pipeline(
        ColumnTransformer(
            [
                (
                    "cat",
                    OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=50),
                    cat,
                ),
                (
                    "num",
                    make_pipeline(
                        SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                    ),
                    num,
                ),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )
    return {"gradient boosting": gbm, "logistic regression": logistic}


def at_alert_rate(truth: np.ndarray, score: np.ndarray, rate: float) -> tuple[float, float]:
    """(precision, recall) when the top ``rate`` share of rows by score is alerted.

    Rows tied at the threshold score are counted at their expected value under a random order
    (the engine's score takes few distinct values, so ties are common): deterministic, and fair
    to a scorer with ties."""
    n = len(score)
    alerts = max(1, round(rate * n))
    threshold = np.sort(score)[::-1][alerts - 1]
    above, tied = score > threshold, score == threshold
    share_of_tied = (alerts - above.sum()) / tied.sum()
    caught = truth[above].sum() + share_of_tied * truth[tied].sum()
    frauds = truth.sum()
    return float(caught / alerts), float(caught / frauds) if frauds else float("nan")


def evaluate(truth: np.ndarray, score: np.ndarray) -> Scores:
    """AUC and precision/recall at :data:`ALERT_RATE` of ``score`` against ``truth``."""
    precision, recall = at_alert_rate(truth, score, ALERT_RATE)
    auc = roc_auc_score(truth, score) if 0 < truth.sum() < len(truth) else float("nan")
    return Scores(float(auc), precision, recall)


def check(split: Split) -> dict[str, Scores]:
    """Fit every reference model on the training rows' known labels; score the evaluation
    window against the truth, with the engine's stored risk score as the baseline."""
    numeric = tuple(c for c in split.features.columns if c not in split.categorical)
    train, test = split.train, ~split.train
    results: dict[str, Scores] = {}
    for name, model in models(split.categorical, numeric).items():
        model.fit(split.features[train], split.known_fraud[train])
        results[name] = evaluate(split.truth[test], model.predict_proba(split.features[test])[:, 1])
    results["engine risk_score"] = evaluate(split.truth[test], split.risk_score[test])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--test-days", type=int, default=14, help="evaluation window (days)")
    parser.add_argument("--label-maturity", type=int, default=30, help=(
        "train only on rows at least this many days older than the cutoff (most of their "
        "chargebacks have arrived); 0: every row before the cutoff"))  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--preset", action="append", help="only these presets (repeatable)")
    args = parser.parse_args()
    chosen = presets()
    if args.preset:
        unknown = sorted(set(args.preset) - {p for p in chosen if p})
        if unknown:
            raise SystemExit(f"unknown preset(s) {unknown}; this code offers {chosen}")
        chosen = args.preset
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.rows:,} rows over "
          f"{args.days} days, seed {args.seed}; trained on days 0-"
          f"{args.days - args.test_days - args.label_maturity} with the labels known at day "
          f"{args.days - args.test_days}, scored on the last {args.test_days} days against the "
          f"ground truth; alerts = top {ALERT_RATE:.0%}")  # fmt: skip
    header = (f"{'preset':<14} {'rows':>9} {'fraud':>7} {'train fraud':>17} {'model':<20} "
              f"{'AUC':>6} {'prec@1%':>8} {'rec@1%':>7}")  # fmt: skip
    lines = []
    for preset in chosen:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="ptsim-difficulty-") as tmp:
            engine, run_id = generate(Path(tmp) / "run.duckdb", args.rows, args.days, args.seed,
                                      preset)  # fmt: skip
            try:
                record = engine.get_run(run_id)
                window = run_window(record.params, args.test_days, args.label_maturity)
                split = read_split(engine, run_id, *window)
            finally:
                engine.close()
        results = check(split)
        train = split.train
        known = f"{split.known_fraud[train].sum():,}/{split.truth[train].sum():,}"
        fraud_share = f"{record.summary['fraud_rows'] / record.rows_written:.2%}"
        for i, (model, s) in enumerate(results.items()):
            lead = (f"{preset or CURRENT_WORLD:<14} {record.rows_written:>9,} {fraud_share:>7} "
                    f"{known:>17}") if i == 0 else " " * 50  # fmt: skip
            lines.append(f"{lead} {model:<20} {s.auc:>6.3f} {s.precision:>8.3f} {s.recall:>7.3f}")
        print(f"  {preset or CURRENT_WORLD}: {time.perf_counter() - started:.1f} s", flush=True)
    print(header)
    print("-" * len(header))
    print("\n".join(lines))
    print("train fraud = fraud rows known at the cutoff / fraud rows before it (ground truth)")


if __name__ == "__main__":
    main()
