"""The DuckDB store: reopening, migrating a v1 file, the lock message, rollups, reset."""

from __future__ import annotations

import subprocess
import sys
import uuid
from decimal import Decimal

import duckdb
import numpy as np
import pytest

from engine.errors import NotFoundError, StoreLockedError
from engine.latency import exact_percentile
from engine.models import PaymentRequest
from engine.policy import Policy
from engine.schema import MIGRATIONS, SCHEMA_VERSION, migration_sql
from engine.service import Engine

# Files written by hand below hold rows but no key file: their fingerprints came from a key the
# operator keeps, so it is configured (a missing key file is refused once rows exist).
OLD_FILE_KEY = "old-file-card-key-0123456789"


def _body(i: int, amount: str | None = None) -> dict:
    cards = ["4111111111111111", "5555555555554444", "4000001234567890", "6011111111111117"]
    return {
        "card_number": cards[i % len(cards)],
        "amount": amount or f"{(i * 37) % 900 + 1}.{i % 100:02d}",
        "currency": ["GBP", "EUR", "USD"][i % 3],
        "merchant": f"merchant-{i % 5}",
        "channel": ["ecommerce", "pos", "mobile"][i % 3],
        "device_id": None if i % 7 == 0 else f"device-{i % 4}",
    }


def _pay(eng: Engine, i: int, amount: str | None = None):
    return eng.authorize(_body(i, amount))


def _pay_many(eng: Engine, n: int, wave: int = 25) -> list:
    """``n`` payments submitted in waves, so they commit in groups of varying size."""
    results = []
    for start in range(0, n, wave):
        futures = [
            eng.submit(PaymentRequest.model_validate(_body(i)))
            for i in range(start, min(start + wave, n))
        ]
        results += [f.result(timeout=60) for f in futures]
    return results


def _recount(eng: Engine) -> dict:
    total, approved, declined, amount_sum = eng.store.query(
        "SELECT count(*), count(*) FILTER (status = 'Approved'), "
        "count(*) FILTER (status = 'Declined'), coalesce(sum(amount), 0) FROM transactions"
    )[0]
    return {"total": total, "approved": approved, "declined": declined, "amount_sum": amount_sum}


def test_reopening_a_file_keeps_data_and_policy_version(db_path) -> None:
    with Engine.open(db_path, seed=1, card_key="") as eng:
        results = _pay_many(eng, 20, wave=7)
        policy = eng.activate_policy(Policy.from_knobs(score_threshold=0.95), note="kept")
        before = eng.stats()
    with Engine.open(db_path, seed=1, card_key="") as eng:
        assert eng.stats() == before
        assert eng.active_policy() == policy
        assert eng.active_policy().version == 2
        for r in results:
            stored = eng.get_transaction(r.transaction_id)
            assert stored.status == r.status
            assert stored.score == r.score
        assert eng.store.schema_version() == SCHEMA_VERSION


def test_a_v1_file_is_migrated_and_its_rollups_backfilled(db_path) -> None:
    con = duckdb.connect(str(db_path))
    con.execute("CREATE TABLE schema_version (version INTEGER)")
    con.execute(MIGRATIONS[0])
    con.execute("INSERT INTO schema_version VALUES (1)")
    rows = [
        (uuid.UUID(int=(1 << 76) | 1), Decimal("10.50"), "Approved", 2.5),
        (uuid.UUID(int=(1 << 76) | 2), Decimal("600.25"), "Declined", 7.25),
        (uuid.UUID(int=(1 << 76) | 3), Decimal("99.99"), "Approved", None),
        (uuid.UUID(int=(1 << 76) | 4), Decimal("5.00"), "Approved", None),
        (uuid.UUID(int=(1 << 76) | 5), Decimal("5.00"), "Declined", None),
    ]
    for tid, amount, status, latency in rows:
        con.execute(
            "INSERT INTO transactions (id, created_at, card_hash, card_bin, card_last4, "
            "card_length, amount, currency, merchant, channel, device_id, status, reason_code, "
            "risk_flag, score, spending_velocity, device_trust_score, ip_risk_score, "
            "velocity_count, device_seen_count, device_other_cards, draw, policy_version, "
            "latency_ms) VALUES (?, now()::TIMESTAMP, '0123456789abcdef0123456789abcdef', "
            "'411111', '1111', 16, ?, 'GBP', "
            "'M', 'pos', NULL, ?, ?, false, 0.1, 0, 0.1, 0.3, 0, 0, 0, 0.5, 1, ?)",
            [
                tid,
                amount,
                status,
                "APPROVED" if status == "Approved" else "RANDOM_DECLINE",
                latency,
            ],
        )
    con.close()

    with Engine.open(db_path, seed=1, card_key=OLD_FILE_KEY) as eng:
        assert eng.store.schema_version() == SCHEMA_VERSION >= 2
        stats = eng.stats()
        recount = _recount(eng)
        assert (stats.total, stats.approved, stats.declined) == (5, 3, 2)
        assert (recount["total"], recount["approved"], recount["declined"]) == (5, 3, 2)
        assert stats.avg_amount == Decimal("144.15")  # (10.50 + 600.25 + 99.99 + 5 + 5) / 5
        # Percentiles are over known latencies only (a row killed before its write-back has
        # none); an unknown latency must not count as 0 ms.
        known = np.array([2.5, 7.25])
        assert stats.p50_latency == exact_percentile(known, 0.50) == 2.5
        assert stats.p99_latency == exact_percentile(known, 0.99) == 7.25
        # The old rows are readable and new payments land next to them.
        assert eng.get_transaction(rows[0][0]).amount == Decimal("10.50")
        _pay(eng, 1)
        assert eng.stats().total == 6
    with Engine.open(db_path, seed=1, card_key=OLD_FILE_KEY) as eng:  # migrating twice is a no-op
        assert eng.stats().total == 6
        versions = eng.store.query("SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))


def test_enum_columns_hold_exactly_the_codes_vocabularies(engine) -> None:
    """v6 froze the labels; a new reason, channel, scenario or currency needs a migration."""
    from engine.currencies import ISO_4217
    from engine.decision import REASON_NAMES
    from engine.features import CHANNELS
    from engine.simulation.outcomes import DISPUTE_REASONS
    from engine.simulation.params import LABELLED_SCENARIOS

    enum_types = {  # column -> its ENUM type (v6; fraud_scenario widened, dispute_reason v14)
        "status": "payment_status",
        "reason_code": "reason_code",
        "channel": "payment_channel",
        "currency": "currency_code",
        "fraud_scenario": "fraud_scenario",
        "dispute_reason": "dispute_reason",
    }
    expected = {
        "status": {"Approved", "Declined"},
        "reason_code": {str(name) for name in REASON_NAMES},
        "channel": set(CHANNELS),
        "currency": set(ISO_4217),
        "fraud_scenario": set(LABELLED_SCENARIOS),
        "dispute_reason": set(DISPUTE_REASONS),
    }
    for column, type_name in enum_types.items():
        (labels,) = engine.store.query(f"SELECT enum_range(NULL::{type_name})")[0]
        assert labels == sorted(labels), f"{type_name} must sort like strings"
        assert set(labels) == expected[column], column
        (declared,) = engine.store.query(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'transactions' AND column_name = ?",
            [column],
        )[0]
        assert declared.startswith("ENUM("), declared


def test_a_locked_file_names_the_holder_and_what_to_do(db_path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(60)",
            str(db_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError) as info:
            Engine.open(db_path, seed=1, card_key="")
        message = str(info.value)
        assert str(holder.pid) in message
        assert "API" in message
        assert "--db" in message or "PTSIM_DB" in message
        assert "\n" not in message
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert db_path.exists()  # a locked file is never treated as damaged and moved aside
    with Engine.open(db_path, seed=1, card_key="") as eng:
        assert eng.stats().total == 0


def test_rollup_stats_equal_a_direct_recount(engine) -> None:
    _pay_many(engine, 600)
    engine.close()  # drains the writer, writes back the last latencies
    con = duckdb.connect(str(engine.store.path))
    try:
        total, approved, declined, amount_sum, avg = con.execute(
            "SELECT count(*), count(*) FILTER (status = 'Approved'), "
            "count(*) FILTER (status = 'Declined'), sum(amount), avg(amount) FROM transactions"
        ).fetchone()
        latencies = np.array(
            [v for (v,) in con.execute("SELECT latency_ms FROM transactions").fetchall()]
        )
    finally:
        con.close()
    with Engine.open(engine.store.path, seed=1, card_key="") as reopened:
        stats = reopened.stats()
    assert (stats.total, stats.approved, stats.declined) == (600, approved, declined)
    assert total == 600 and approved + declined == 600
    assert stats.approval_rate == round(approved / 600, 4)
    assert stats.avg_amount == (amount_sum / 600).quantize(Decimal("0.01"))
    assert abs(stats.avg_amount - Decimal(avg)) < Decimal("0.01")
    assert not np.isnan(latencies.astype(float)).any()
    for q, got in ((0.5, stats.p50_latency), (0.95, stats.p95_latency), (0.99, stats.p99_latency)):
        exact = exact_percentile(latencies, q)
        assert abs(got - exact) <= 0.0005 * exact + 0.0005


def test_reset_clears_everything_in_one_go(engine) -> None:
    results = _pay_many(engine, 25, wave=10)
    stats = engine.reset()
    assert stats.total == stats.approved == stats.declined == 0
    assert stats.avg_amount == Decimal("0.00") and stats.p95_latency == 0.0
    for table in ("transactions", "stats_rollup", "latency_histogram", "runs"):
        assert engine.store.query(f"SELECT count(*) FROM {table}")[0][0] == 0, table
    assert engine.store.query(
        "SELECT count(*) FROM audit_log WHERE transaction_id IS NOT NULL"
    ) == [(0,)]
    with pytest.raises(NotFoundError):
        engine.get_audit(results[0].transaction_id)
    with pytest.raises(NotFoundError):
        engine.get_transaction(results[-1].transaction_id)
    # The engine keeps working and history-based features start afresh.
    after = _pay(engine, 0)
    assert after.features.spending_velocity == 0.0
    assert engine.stats().total == 1


def test_reopening_restores_the_live_feature_history(db_path) -> None:
    body = _body(1)
    with Engine.open(db_path, seed=1, card_key="") as eng:
        before = [eng.authorize(body).features for _ in range(3)]
    with Engine.open(db_path, seed=1, card_key="") as eng:
        after = eng.authorize(body).features
        stranger = eng.authorize({**body, "card_number": "6011111111111117"}).features
    assert [f.spending_velocity for f in before] == [0.0, 0.1, 0.2]
    assert after.spending_velocity == 0.3
    assert after.device_trust_score == 0.3  # minutes of history on the device earn no trust
    assert stranger.spending_velocity == 0.0
    assert stranger.device_trust_score == pytest.approx(0.3 / 1.5)


def test_an_in_memory_engine_works_and_writes_no_files(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Engine.open(":memory:", seed=1, card_key="") as eng:
        result = _pay(eng, 3)
        assert eng.get_transaction(result.transaction_id).status == result.status
        assert eng.health()["db_path"] == ":memory:"
        assert eng.stats().total == 1
        assert eng.reset().total == 0
    assert list(tmp_path.iterdir()) == []


def test_a_v5_file_in_an_older_duckdb_storage_format_still_migrates(db_path) -> None:
    """DuckDB cannot pin DICT_FSST in files older than storage format v1.3: v6 then leaves the
    compression to DuckDB instead of failing (and leaving the file unopenable)."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{db_path}' AS old (STORAGE_VERSION 'v1.2.0')")
    con.execute("USE old")
    con.execute("CREATE TABLE schema_version (version INTEGER)")
    for version, sql in enumerate(MIGRATIONS[:5], start=1):
        con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?)", [version])
    con.execute(
        "INSERT INTO transactions (id, created_at, card_hash, card_bin, card_last4, card_length, "
        "amount, currency, merchant, channel, device_id, status, reason_code, risk_flag, score, "
        "spending_velocity, device_trust_score, ip_risk_score, velocity_count, "
        "device_seen_count, device_other_cards, draw, policy_version, latency_ms) VALUES "
        "(?, now()::TIMESTAMP, uuid(), '012345', '0042', 16, 9.99, 'GBP', 'M', 'pos', NULL, "
        "'Approved', 'APPROVED', false, 0.1, 0, 0.1, 0.3, 0, 0, 0, 0.5, 1, 2.5)",
        [uuid.UUID(int=(1 << 76) | 1)],
    )
    con.close()

    with Engine.open(db_path, seed=1, card_key=OLD_FILE_KEY) as eng:
        assert eng.store.schema_version() == SCHEMA_VERSION
        stored = eng.get_transaction(uuid.UUID(int=(1 << 76) | 1))
        assert (stored.card_last4, stored.card_masked[:6], stored.status) == (
            "0042",
            "012345",
            "Approved",
        )
        _pay(eng, 1)
        assert eng.stats().total == 2


def test_v7_retires_what_older_builds_left_behind(db_path) -> None:
    """Live rollup rows (source 0) and stored 'payment.decided' entries are deleted by the
    migration, so stats and audit reads no longer filter them on every query."""
    con = duckdb.connect(str(db_path))
    con.execute("CREATE TABLE schema_version (version INTEGER)")
    for version in range(1, 7):
        con.execute(migration_sql(version, ""))
        con.execute("INSERT INTO schema_version VALUES (?)", [version])
    tid = uuid.UUID(int=(1 << 76) | 1)
    con.execute("INSERT INTO stats_rollup VALUES (0, 99, 99, 0, 1000.00)")
    con.execute("INSERT INTO latency_histogram VALUES (0, 5000, 99)")
    con.execute(
        "INSERT INTO audit_log VALUES (?, now()::TIMESTAMP, 'payment.decided', 1, '{}')", [tid]
    )
    con.close()
    with Engine.open(db_path, seed=1, card_key="") as eng:
        assert eng.store.schema_version() == SCHEMA_VERSION >= 7
        assert eng.stats().total == 0
        assert eng.store.query("SELECT count(*) FROM stats_rollup WHERE source = 0") == [(0,)]
        assert eng.store.query("SELECT count(*) FROM latency_histogram") == [(0,)]
        decided = "SELECT count(*) FROM audit_log WHERE event = 'payment.decided'"
        assert eng.store.query(decided) == [(0,)]
