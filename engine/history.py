"""History attributes as stored columns: their Arrow form for both writers, and their definition
as DuckDB window functions (the schema v10 back-fill, and the reference tests compare with).

The definitions are in :mod:`engine.features` (module docstring). In SQL a stream is a
``run_id`` partition (NULL: live traffic), its order is ``id`` (ids grow with insertion, and
event time never decreases along them), and "earlier payments in a window of ``W`` ms" are a
``RANGE`` frame over a key that orders rows by (event time, arrival): ``t · 2^20 + r``, where
``r`` numbers the rows of one card (or device) within one millisecond in id order. The frame
runs from ``(W − 1) · 2^20 + r`` before the row (the first millisecond still in the window, all
its rows) to 1 before it (earlier arrivals only). Times count from the stream's first payment,
so the key fits a BIGINT for streams of up to 278 years and 2^20 payments of one card in one
millisecond.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.features import DAY_MS, HOUR_MS, NO_DEVICE, NO_GBP, WEEK_MS, HistoryCounts
from engine.fx import gbp_pence_sql

GBP_PENCE_SQL = gbp_pence_sql("CAST(amount * 100 AS BIGINT)", "currency")  # NULL: no rate
_TIE_BITS = 20

ATTRIBUTE_COLUMNS: tuple[str, ...] = (
    "amount_in_gbp",
    "payments_per_card_24h",
    "amount_per_card_24h",
    "payments_per_device_1h",
    "cards_per_device_24h",
    "devices_per_card_7d",
    "card_age_days",
)


def _decimal_from_pence(pence: np.ndarray, validity: pa.Buffer | None = None) -> pa.Array:
    """DECIMAL(18, 2) values from int64 pence, exactly (NULL where ``validity`` is unset)."""
    n = len(pence)
    words = np.empty((n, 2), dtype="<i8")
    words[:, 0] = pence
    words[:, 1] = pence >> 63  # sign extension into the high word
    return pa.Array.from_buffers(pa.decimal128(18, 2), n, [validity, pa.py_buffer(words)])


def _int32(values: np.ndarray, validity: pa.Buffer | None = None) -> pa.Array:
    """INTEGER values (NULL where ``validity`` is unset)."""
    column = np.ascontiguousarray(values, dtype=np.int32)
    return pa.Array.from_buffers(pa.int32(), len(column), [validity, pa.py_buffer(column)])


def _validity(missing: np.ndarray) -> pa.Buffer | None:
    """An Arrow validity bitmap that is unset where ``missing`` (None when nothing is)."""
    return pa.array(~missing).buffers()[1] if missing.any() else None


def attribute_columns(counts: HistoryCounts, gbp_pence: np.ndarray) -> dict[str, pa.Array]:
    """The stored history attribute columns (and ``amount_in_gbp``) of a batch of rows;
    ``gbp_pence`` holds :data:`~engine.features.NO_GBP` for amounts without a rate. Built from
    buffers: one bitmap for the device-scoped NULLs (both are NULL exactly without a device)."""
    device = _validity(counts.payments_per_device_1h == NO_DEVICE)
    return {
        "amount_in_gbp": _decimal_from_pence(gbp_pence, _validity(gbp_pence == NO_GBP)),
        "payments_per_card_24h": _int32(counts.payments_per_card_24h),
        "amount_per_card_24h": _decimal_from_pence(counts.amount_per_card_24h),
        "payments_per_device_1h": _int32(counts.payments_per_device_1h, device),
        "cards_per_device_24h": _int32(counts.cards_per_device_24h, device),
        "devices_per_card_7d": _int32(counts.devices_per_card_7d),
        "card_age_days": _int32(counts.card_age_days),
    }


def _window(aggregate: str, by: str, span_ms: int) -> str:
    """``aggregate`` over the earlier payments of the same stream and ``by`` (card_hash or
    device_id) in the trailing ``span_ms`` (see the module docstring)."""
    return (
        f"{aggregate} OVER (PARTITION BY run_id, {by} ORDER BY key_{by} RANGE BETWEEN "
        f"(CAST({(span_ms - 1) << _TIE_BITS} AS BIGINT) + tie_{by}) PRECEDING AND 1 PRECEDING)"
    )


def _money(pence_sql: str) -> str:
    return f"CAST(CAST({pence_sql} AS DECIMAL(18, 0)) * 0.01 AS DECIMAL(18, 2))"


def attributes_sql(where: str = "TRUE") -> str:
    """A query of ``id`` and the history attributes (the stored columns' names and types) of
    every row of ``transactions`` that ``where`` selects (a SQL condition; each stream it
    touches must be selected whole)."""
    ms = "epoch_ms(created_at)"
    day_pence = _window("sum(coalesce(gbp, 0))", "card_hash", DAY_MS)
    return f"""
WITH base AS (
    SELECT id, run_id, card_hash, device_id, {ms} AS t,
           {GBP_PENCE_SQL} AS gbp,
           {ms} - min({ms}) OVER (PARTITION BY run_id) AS since_start
    FROM transactions WHERE {where}
), by_card AS (
    SELECT *,
        since_start * {1 << _TIE_BITS} + tie_card_hash AS key_card_hash
    FROM (SELECT *, row_number() OVER (PARTITION BY run_id, card_hash, t ORDER BY id) - 1
                    AS tie_card_hash FROM base)
), by_device AS (  -- rows with a device only: the others' device columns are NULL
    SELECT *,
        since_start * {1 << _TIE_BITS} + tie_device_id AS key_device_id
    FROM (SELECT *, row_number() OVER (PARTITION BY run_id, device_id, t ORDER BY id) - 1
                    AS tie_device_id FROM base WHERE device_id IS NOT NULL)
), device_columns AS (
    SELECT id,
        CAST({_window("count(*)", "device_id", HOUR_MS)} AS INTEGER) AS payments_per_device_1h,
        CAST({_window("count(DISTINCT card_hash)", "device_id", DAY_MS)} AS INTEGER)
            AS cards_per_device_24h
    FROM by_device
), card_columns AS (
    SELECT
        id,
        {_money("gbp")} AS amount_in_gbp,
        CAST({_window("count(*)", "card_hash", DAY_MS)} AS INTEGER) AS payments_per_card_24h,
        {_money(f"coalesce({day_pence}, 0)")} AS amount_per_card_24h,
        CAST({_window("count(DISTINCT device_id)", "card_hash", WEEK_MS)} AS INTEGER)
            AS devices_per_card_7d,
        CAST((t - first_value(t) OVER (PARTITION BY run_id, card_hash ORDER BY id)) // {DAY_MS}
             AS INTEGER) AS card_age_days,
        CAST({_window("count(*)", "card_hash", HOUR_MS)} AS INTEGER) AS velocity_count
    FROM by_card
)
SELECT c.id, c.amount_in_gbp, c.payments_per_card_24h, c.amount_per_card_24h,
       d.payments_per_device_1h, d.cards_per_device_24h, c.devices_per_card_7d,
       c.card_age_days, c.velocity_count
FROM card_columns c LEFT JOIN device_columns d USING (id)
"""
