"""The reference-rate table converts identically in Python, numpy and DuckDB SQL."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import numpy as np
import pytest

from engine.fx import RATES_PER_EUR, gbp_pence, gbp_pence_sql, rate_arrays, to_gbp


def test_gbp_is_itself_and_eur_uses_the_ecb_rate() -> None:
    assert to_gbp(Decimal("150.75"), "GBP") == Decimal("150.75")
    assert to_gbp(Decimal("100.00"), "EUR") == Decimal("83.38")
    assert to_gbp(Decimal("1.00"), "AED") is None


def test_rounding_is_half_to_even_on_the_exact_fraction() -> None:
    # 1 USD cent = 0.8338 / 1.1172 pence = 0.7463...: rounds to 1; 0.5 cases go to even
    assert to_gbp(Decimal("0.01"), "USD") == Decimal("0.01")
    cents = np.array([1, 2, 3, 67, 10_000_000_000 // 100], dtype=np.int64)
    num, den = rate_arrays(["USD"] * len(cents))
    pence, known = gbp_pence(cents, num, den)
    assert known.all()
    assert [to_gbp(Decimal(int(c)).scaleb(-2), "USD") for c in cents] == [
        Decimal(int(p)).scaleb(-2) for p in pence
    ]


@pytest.mark.parametrize("seed", [1, 2])
def test_numpy_python_and_sql_agree_on_every_currency(seed: int) -> None:
    rng = np.random.default_rng(seed)
    codes = [*RATES_PER_EUR, "AED", "XOF"]
    currency = rng.choice(codes, 5_000)
    cents = rng.integers(1, 100_000_000, 5_000)
    num, den = rate_arrays(list(currency))
    pence, known = gbp_pence(cents, num, den)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, cents BIGINT, currency VARCHAR)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [(i, int(c), str(k)) for i, (c, k) in enumerate(zip(cents, currency, strict=True))],
    )
    sql = f"SELECT {gbp_pence_sql('cents', 'currency')} FROM t ORDER BY i"
    from_sql = [row[0] for row in con.execute(sql).fetchall()]
    expected = [int(p) if k else None for p, k in zip(pence, known, strict=True)]
    assert from_sql == expected
    python = [
        to_gbp(Decimal(int(c)).scaleb(-2), str(k)) for c, k in zip(cents, currency, strict=True)
    ]
    assert python == [None if e is None else Decimal(e).scaleb(-2) for e in expected]
