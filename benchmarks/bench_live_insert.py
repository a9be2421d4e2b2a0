"""What one live group's INSERT costs in DuckDB, by the width of the table and the rows it carries.

One command: ``.venv/bin/python benchmarks/bench_live_insert.py [--repeat 150]``.

Builds a real database through the engine (a few live payments), captures the Arrow table the live
writer hands to ``INSERT INTO transactions`` for one payment, then times (median of ``--repeat``,
each inside a transaction that is rolled back, so the table never grows) that insert next to the
same row as literal VALUES, into an in-memory table of the same width, and narrower tables: the
reference rows of the table are the narrow ones, measured in the same run.

A second table times a few of the same statements while another Python thread keeps running
(what the event loop does under load), next to ``SELECT 1`` as the reference: DuckDB's Python
binding takes the GIL back several times during one ``execute``, and each time it must wait
for the other thread to give it up (up to ``sys.getswitchinterval()``, 5 ms). "GIL waits" is the
extra time in units of that interval. This is why the live writer is one thread that decides
and commits, not a pipeline of two (benchmarks/README.md, "The GIL").
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

import engine.store as store_module
from engine.service import Engine


def live_group_rows(folder: Path, payments: int = 40) -> tuple[Path, list[pa.Table]]:
    """A database with ``payments`` live payments, and the Arrow tables the writer inserted."""
    captured: list[pa.Table] = []
    append = store_module._append_transactions

    def capture(cur: duckdb.DuckDBPyConnection, rows: pa.Table) -> object:
        captured.append(rows)
        return append(cur, rows)

    store_module._append_transactions = capture
    db = folder / "live.duckdb"
    try:
        with Engine.open(db, seed=1, card_key="", backup_interval_s=0) as engine:
            for i in range(payments):
                engine.authorize(
                    {"card_number": "4111111111111111", "amount": f"{10 + i}.00", "merchant": "M"}
                )
    finally:
        store_module._append_transactions = append
    return db, captured


def with_uuids(rows: pa.Table) -> pa.Table:
    """The rows as the store sends them: its UUID columns as Arrow's UUID extension type."""
    for name in store_module._UUID_COLUMNS:
        chunks = [pa.ExtensionArray.from_storage(pa.uuid(), c) for c in rows.column(name).chunks]
        index = rows.schema.get_field_index(name)
        rows = rows.set_column(index, name, pa.chunked_array(chunks, pa.uuid()))
    return rows


def literal(value: object) -> str:
    """``value`` as a SQL literal (the benchmark's own rows only: numbers, text, booleans)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float) or type(value).__name__ == "Decimal":
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def timed(con: duckdb.DuckDBPyConnection, insert: Callable[[], object], repeat: int) -> float:
    """Median ms of ``insert`` inside a transaction that is rolled back each time."""
    samples = []
    for _ in range(repeat):
        con.execute("BEGIN")
        started = time.perf_counter()
        insert()
        samples.append(time.perf_counter() - started)
        con.execute("ROLLBACK")
    return statistics.median(samples) * 1000


@contextlib.contextmanager
def busy_python_thread() -> Iterator[None]:
    """Another thread running Python (it only gives the GIL up when the interpreter makes it)."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


Case = tuple[str, duckdb.DuckDBPyConnection, Callable[[], object]]


def gil_rows(cases: list[Case], repeat: int) -> None:
    """Each case alone and beside a busy Python thread, as table rows."""
    interval_ms = sys.getswitchinterval() * 1000
    waits = f"GIL waits (of {interval_ms:g} ms)"
    print(f"\n| statement | alone ms | beside a busy Python thread ms | {waits} |")
    print("|---|---:|---:|---:|")
    for label, connection, statement in cases:
        alone = timed(connection, statement, repeat)
        with busy_python_thread():
            busy = timed(connection, statement, max(10, repeat // 5))
        print(f"| {label} | {alone:.2f} | {busy:.2f} | {(busy - alone) / interval_ms:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ptsim-insert-") as tmp:
        db, captured = live_group_rows(Path(tmp))
        one = with_uuids(captured[-1])
        chunked = with_uuids(pa.concat_tables(captured[-32:]))
        combined = chunked.combine_chunks()
        names = one.column_names
        cols = ", ".join(names)
        first20 = one.select(names[:20])
        two = one.select(names[:2])
        con = duckdb.connect(str(db))
        memory = duckdb.connect()
        views = {"one": one, "first20": first20, "two": two, "chunked": chunked}
        for name, table in {**views, "combined": combined}.items():
            con.register(name, table)
        memory.register("one", one)
        width = con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'transactions'"
        ).fetchone()[0]
        values = con.execute(f"SELECT {cols} FROM one").fetchone()
        as_values = f"INSERT INTO transactions ({cols}) VALUES ({', '.join(map(literal, values))})"
        con.execute("CREATE TABLE wide_copy AS SELECT * FROM transactions LIMIT 0")
        con.execute(f"CREATE TABLE narrow20 AS SELECT {', '.join(names[:20])} FROM one LIMIT 0")
        con.execute(f"CREATE TABLE narrow2 AS SELECT {', '.join(names[:2])} FROM one LIMIT 0")
        memory.execute("CREATE TABLE same_width AS SELECT * FROM one LIMIT 0")
        c20 = ", ".join(names[:20])
        cases = [
            (f"1 live row, {len(names)} columns from Arrow, into transactions ({width} columns)",
             con, lambda: con.execute(f"INSERT INTO transactions ({cols}) SELECT {cols} FROM one")),
            ("the same row as literal VALUES (no Arrow)", con, lambda: con.execute(as_values)),
            ("the same row into an in-memory table of its width", memory,
             lambda: memory.execute("INSERT INTO same_width SELECT * FROM one")),
            (f"20 of its columns into a {width}-column table", con,
             lambda: con.execute(f"INSERT INTO wide_copy ({c20}) SELECT * FROM first20")),
            ("20 of its columns into a 20-column table (reference)", con,
             lambda: con.execute("INSERT INTO narrow20 SELECT * FROM first20")),
            ("2 columns into a 2-column table (reference)", con,
             lambda: con.execute("INSERT INTO narrow2 SELECT * FROM two")),
            ("32 live rows in 32 Arrow chunks", con,
             lambda: con.execute(f"INSERT INTO transactions ({cols}) SELECT {cols} FROM chunked")),
            ("the same 32 rows in one chunk (what the writer sends)", con,
             lambda: con.execute(f"INSERT INTO transactions ({cols}) SELECT {cols} FROM combined")),
        ]  # fmt: skip
        print(f"duckdb {duckdb.__version__}, median of {args.repeat}, rolled back each time\n")
        print("| insert (no commit) | ms |\n|---|---:|")
        for label, connection, insert in cases:
            print(f"| {label} | {timed(connection, insert, args.repeat):.2f} |")
        gil_rows(
            [
                ("SELECT 1 (reference)", con, lambda: con.execute("SELECT 1").fetchall()),
                cases[0],
                cases[1],
                cases[-1],
            ],
            args.repeat,
        )
        con.close()
        memory.close()


if __name__ == "__main__":
    main()
