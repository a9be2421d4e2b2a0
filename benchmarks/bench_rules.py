"""The rule compiler's costs: compiling, numpy evaluation, and SQL match words in DuckDB.

One command: ``.venv/bin/python benchmarks/bench_rules.py [--sql-rows 1000000 10000000]``.

In one run, on synthetic data shaped like stored payments:

* **compile**: ``compile_policy`` of a 200-rule policy (the 20 rules below with varied
  thresholds), median of ``--repeat`` runs; and writing its SQL (``CompiledPolicy.sql``);
* **numpy**: ``CompiledPolicy.decide`` of the 20-rule policy with two list lookups (a card list
  of 100,000 fingerprints and a merchant list of 1,000) on a 64-row group (a live group commit)
  and a 100,000-row chunk (bulk generation), next to the reference measured on the same rows:
  the engine's ``Decider`` of the default policy (its two rules and risk flags), what the live
  and bulk paths run by default; plus the default policy's two rules alone, and the 20 rules
  with a 100,000-item *device* list (text: a hash set) instead;
* **SQL**: a DuckDB file of ``--sql-rows`` rows with the stored column types; one backtest-style
  query ``SELECT words, count(*), count(*) FILTER (is_fraud) GROUP BY words`` of the 20-rule
  policy, with the lists bound as list parameters (the compiler's default) and with the lists
  in a table (what the lead may store), next to the reference: the same query of the default
  policy's two rules, and a bare ``GROUP BY`` scan.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.currencies import ISO_4217  # noqa: E402
from engine.decision import Decider  # noqa: E402
from engine.features import CHANNELS  # noqa: E402
from engine.policy import DEFAULT_POLICY  # noqa: E402
from engine.rules import (  # noqa: E402
    Coded,
    CompiledPolicy,
    ListSpec,
    compile_policy,
    hour_and_weekday,
)
from engine.rules.parser import _parse  # noqa: E402

RULES_20 = [
    ("block", ":amount: > 500 and :random: < 0.30"),
    ("block", ":amount: <= 500 and :random: < 0.10"),
    ("block", ":card: in @stolen_cards"),
    ("block", ":merchant: in @risky_merchants"),
    ("block", ":channel: = 'ecommerce' and :amount_in_gbp: > 300 and :is_new_device:"),
    ("review", ":risk_score: >= 0.8"),
    ("block", ":payments_per_card_1h: >= 10"),
    ("block", ":cards_per_device_24h: >= 5"),
    ("review", ":amount_per_card_24h: + :amount_in_gbp: > 2000"),
    ("block", ":currency: not in ('GBP', 'EUR', 'USD') and :amount_in_gbp: > 100"),
    ("review", ":hour_of_day: < 6 and :amount: > 200"),
    ("block", ":devices_per_card_7d: > 3 and :card_age_days: < 2"),
    ("allow", ":merchant: = 'm7' and :amount: < 50"),
    ("review", ":ip_risk_score: >= 0.7 and not :has_device:"),
    ("block", ":card_bin: in ('412345', '543210') and :channel: = 'moto'"),
    ("review", ":spending_velocity: > 0.5 or :payments_per_card_24h: > 20"),
    ("block", ":payments_per_device_1h: >= 8"),
    ("review", ":day_of_week: >= 6 and :amount_in_gbp: > 1000"),
    ("block", ":device_trust_score: < 0.15 and :amount: / (:payments_per_card_24h: + 1) > 250"),
    ("review", ":amount: > 5000"),
]
DEFAULT_RULES = RULES_20[:2]
RULES_20_DEVICES = [*RULES_20[:3], ("block", ":device_id: in @blocked_devices"), *RULES_20[4:]]
RISK_SCORE_SQL = (
    "greatest(least(0.4 * (1.0 - device_trust_score) + 0.3 * ip_risk_score + 0.2 * "
    "least(CAST(amount AS DOUBLE) / 1000.0, 1.0) + 0.1 * spending_velocity, 1.0), 0.0)"
)
N_CARDS = 200_000
CURRENCIES = np.array(["GBP", "EUR", "USD", "XAF"], dtype=object)
MERCHANTS = np.array([f"m{k}" for k in range(5_000)], dtype=object)
CHANNEL_LABELS = np.array(CHANNELS, dtype=object)
DEVICES = np.array([f"d{k}" for k in range(300_000)], dtype=object)
BASE_MS = 1_767_225_600_000  # 2026-01-01 UTC


def policy(rules: list[tuple[str, str]], lists: dict[str, ListSpec]) -> CompiledPolicy:
    return compile_policy(
        [{"name": f"rule {i}", "action": a, "when": w} for i, (a, w) in enumerate(rules)], lists
    )


def rules_200() -> list[dict[str, str]]:
    """200 distinct rules: the 20 above, each threshold shifted per copy."""
    rules = []
    for i in range(200):
        action, when = RULES_20[i % 20]
        rules.append({"name": f"rule {i}", "action": action, "when": when.replace("0", f"{i}0")})
    return rules


def median_ms(fn: Callable[[], Any], repeat: int, setup: Callable[[], Any] | None = None) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


# --- data --------------------------------------------------------------------------------------


def synthetic(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    """Columns of ``n`` payments (numpy inputs; ``card_index`` points into the card pool)."""
    rng = np.random.default_rng(seed)
    has_device = rng.random(n) < 0.8
    currency_code = rng.choice(4, n, p=[0.6, 0.25, 0.14, 0.01])
    currency = CURRENCIES[currency_code]
    merchant_code = rng.integers(0, len(MERCHANTS), n)
    channel_code = rng.integers(0, len(CHANNEL_LABELS), n)
    device_code = rng.integers(0, len(DEVICES), n)
    cents = np.maximum(rng.lognormal(8.5, 1.3, n).astype(np.int64), 1)
    gbp = np.where(currency == "GBP", cents, (cents * 0.85).astype(np.int64))
    t_ms = BASE_MS + np.sort(rng.integers(0, 30 * 86_400_000, n))
    return {
        "t_ms": t_ms,
        "card_index": rng.integers(0, N_CARDS, n),
        "card_bin": rng.choice([412345, 543210, 400000, 123456], n),
        "amount": cents,
        "amount_in_gbp": gbp,
        "gbp_missing": currency == "XAF",
        "currency": currency,
        "currency_code": currency_code,
        "merchant": MERCHANTS[merchant_code],
        "merchant_code": merchant_code,
        "channel": CHANNEL_LABELS[channel_code],
        "channel_code": channel_code,
        "device_id": np.where(has_device, DEVICES[device_code], None),
        "device_code": device_code,
        "has_device": has_device,
        "spending_velocity": rng.random(n),
        "device_trust_score": rng.random(n),
        "ip_risk_score": rng.random(n),
        "velocity_count": rng.poisson(1.0, n),
        "device_seen_count": rng.poisson(2.0, n),
        "payments_per_card_24h": rng.poisson(4.0, n),
        "amount_per_card_24h": rng.poisson(3.0, n) * 2_000,
        "payments_per_device_1h": rng.poisson(1.0, n),
        "cards_per_device_24h": rng.poisson(1.0, n) + 1,
        "devices_per_card_7d": rng.poisson(1.0, n),
        "card_age_days": rng.integers(0, 400, n),
        "draw": rng.random(n),
        "is_fraud": rng.random(n) < 0.01,
    }


def card_pool() -> np.ndarray:
    return np.frombuffer(np.random.default_rng(2).bytes(16 * N_CARDS), dtype="S16")


def lists(cards: np.ndarray, device_list: bool = False) -> dict[str, ListSpec]:
    rng = np.random.default_rng(3)
    stolen = [c for c in cards[rng.choice(N_CARDS, 1_000, replace=False)]]
    stolen += [rng.bytes(16) for _ in range(99_000)]  # 100,000 fingerprints, 1,000 in use
    risky = [f"m{k}" for k in range(0, 5_000, 5)]  # 1,000 merchants
    result = {
        "stolen_cards": ListSpec("card", stolen),
        "risky_merchants": ListSpec("merchant", risky),
    }
    if device_list:  # the 100,000-item list as text instead
        result["stolen_cards"] = ListSpec("card", stolen[:1_000])
        result["blocked_devices"] = ListSpec("device", [f"d{k}" for k in range(0, 300_000, 3)])
    return result


def numpy_inputs(
    data: dict[str, np.ndarray], cards: np.ndarray, rows: slice, coded: bool = False
) -> tuple:
    """The evaluator's inputs; ``coded``: text and cards as codes into fixed tables (as bulk
    chunks hold them), else as arrays of values (as live groups do)."""

    d = {k: v[rows] for k, v in data.items()}
    hour, weekday = hour_and_weekday(d["t_ms"])
    score = np.clip(
        0.4 * (1 - d["device_trust_score"])
        + 0.3 * d["ip_risk_score"]
        + 0.2 * np.minimum(d["amount"] / 100 / 1000, 1)
        + 0.1 * d["spending_velocity"],
        0,
        1,
    )
    values = {
        "amount": d["amount"], "amount_in_gbp": d["amount_in_gbp"], "currency": d["currency"],
        "merchant": d["merchant"], "channel": d["channel"], "device_id": d["device_id"],
        "has_device": d["has_device"], "card_bin": d["card_bin"], "card": cards[d["card_index"]],
        "spending_velocity": d["spending_velocity"],
        "device_trust_score": d["device_trust_score"], "ip_risk_score": d["ip_risk_score"],
        "risk_score": score, "payments_per_card_1h": d["velocity_count"],
        "payments_per_card_24h": d["payments_per_card_24h"],
        "amount_per_card_24h": d["amount_per_card_24h"],
        "payments_per_device_1h": d["payments_per_device_1h"],
        "cards_per_device_24h": d["cards_per_device_24h"],
        "devices_per_card_7d": d["devices_per_card_7d"],
        "is_new_device": d["has_device"] & (d["device_seen_count"] == 0),
        "card_age_days": d["card_age_days"], "hour_of_day": hour, "day_of_week": weekday,
        "random": d["draw"],
    }  # fmt: skip
    if coded:
        values |= {
            "currency": Coded(d["currency_code"], CURRENCIES),
            "merchant": Coded(d["merchant_code"], MERCHANTS),
            "channel": Coded(d["channel_code"], CHANNEL_LABELS),
            "device_id": Coded(d["device_code"], DEVICES),
            "card": Coded(d["card_index"], cards),
        }
    no_device = ~d["has_device"]
    missing = {
        "amount_in_gbp": d["gbp_missing"],
        "device_id": no_device,
        "payments_per_device_1h": no_device,
        "cards_per_device_24h": no_device,
    }
    return values, missing, d


# --- the benchmarks ---------------------------------------------------------------------------


def bench_compile(repeat: int) -> list[tuple[str, float]]:
    big = rules_200()
    cards = card_pool()
    small_lists = {
        "stolen_cards": ListSpec("card", list(cards[:10])),
        "risky_merchants": ListSpec("merchant", ["m1"]),
    }
    compiled = compile_policy(big, small_lists)
    cold = median_ms(lambda: compile_policy(big, small_lists), repeat, _parse.cache_clear)
    return [
        ("compile_policy, 200 new rules (cold parse cache)", cold),
        (
            "compile_policy, 200 rules parsed before",
            median_ms(lambda: compile_policy(big, small_lists), repeat),
        ),
        (
            "CompiledPolicy.sql(), 200 rules",
            median_ms(lambda: compiled.sql(risk_score_sql=RISK_SCORE_SQL), repeat),
        ),
    ]


def bench_numpy(repeat: int) -> list[tuple[str, float, float]]:
    cards = card_pool()
    data = synthetic(100_000)
    twenty = policy(RULES_20, lists(cards))
    with_devices = policy(RULES_20_DEVICES, lists(cards, device_list=True))
    default = policy(DEFAULT_RULES, {})
    engine_default = Decider(DEFAULT_POLICY)  # what the live and bulk paths run by default
    out = []
    for label, rows, coded in (
        ("64-row group", slice(0, 64), False),
        ("100k-row chunk", slice(None), False),
        ("100k-row chunk, coded", slice(None), True),
    ):
        values, missing, d = numpy_inputs(data, cards, rows, coded)
        score = np.zeros(len(d["amount"]))
        reference = median_ms(
            lambda d=d, s=score: engine_default.decide(
                s, {"amount": d["amount"], "random": d["draw"]}
            ),
            repeat,
        )
        for name, compiled in (
            ("default policy as 2 rules", default),
            ("20 rules, card list 100k + merchant list 1k", twenty),
            ("20 rules, device list 100k + card list 1k", with_devices),
        ):
            ms = median_ms(lambda c=compiled, v=values, m=missing: c.decide(v, m), repeat)
            out.append((f"{label}: {name}", ms, reference))
    return out


def build_database(path: Path, n: int) -> tuple[duckdb.DuckDBPyConnection, np.ndarray]:
    con = duckdb.connect(str(path))
    con.execute(
        f"CREATE TYPE currency_code AS ENUM ({', '.join(repr(c) for c in sorted(ISO_4217))});"
        f"CREATE TYPE payment_channel AS ENUM ({', '.join(repr(c) for c in sorted(CHANNELS))});"
        """CREATE TABLE transactions (
            created_at TIMESTAMP NOT NULL, card_hash UUID NOT NULL, card_bin INTEGER NOT NULL,
            amount DECIMAL(18, 2) NOT NULL, amount_in_gbp DECIMAL(18, 2),
            currency currency_code NOT NULL, merchant VARCHAR NOT NULL,
            channel payment_channel NOT NULL, device_id VARCHAR,
            spending_velocity DOUBLE NOT NULL, device_trust_score DOUBLE NOT NULL,
            ip_risk_score DOUBLE NOT NULL, velocity_count INTEGER NOT NULL,
            device_seen_count INTEGER NOT NULL, payments_per_card_24h INTEGER NOT NULL,
            amount_per_card_24h DECIMAL(18, 2) NOT NULL, payments_per_device_1h INTEGER,
            cards_per_device_24h INTEGER, devices_per_card_7d INTEGER NOT NULL,
            card_age_days INTEGER NOT NULL, draw DOUBLE NOT NULL, is_fraud BOOLEAN)"""
    )
    cards = card_pool()
    card_table = pa.table(  # noqa: F841 (read by DuckDB below)
        {
            "idx": np.arange(N_CARDS),
            "h": [str(uuid.UUID(bytes=bytes(c).ljust(16, b"\0"))) for c in cards],
        }
    )
    con.execute("CREATE TEMP TABLE cards AS SELECT idx, CAST(h AS UUID) AS h FROM card_table")
    chunk = 1_000_000
    for start in range(0, n, chunk):
        d = synthetic(min(chunk, n - start), seed=10 + start)
        no_device = ~d["has_device"]
        batch = pa.table(  # noqa: F841
            {
                "t_ms": d["t_ms"], "card_index": d["card_index"], "card_bin": d["card_bin"],
                "amount": d["amount"], "gbp": pa.array(d["amount_in_gbp"], mask=d["gbp_missing"]),
                "currency": d["currency"].astype(str), "merchant": d["merchant"].astype(str),
                "channel": d["channel"].astype(str), "device_id": pa.array(d["device_id"]),
                "sv": d["spending_velocity"], "dt": d["device_trust_score"],
                "ip": d["ip_risk_score"], "vc": d["velocity_count"],
                "seen": d["device_seen_count"], "p24": d["payments_per_card_24h"],
                "a24": d["amount_per_card_24h"],
                "pd1": pa.array(d["payments_per_device_1h"], mask=no_device),
                "cd24": pa.array(d["cards_per_device_24h"], mask=no_device),
                "dc7": d["devices_per_card_7d"], "age": d["card_age_days"], "draw": d["draw"],
                "fraud": d["is_fraud"],
            }
        )  # fmt: skip
        con.execute(
            """INSERT INTO transactions SELECT make_timestamp(t_ms * 1000), c.h, card_bin,
                CAST(amount AS DECIMAL(18, 2)) / 100, CAST(gbp AS DECIMAL(18, 2)) / 100,
                currency, merchant, channel, device_id, sv, dt, ip, vc, seen, p24,
                CAST(a24 AS DECIMAL(18, 2)) / 100, pd1, cd24, dc7, age, draw, fraud
               FROM batch JOIN cards c ON c.idx = batch.card_index ORDER BY t_ms"""
        )
    con.execute("CHECKPOINT")
    return con, cards


def table_membership(con: duckdb.DuckDBPyConnection, specs: dict[str, ListSpec]):
    """Lists stored in two tables (fingerprints as UUID, text as VARCHAR), looked up by name."""
    con.execute("CREATE OR REPLACE TABLE list_cards (list VARCHAR, item UUID)")
    con.execute("CREATE OR REPLACE TABLE list_text (list VARCHAR, item VARCHAR)")
    for name, spec in specs.items():
        if spec.kind == "card":
            rows = pa.table(
                {"item": [str(uuid.UUID(bytes=bytes(i).ljust(16, b"\0"))) for i in spec.items]}
            )
            con.execute(f"INSERT INTO list_cards SELECT '{name}', CAST(item AS UUID) FROM rows")
        else:
            rows = pa.table({"item": [str(i) for i in spec.items]})  # noqa: F841
            con.execute(f"INSERT INTO list_text SELECT '{name}', item FROM rows")
    names = {name: i for i, name in enumerate(sorted(specs))}

    def membership(list_name: str, value_sql: str) -> tuple[str, dict[str, Any]]:
        table = "list_cards" if specs[list_name].kind == "card" else "list_text"
        param = f"lst_{names[list_name]}"
        sql = f"({value_sql} IN (SELECT item FROM {table} WHERE list = ${param}))"
        return sql, {param: list_name}

    return membership


def bench_sql(sizes: list[int], repeat: int) -> list[tuple[str, float]]:
    out = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as folder:
            out += bench_sql_file(Path(folder) / "rules.duckdb", n, repeat)
    return out


def bench_sql_file(path: Path, n: int, repeat: int) -> list[tuple[str, float]]:
    """The backtest-style grouped query of each policy over a fresh file of ``n`` rows."""
    start = time.perf_counter()
    con, cards = build_database(path, n)
    label = f"{n:,} rows"
    out = [(f"{label}: build the file (once)", (time.perf_counter() - start) * 1000)]
    specs = lists(cards)
    twenty, default = policy(RULES_20, specs), policy(DEFAULT_RULES, {})
    plans = {
        "default policy, 2 rules": default.sql(),
        "20 rules, lists as list parameters": twenty.sql(risk_score_sql=RISK_SCORE_SQL),
        "20 rules, lists in a table": twenty.sql(
            risk_score_sql=RISK_SCORE_SQL, membership_sql=table_membership(con, specs)
        ),
    }

    def grouped(plan: Any) -> Callable[[], Any]:
        words = ", ".join(f"{w} AS w{i}" for i, w in enumerate(plan.words))
        sql = f"SELECT {words}, count(*), count(*) FILTER (is_fraud) FROM transactions GROUP BY ALL"
        return lambda: con.execute(sql, plan.params).fetchall()

    scan = "SELECT is_fraud, count(*) FROM transactions GROUP BY ALL"
    out.append(
        (f"{label}: bare GROUP BY scan", median_ms(lambda: con.execute(scan).fetchall(), repeat))
    )
    for name, plan in plans.items():
        out.append((f"{label}: {name}", median_ms(grouped(plan), repeat)))
    groups = len(grouped(plans["20 rules, lists in a table"])())
    out.append((f"{label}: (groups of the 20-rule query: {groups})", float("nan")))
    con.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--sql-rows", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--sql-repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"{'compile':<58} {'median ms':>10}")
    for name, ms in bench_compile(args.repeat):
        print(f"{name:<58} {ms:>10.2f}")
    print(f"\n{'numpy decide':<58} {'median ms':>10} {'reference':>10} {'ratio':>6}")
    for name, ms, ref in bench_numpy(args.repeat):
        print(f"{name:<58} {ms:>10.3f} {ref:>10.3f} {ms / ref:>6.1f}")
    print(f"\n{'SQL match words (GROUP BY)':<58} {'median ms':>10}")
    for name, ms in bench_sql(args.sql_rows, args.sql_repeat):
        print(f"{name:<58} {ms:>10.1f}")


if __name__ == "__main__":
    main()
