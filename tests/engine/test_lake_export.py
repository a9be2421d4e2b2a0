"""Exports (issue 15, "Getting data out"): a lake run's file is stitched from its partition files'
row groups, byte for byte, and holds exactly what DuckDB's writer exports of the same run; a
database run's export equals its stored rows; an export cut short leaves no file."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import engine.lake.export as stitcher
import engine.service as service
from engine.errors import InvalidRequestError, NotFoundError, StoreError
from engine.lake import writer as lake_writer
from engine.lake.export import EXPORT_SCHEMA, export_lake_run, plan
from engine.lake.layout import Lake
from engine.service import Engine
from engine.transaction_row import NAMES

PARAMS = {"rows": 24_000, "seed": 11, "days": 20, "fraud_rate": 0.03, "chunk_rows": 7_000}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An engine with a lake run of three partitions (row groups of 4,000 rows, so each
    partition holds several, the last one shorter) and the database run of the same
    parameters."""
    folder = tmp_path_factory.mktemp("export")
    eng = Engine.open(folder / "db.duckdb", lake=str(folder / "lake"), card_key="k")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(lake_writer, "_ROW_GROUP", 4_000)
            lake_run = eng.simulate_into_lake(folder / "lake", PARAMS, partition_rows=10_000).id
        db_run = eng.simulate(PARAMS).id
        yield eng, lake_run, db_run, folder
    finally:
        eng.close()


def _through_duckdb(eng: Engine, run: int, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Export ``run`` with DuckDB's writer (the path of database runs and older lakes)."""
    with monkeypatch.context() as patch:
        patch.setattr(service, "plan_stitched", lambda *_: None)
        eng.export_run(run, target)


def _assert_same_file_content(a: pa.Table, b: pa.Table) -> None:
    """Same columns, names, Arrow types and values, in the same order."""
    assert a.column_names == b.column_names == EXPORT_SCHEMA.names
    assert [f.type for f in a.schema] == [f.type for f in b.schema] == EXPORT_SCHEMA.types
    for name in a.column_names:
        assert a.column(name).equals(b.column(name)), name


def test_a_lake_export_is_stitched_from_the_partition_files(runs: Any, tmp_path: Path) -> None:
    """Every row group of every partition, in order, with its column chunks' bytes unchanged."""
    eng, lake_run, _, folder = runs
    assert eng.export_run(lake_run, tmp_path / "out.parquet") == PARAMS["rows"]
    manifest = Lake(folder / "lake").manifest(lake_run)
    parts = [folder / "lake" / p.path for p in manifest.partitions]
    assert len(parts) == 3
    sources = [(p, pq.ParquetFile(p).metadata, g) for p in parts for g in range(_groups(p))]
    out = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert out.num_row_groups == len(sources) > len(parts)  # row groups of 4,000 and 2,000 rows
    exported = (tmp_path / "out.parquet").read_bytes()
    for index, (path, meta, group) in enumerate(sources):
        source, target = meta.row_group(group), out.row_group(index)
        assert target.num_rows == source.num_rows
        data = path.read_bytes()
        for column in range(source.num_columns):
            name = source.column(column).path_in_schema
            assert _chunk(exported, target, name) == _chunk(data, source, name), name


def _groups(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_row_groups


def _chunk(data: bytes, group: Any, name: str) -> bytes:
    """The bytes of column ``name``'s chunk in a row group (dictionary page included)."""
    for i in range(group.num_columns):
        column = group.column(i)
        if column.path_in_schema == name:
            start = column.dictionary_page_offset or column.data_page_offset
            return data[start : start + column.total_compressed_size]
    raise KeyError(name)


def test_a_lake_export_holds_what_duckdbs_writer_exports(
    runs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stitched file and DuckDB's export of the same lake run: same columns, types and
    values (run_id the run's, the shadow columns NULL, amount_minor), read by pyarrow, pandas
    and DuckDB alike."""
    eng, lake_run, _, _ = runs
    eng.export_run(lake_run, tmp_path / "stitched.parquet")
    _through_duckdb(eng, lake_run, tmp_path / "duckdb.parquet", monkeypatch)
    stitched = pq.read_table(tmp_path / "stitched.parquet")
    _assert_same_file_content(stitched, pq.read_table(tmp_path / "duckdb.parquet"))
    assert set(stitched.column("run_id").to_pylist()) == {lake_run}
    assert stitched.column("shadow_score").null_count == PARAMS["rows"]
    frames = [pd.read_parquet(tmp_path / f"{n}.parquet") for n in ("stitched", "duckdb")]
    assert frames[0].dtypes.to_dict() == frames[1].dtypes.to_dict()
    pd.testing.assert_frame_equal(frames[0], frames[1])
    con = duckdb.connect()
    described = [
        con.execute(f"DESCRIBE SELECT * FROM '{tmp_path / n}.parquet'").fetchall()
        for n in ("stitched", "duckdb")
    ]
    assert [r[:2] for r in described[0]] == [r[:2] for r in described[1]]
    ids = stitched.column("id").combine_chunks().storage.to_pylist()
    assert ids == sorted(ids)  # event order


def test_polars_reads_a_stitched_export(runs: Any, tmp_path: Path) -> None:
    polars = pytest.importorskip("polars")
    eng, lake_run, _, _ = runs
    eng.export_run(lake_run, tmp_path / "out.parquet")
    frame = polars.read_parquet(tmp_path / "out.parquet")
    assert frame.height == PARAMS["rows"] and frame.columns == EXPORT_SCHEMA.names


def test_a_database_export_equals_the_stored_rows(runs: Any, tmp_path: Path) -> None:
    """DuckDB's writer: every stored column in event order, typed as EXPORT_SCHEMA says (the
    schema a stitched file is held to), amount_minor the exact amount in cents."""
    eng, _, db_run, _ = runs
    assert eng.export_run(db_run, tmp_path / "out.parquet") == PARAMS["rows"]
    exported = pq.read_table(tmp_path / "out.parquet")
    assert [f.type for f in exported.schema] == EXPORT_SCHEMA.types
    with eng.store.read() as tx:
        stored = tx.arrow(
            f"SELECT {', '.join(NAMES)}, CAST(amount * 100 AS BIGINT) AS amount_minor "
            "FROM transactions WHERE run_id = ? ORDER BY id",
            [db_run],
        )
    for name in exported.column_names:
        got, want = exported.column(name), stored.column(name)
        if pa.types.is_dictionary(want.type):  # the store reads ENUMs as dictionaries
            want = want.cast(pa.string())
        values = got.to_pylist()
        if pa.types.is_string(want.type) and not pa.types.is_string(got.type):
            values = [str(v) for v in values]  # the store reads UUIDs as text
        assert values == want.to_pylist(), name


def test_the_lake_and_database_exports_of_one_seed_hold_the_same_rows(
    runs: Any, tmp_path: Path
) -> None:
    eng, lake_run, db_run, _ = runs
    eng.export_run(lake_run, tmp_path / "lake.parquet")
    eng.export_run(db_run, tmp_path / "db.parquet")
    lake, db = (pq.read_table(tmp_path / f"{n}.parquet") for n in ("lake", "db"))
    assert [f.type for f in lake.schema] == [f.type for f in db.schema]
    named = ["id", "run_id"]  # where a row is stored: its run and id
    assert lake.drop_columns(named).to_pylist() == db.drop_columns(named).to_pylist()


def test_a_lake_written_before_the_export_types_goes_through_duckdb(
    runs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition file with millisecond timestamps (the lake's first layout) is not stitched
    (a wrong unit would shift every time): the export reads it with DuckDB, same content."""
    eng, lake_run, _, folder = runs
    eng.export_run(lake_run, tmp_path / "before.parquet")
    lake = Lake(folder / "lake")
    first = folder / "lake" / lake.manifest(lake_run).partitions[0].path
    original = first.read_bytes()
    table = pq.read_table(first)
    index = table.schema.get_field_index("created_at")
    table = table.set_column(index, "created_at", table.column(index).cast(pa.timestamp("ms")))
    try:
        pq.write_table(table, first, compression="snappy")
        assert plan(lake, lake.manifest(lake_run)) is None
        assert eng.export_run(lake_run, tmp_path / "after.parquet") == PARAMS["rows"]
    finally:
        first.write_bytes(original)
    _assert_same_file_content(
        pq.read_table(tmp_path / "after.parquet"), pq.read_table(tmp_path / "before.parquet")
    )


def test_an_export_cut_short_leaves_no_file(
    runs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that fails midway (a disk error): one sentence, and neither the target nor a
    part of it is left behind, for the stitched path and for DuckDB's."""
    eng, lake_run, db_run, _ = runs
    calls = []

    def failing(piece: Any, out: int) -> None:
        calls.append(piece)
        if len(calls) > 2:
            raise OSError(5, "Input/output error")
        original(piece, out)

    original = stitcher._copy_range
    monkeypatch.setattr(stitcher, "_copy_range", failing)
    with pytest.raises(StoreError, match="could not be read or written"):
        eng.export_run(lake_run, tmp_path / "out.parquet")
    assert len(calls) == 3 and list(tmp_path.iterdir()) == []

    def half_written(sql: str, params: Any, aside: Path) -> int:
        aside.write_bytes(b"PAR1 and half a row group")  # DuckDB's writer stopped midway
        raise StoreError("The export failed; nothing was written: disk full")

    monkeypatch.setattr(eng.store, "copy_to_parquet", half_written)
    with pytest.raises(StoreError, match="The export failed"):
        eng.export_run(db_run, tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == []


def test_the_export_is_written_aside_then_renamed(runs: Any, tmp_path: Path) -> None:
    """An older file at the target is replaced whole, never overwritten in place."""
    eng, lake_run, _, _ = runs
    target = tmp_path / "out.parquet"
    target.write_bytes(b"an older export")
    before = target.stat().st_ino
    eng.export_run(lake_run, target)
    assert target.stat().st_ino != before and pq.read_metadata(target).num_rows == PARAMS["rows"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_export_lake_run_needs_no_engine(runs: Any, tmp_path: Path) -> None:
    """From the lake alone (what `ptsim export --lake` runs): the engine's bytes; unknown runs
    and runs still being written refused in one sentence."""
    eng, lake_run, _, folder = runs
    lake = Lake(folder / "lake")
    assert export_lake_run(lake, lake_run, tmp_path / "alone.parquet") == PARAMS["rows"]
    eng.export_run(lake_run, tmp_path / "engine.parquet")
    assert (tmp_path / "alone.parquet").read_bytes() == (tmp_path / "engine.parquet").read_bytes()
    with pytest.raises(NotFoundError):
        export_lake_run(lake, lake_run + 99, tmp_path / "x.parquet")
    running = lake.manifest(lake_run).model_copy(update={"status": "running", "writer": None})
    with pytest.raises(InvalidRequestError, match="still being written") as refused:
        running.require_readable("run")
    assert refused.value.field == "run"


def test_a_partition_footer_round_trips_byte_for_byte(runs: Any) -> None:
    """The Thrift types know every field pyarrow writes (a field they dropped would silently
    change the file: fastparquet's writer loses the UUID logical type this way)."""
    _, lake_run, _, folder = runs
    part = folder / "lake" / Lake(folder / "lake").manifest(lake_run).partitions[0].path
    data = part.read_bytes()
    (length,) = struct.unpack("<i", data[-8:-4])
    footer = data[-8 - length : -8]
    assert stitcher._encode(stitcher._decode(footer)) == footer


def test_the_streamed_bytes_are_the_written_file(runs: Any, tmp_path: Path) -> None:
    eng, lake_run, _, _ = runs
    stitched = eng.stitched_export(lake_run)
    assert stitched is not None
    streamed = b"".join(stitched.blocks())
    assert len(streamed) == stitched.size
    eng.export_run(lake_run, tmp_path / "out.parquet")
    assert streamed == (tmp_path / "out.parquet").read_bytes()
    assert stitched.rows == PARAMS["rows"] and stitched.row_groups > 3
    for cut in (len(streamed) // 2, len(streamed) - 1):  # a transfer cut short never parses
        with pytest.raises(pa.ArrowInvalid):
            pq.read_table(pa.BufferReader(streamed[:cut]))


def test_ptsim_export_of_a_lake_run(
    runs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ptsim export --lake`: stitched from the lake alone; an older lake through an engine on
    no database (the same content); an unknown run refused in one sentence."""
    from workbench.cli import main

    eng, lake_run, _, folder = runs
    argv = ["export", "--run", str(lake_run), "--lake", str(folder / "lake")]
    assert main([*argv, "--to", str(tmp_path / "a")]) == 0
    eng.export_run(lake_run, tmp_path / "engine.parquet")
    exported = tmp_path / "a" / f"run-{lake_run}.parquet"
    assert exported.read_bytes() == (tmp_path / "engine.parquet").read_bytes()
    monkeypatch.setattr(stitcher, "plan", lambda *_: None)  # as for a lake of the first layout
    monkeypatch.setattr(service, "plan_stitched", lambda *_: None)
    assert main([*argv, "--to", str(tmp_path / "b")]) == 0
    _assert_same_file_content(
        pq.read_table(tmp_path / "b" / f"run-{lake_run}.parquet"), pq.read_table(exported)
    )
    capsys.readouterr()
    unknown = ["export", "--run", str(lake_run + 99), "--lake", str(folder / "lake")]
    assert main([*unknown, "--to", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err and err.count("\n") == 1
    assert not list((tmp_path / "c").iterdir())


def test_a_run_stopped_before_its_first_partition_exports_no_rows(
    runs: Any, tmp_path: Path
) -> None:
    """An interrupted run with no committed partition: a valid file with the export's columns
    and no row (what DuckDB's writer gives for it too)."""
    _, lake_run, _, folder = runs
    lake = Lake(folder / "lake")
    empty = lake.manifest(lake_run).model_copy(update={"partitions": [], "status": "interrupted"})
    stitched = plan(lake, empty)
    assert stitched is not None and stitched.rows == 0
    stitched.write(tmp_path / "empty.parquet")
    table = pq.read_table(tmp_path / "empty.parquet")
    assert table.num_rows == 0 and table.schema.names == EXPORT_SCHEMA.names
    assert [f.type for f in table.schema] == EXPORT_SCHEMA.types


def test_a_lake_on_an_fsspec_url_is_stitched_through_its_file_system(tmp_path: Path) -> None:
    """fsspec's in-memory file system (an object store's code path): the file is read through
    the lake's file system, written and streamed alike."""
    url = "memory://ptsim-export-lake"
    try:
        with Engine.open(":memory:", card_key="k", lake=url) as eng:
            run = eng.simulate_into_lake(url, {**PARAMS, "rows": 6_000}, partition_rows=2_500).id
            stitched = eng.stitched_export(run)
            assert stitched is not None and not stitched.lake.local
            assert eng.export_run(run, tmp_path / "out.parquet") == 6_000
            assert b"".join(stitched.blocks()) == (tmp_path / "out.parquet").read_bytes()
            assert pq.read_metadata(tmp_path / "out.parquet").num_row_groups >= 3
    finally:
        Lake(url).fs.rm("/ptsim-export-lake", recursive=True)
