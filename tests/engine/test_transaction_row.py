"""engine/transaction_row.py is the one definition of a transactions row: the migrated table, the
live writer's rows, bulk generation's rows and lookups all agree with it."""

from __future__ import annotations

import numpy as np
import pytest

from engine import transaction_row
from engine.models import StoredTransaction
from engine.service import Engine
from engine.transaction_row import BULK, COLUMNS, LIVE, NAMES, written_by


@pytest.fixture
def engine(tmp_path):
    with Engine.open(tmp_path / "rows.duckdb", card_key="row-definition-key") as eng:
        yield eng


def test_the_migrated_table_has_exactly_the_defined_columns(engine) -> None:
    stored = engine.store.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'transactions' ORDER BY ordinal_position"
    )
    enums = {
        name
        for (name,) in engine.store.query(
            "SELECT type_name FROM duckdb_types() WHERE logical_type = 'ENUM'"
        )
    }

    def spelled(sql_type: str) -> str:  # information_schema spells an ENUM type out
        if sql_type not in enums:
            return sql_type
        ((labels,),) = engine.store.query(f"SELECT enum_range(NULL::{sql_type})")
        return "ENUM(" + ", ".join(f"'{label}'" for label in labels) + ")"

    assert stored == [(c.name, spelled(c.sql_type)) for c in COLUMNS]


def test_the_live_writer_appends_exactly_the_live_columns(engine, monkeypatch) -> None:
    seen = []
    append = engine.store.append_live_group

    def spy(rows, *args, **kwargs):
        seen.append(rows.column_names)
        return append(rows, *args, **kwargs)

    monkeypatch.setattr(engine.store, "append_live_group", spy)
    engine.authorize({"card_number": "4111111111111111", "amount": "5.00", "merchant": "Shop"})
    assert seen and all(set(names) == set(written_by(LIVE)) for names in seen)


def test_bulk_generation_appends_exactly_the_bulk_columns(engine, monkeypatch) -> None:
    from engine.store import WriteTx

    seen = []
    append = WriteTx.append_transactions

    def spy(self, rows):
        seen.append(rows.column_names)
        return append(self, rows)

    monkeypatch.setattr(WriteTx, "append_transactions", spy)
    engine.simulate({"rows": 2_000, "seed": 3, "days": 1})
    assert seen and all(set(names) == set(written_by(BULK)) for names in seen)


def test_every_column_is_set_by_some_path_and_documented() -> None:
    assert len(set(NAMES)) == len(NAMES)
    for column in COLUMNS:
        assert column.set_by and column.doc, column.name
    # live rows leave run_id, ground truth and latency (written back) to NULL
    assert set(NAMES) - set(written_by(LIVE)) == {
        "run_id", "latency_ms", "is_fraud", "fraud_scenario", "label_available_at",
        "dispute_reason",
    }  # fmt: skip


def test_lookups_read_every_stored_field_of_a_transaction(engine) -> None:
    run = engine.simulate({"rows": 500, "seed": 4, "days": 1})
    (tid,) = engine.store.query("SELECT id FROM transactions WHERE run_id = ? LIMIT 1", [run.id])[0]
    stored = engine.get_transaction(tid)
    # the service answers the score rounded and risk_flag as text (the column holds the flag)
    same_named = [
        name for name in StoredTransaction.model_fields if name in NAMES and name != "risk_flag"
    ]
    row = engine.store.fetch_transaction(tid)
    assert set(row) == set(NAMES)
    for name in same_named:
        value = getattr(stored, name)
        assert value == row[name] or np.isclose(value, row[name], rtol=1e-3), name


def test_the_run_hash_covers_every_column_but_id_and_run_id() -> None:
    sql = transaction_row.content_hash_sql()
    hashed = [c.name for c in COLUMNS if c.hash_sql]
    assert set(NAMES) - set(hashed) == {"id", "run_id"}
    assert all(name in sql for name in hashed)
