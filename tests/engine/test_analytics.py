"""Dashboard aggregates: they add up, follow the filters, and cope with an empty database."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from synthetic_rows import START, insert_rows, random_columns

from engine.analytics import AMOUNT_BINS_PER_DECADE, MAX_BUCKETS, bucket_width
from engine.filters import RowFilter
from engine.latency import reported
from engine.service import Engine
from engine.store import ReadTx


@pytest.fixture
def engine(tmp_path):
    with Engine.open(tmp_path / "a.duckdb", seed=7) as eng:
        yield eng


@pytest.fixture
def filled(engine):
    insert_rows(engine.store, random_columns(3000, seed=1), run_id=1, channel="pos")
    insert_rows(
        engine.store, random_columns(1000, seed=2), run_id=2, first_index=10_000, currency="EUR"
    )
    engine.authorize({"card_number": "4111111111111111", "amount": "12.34", "merchant": "Shop"})
    _wait_for_latency_write_back(engine)
    return engine


def _wait_for_latency_write_back(engine: Engine) -> None:
    """The writer writes the payment's latency back ~50 ms after the commit, and that write is a
    data change: wait for it so memo checks see a settled data version."""
    for _ in range(500):
        if not engine.store.query("SELECT 1 FROM transactions WHERE latency_ms IS NULL"):
            time.sleep(0.01)  # the write-back's generation bump follows its commit
            return
        time.sleep(0.01)
    raise AssertionError("the latency was never written back")


def test_everything_adds_up_to_the_kpis(filled):
    data = filled.dashboard()
    k = data.kpis
    assert k.total == 4001 == filled.stats().total
    assert k.approved == filled.stats().approved
    assert data.series["n"].sum() == k.total
    assert data.series["approved"].sum() == k.approved
    assert data.reasons["n"].sum() == k.declined
    assert data.amounts["n"].sum() == k.total
    assert len(data.series) <= MAX_BUCKETS
    assert k.p50_latency <= k.p95_latency <= k.p99_latency
    assert k.latency_kind == "mixed"  # simulated rows and one live payment
    assert not data.series_sampled
    avg = filled.store.query("SELECT avg(amount) FROM transactions")[0][0]
    assert k.avg_amount == Decimal(str(avg)).quantize(Decimal("0.01"))


def test_filters_select_runs_live_channels_currencies_and_recent_rows(filled):
    assert filled.dashboard(run="live").kpis.total == 1
    assert filled.dashboard(run=2).kpis.total == 1000
    assert filled.dashboard(channels=("pos",)).kpis.total == 3000
    assert filled.dashboard(currencies=("EUR",)).kpis.total == 1000
    assert filled.dashboard(run=1, currencies=("EUR",)).kpis.total == 0
    day = filled.dashboard(run=1, latest=timedelta(days=1))
    newest = filled.store.query("SELECT max(created_at) FROM transactions WHERE run_id = 1")[0][0]
    expected = filled.store.query(
        "SELECT count(*) FROM transactions WHERE run_id = 1 AND created_at >= ?",
        [newest - timedelta(days=1)],
    )[0][0]
    assert day.kpis.total == expected and 0 < expected < 3000
    assert filled.dashboard(since=START, until=START + timedelta(days=2)).kpis.total < 4000


def test_filter_options_list_what_is_there(filled):
    options = filled.filter_options()
    assert options.runs == [1, 2] and options.has_live
    assert options.channels == ["ecommerce", "pos"]
    assert options.currencies == ["EUR", "GBP"]
    assert options.first_at == START


def test_empty_database(engine):
    data = engine.dashboard()
    assert data.kpis.total == 0 and data.kpis.p99_latency is None
    assert data.series.empty and data.reasons.empty and data.amounts.empty
    options = engine.filter_options()
    assert options.runs == [] and not options.has_live and options.first_at is None


def test_bucket_width_keeps_the_series_short():
    start = datetime(2026, 1, 1)
    assert bucket_width(start, start + timedelta(minutes=10)) == timedelta(seconds=10)
    assert bucket_width(start, start + timedelta(days=7)) == timedelta(hours=6)
    assert bucket_width(start, start + timedelta(days=3650)) == timedelta(days=30)
    assert bucket_width(None, None) == timedelta(seconds=10)


def test_many_rows_sample_the_series_latency_but_not_the_kpis(engine, monkeypatch):
    from engine import analytics

    monkeypatch.setattr(analytics, "LATENCY_SAMPLE_ROWS", 1000)
    cols = random_columns(20_000, seed=4)
    insert_rows(engine.store, cols)
    data = engine.dashboard()
    assert data.series_sampled and data.kpis.total == 20_000
    assert data.kpis.p50_latency == 2.5  # every stored latency is 2.5 ms
    assert data.kpis.latency_kind == "modelled"


def test_unchanged_data_is_answered_from_the_memo(filled):
    # the live payment's latency write-back (a commit, so a new data version) must not land
    # between the two reads below
    for _ in range(200):
        if filled.store.query("SELECT count(*) FROM transactions WHERE latency_ms IS NULL") == [
            (0,)
        ]:
            break
        time.sleep(0.05)
    first = filled.dashboard(run=1)
    assert filled.dashboard(run=1) is first
    assert filled.dashboard(run=2) is not first
    whole = filled.dashboard()
    filled.authorize({"card_number": "4111111111111111", "amount": "5.00", "merchant": "Shop"})
    after = filled.dashboard()
    assert after is not whole and after.kpis.total == 4002  # the whole table changed
    assert filled.dashboard(run=1) is first  # a live payment leaves run 1's rows as they were
    insert_rows(filled.store, random_columns(10, seed=9), run_id=1, first_index=20_000)
    again = filled.dashboard(run=1)
    assert again is not first and again.kpis.total == 3010  # a new row of run 1 does not
    filled.reset()
    assert filled.dashboard().kpis.total == 0
    assert filled.dashboard(run=1).kpis.total == 0  # a reset clears every source's version


def test_filter_options_follow_new_live_values_and_new_runs(filled):
    before = filled.filter_options()
    filled.authorize(
        {"card_number": "4111111111111111", "amount": "5.00", "currency": "JPY", "merchant": "S"}
    )
    assert filled.filter_options().currencies == ["EUR", "GBP", "JPY"]
    insert_rows(filled.store, random_columns(5, seed=3), run_id=3, first_index=30_000)
    options = filled.filter_options()
    assert options.runs == [1, 2, 3] and options.channels == before.channels


def _whole_selection(engine: Engine, filters: RowFilter, width: timedelta) -> dict:
    """What the dashboard must show for ``filters``, aggregated over the whole selection in
    one query each (the reference for the parts the dashboard adds up)."""
    where, params = filters.where()
    width_us = int(width / timedelta(microseconds=1))

    def rows(sql: str) -> list[tuple]:
        extra = {"width": width_us} if "$width" in sql else {}
        return engine.store.query(sql, {**params, **extra})

    return {
        "reasons": dict(rows(f"SELECT CAST(reason_code AS VARCHAR), count(*) FROM transactions "
                             f"{where} AND status = 'Declined' GROUP BY 1")),
        "amounts": dict(rows(f"SELECT floor(log10(amount::DOUBLE) * 10)::INTEGER, count(*) "
                             f"FROM transactions {where} AND amount > 0 GROUP BY 1")),
        "buckets": {b: (n, ok, tuple(q)) for b, n, ok, q in rows(
            f"SELECT epoch_us(created_at) // $width, count(*), count_if(status = 'Approved'), "
            f"quantile_disc(latency_ms, [0.5, 0.95, 0.99]) FROM transactions {where} GROUP BY 1"
        )},
        "span": rows(f"SELECT min(created_at), max(created_at) FROM transactions {where}")[0],
    }  # fmt: skip


def _shown(data) -> dict:
    """The same figures as the dashboard shows them (non-empty buckets)."""
    width_us = int(data.bucket / timedelta(microseconds=1))
    series = data.series[data.series["n"] > 0]
    buckets = {
        int(bucket.value // 1000 // width_us): (n, ok, (p50, p95, p99))
        for bucket, n, ok, p50, p95, p99 in series[
            ["bucket", "n", "approved", "p50", "p95", "p99"]
        ].itertuples(index=False)
    }
    amounts = {
        round(math.log10(lo) * AMOUNT_BINS_PER_DECADE): n
        for lo, n in data.amounts[["lo", "n"]].itertuples(index=False)
    }
    return {
        "reasons": dict(zip(data.reasons["reason_code"], data.reasons["n"], strict=True)),
        "amounts": amounts,
        "buckets": buckets,
        "span": (data.kpis.first_at, data.kpis.last_at),
    }


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"channels": ("pos",)},
        {"currencies": ("GBP",)},
        {"since": START + timedelta(days=1)},
        {"latest": timedelta(days=400)},  # from the live payment back over both runs' rows
        {"latest": timedelta(hours=1)},  # the live payment alone
    ],
)
def test_all_traffic_is_the_sum_of_its_live_and_run_parts(filled, fields):
    data = filled.dashboard(**fields)
    expected = _whole_selection(filled, RowFilter(**fields), data.bucket)
    expected["buckets"] = {
        b: (n, ok, tuple(reported(v) for v in q)) for b, (n, ok, q) in expected["buckets"].items()
    }
    assert _shown(data) == expected
    assert data.reasons["n"].is_monotonic_decreasing


def test_a_run_reaching_live_time_takes_the_percentiles_over_the_whole(filled):
    now = filled.store.query("SELECT max(created_at) FROM transactions WHERE run_id IS NULL")
    minutes = int((now[0][0] - START) / timedelta(minutes=1))
    cols = random_columns(50, seed=11)
    cols["minutes"] = np.full(50, minutes)  # in the live payment's bucket
    insert_rows(filled.store, cols, run_id=3, first_index=40_000)
    data = filled.dashboard()
    expected = _whole_selection(filled, RowFilter(), data.bucket)
    expected["buckets"] = {
        b: (n, ok, tuple(reported(v) for v in q)) for b, (n, ok, q) in expected["buckets"].items()
    }
    assert _shown(data) == expected


def test_a_live_payment_recomputes_only_the_live_part(filled, monkeypatch):
    before = filled.dashboard()
    scanned: list[str] = []
    original = ReadTx.frame

    def frame(self, sql, params=None):
        scanned.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(ReadTx, "frame", frame)
    filled.authorize({"card_number": "4111111111111111", "amount": "7.00", "merchant": "Shop"})
    after = filled.dashboard()
    assert after.kpis.total == before.kpis.total + 1
    assert after.amounts["n"].sum() == before.amounts["n"].sum() + 1
    assert scanned and all("run_id IS NULL" in sql for sql in scanned), scanned
