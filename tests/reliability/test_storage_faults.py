"""Damaged storage: a WAL cut short, zeroed, deleted or with a flipped byte; blocks that fail their
checksums; backups verified and never rotating out good ones; no silent loss, no more discarded
than the damage forces.

A child process commits :data:`PAYMENTS` payments one by one and exits without a checkpoint (as
SIGKILL would), leaving them in the WAL. Each test damages a copy of that file set and opens it
the way the server does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support import ADMIN_TOKEN, payment_body

from engine.errors import StoreError

PAYMENTS = 600
_WRITER = """
import json, os, sys
from engine.service import Engine
engine = Engine.open(sys.argv[1], seed=5, card_key="", backup_interval_s=0)
ids = [str(engine.authorize(json.loads(sys.argv[2])).transaction_id) for _ in range({n})]
print(json.dumps(ids), flush=True)
os._exit(0)  # no checkpoint: the payments are in the WAL only
"""


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A database with a checkpointed schema and one verified backup, then PAYMENTS committed
    payments in its WAL; and their ids in commit order."""
    from engine.service import Engine

    folder = tmp_path_factory.mktemp("crashed")
    db = folder / "faults.duckdb"
    with Engine.open(db, seed=5, card_key="", backup_interval_s=0) as engine:
        engine.store.backup()
    out = subprocess.run(
        [sys.executable, "-c", _WRITER.format(n=PAYMENTS), str(db), json.dumps(payment_body())],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    ids = json.loads(out.strip().splitlines()[-1])
    assert (folder / "faults.duckdb.wal").stat().st_size > 0
    return db, ids


def _copy(crashed: tuple[Path, list[str]], tmp_path: Path) -> Path:
    source, _ = crashed
    for item in source.parent.iterdir():
        copy = shutil.copytree if item.is_dir() else shutil.copyfile
        copy(item, tmp_path / item.name)
    return tmp_path / source.name


def _wal(db: Path) -> Path:
    return db.with_name(db.name + ".wal")


def _open_like_the_server(db: Path) -> tuple[dict[str, Any], list[str]]:
    """Start an engine on ``db``: its /health answer and the ids it holds, in order."""
    from engine.service import Engine

    with Engine.open(db, seed=5, card_key="", backup_interval_s=0) as engine:
        health = engine.health()
        ids = [str(r[0]) for r in engine.store.query("SELECT id FROM transactions ORDER BY id")]
    return health, ids


def _assert_loss_reported(health: dict[str, Any], present: list[str], ids: list[str]) -> None:
    """Exactly the confirmed payments the database lacks are reported, and they are the newest."""
    assert present == ids[: len(present)]  # what survived is a prefix: nothing else was dropped
    missing = len(ids) - len(present)
    assert missing > 0
    assert health["status"] == "degraded"
    report = " ".join(health["storage"])
    assert f"{missing:,} committed transactions are missing" in report, report
    assert health["recovered_from_backup"] is None  # the intact database was not set aside


def test_a_crash_with_an_intact_wal_loses_nothing_and_reports_nothing(
    crashed: tuple[Path, list[str]], tmp_path: Path
) -> None:
    db = _copy(crashed, tmp_path)
    health, present = _open_like_the_server(db)
    assert present == crashed[1]
    assert health["status"] == "ok" and health["storage"] == []
    health, _ = _open_like_the_server(db)  # and again after a clean stop
    assert health["status"] == "ok"


@pytest.mark.parametrize("damage", ["cut in half", "zeroed", "deleted"])
def test_a_damaged_wal_that_replays_silently_is_reported(
    crashed: tuple[Path, list[str]], tmp_path: Path, damage: str
) -> None:
    db = _copy(crashed, tmp_path)
    wal = _wal(db)
    size = wal.stat().st_size
    if damage == "cut in half":
        os.truncate(wal, size // 2)
    elif damage == "zeroed":
        wal.write_bytes(bytes(size))
    else:
        wal.unlink()
    health, present = _open_like_the_server(db)
    _assert_loss_reported(health, present, crashed[1])
    if damage == "cut in half":
        assert 0 < len(present) < PAYMENTS  # the intact half was kept
    print(f"\nWAL {damage}: {PAYMENTS - len(present)} of {PAYMENTS} missing, reported")
    again, _ = _open_like_the_server(db)  # reported once; the file is consistent again
    assert again["status"] == "ok"


def _flip(path: Path, position: int) -> None:
    with path.open("r+b") as handle:
        handle.seek(position)
        byte = handle.read(1)[0]
        handle.seek(position)
        handle.write(bytes([byte ^ 0x10]))


def _replay_error(db: Path) -> str | None:
    """What DuckDB says replaying ``db``'s WAL read-only (nothing written), or None if it opens."""
    try:
        duckdb.connect(str(db), read_only=True).close()
    except duckdb.Error as exc:
        return str(exc)
    return None


def test_a_flipped_wal_byte_keeps_the_database_and_replays_the_intact_prefix(
    crashed: tuple[Path, list[str]], tmp_path: Path
) -> None:
    db = _copy(crashed, tmp_path)
    wal = _wal(db)
    pristine = wal.read_bytes()
    # A byte in the middle whose flip fails its entry's checksum (a flipped length field can
    # instead look like a torn tail, the silent case above).
    for position in range(len(pristine) // 2, len(pristine)):
        wal.write_bytes(pristine)
        _flip(wal, position)
        error = _replay_error(db)
        if error and "Corrupt WAL file" in error:
            break
    else:
        pytest.fail("no flipped byte made the WAL fail its checksum")
    damaged = wal.read_bytes()
    health, present = _open_like_the_server(db)
    _assert_loss_reported(health, present, crashed[1])
    assert len(present) >= PAYMENTS // 3  # everything before the damaged entry was replayed
    assert "intact first" in " ".join(health["storage"])
    kept = list(tmp_path.glob("faults.duckdb.wal.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == damaged  # the WAL as found, unchanged
    assert not list(tmp_path.glob("faults.duckdb.damaged-*"))  # the database was not set aside
    print(f"\nflipped WAL byte: {PAYMENTS - len(present)} of {PAYMENTS} missing, reported")


def test_a_damaged_wal_header_opens_the_database_without_the_wal(
    crashed: tuple[Path, list[str]], tmp_path: Path
) -> None:
    db = _copy(crashed, tmp_path)
    for position in range(9, 25):  # the header's database identifier (random per database,
        _flip(_wal(db), position)  # varint-coded: flip all of it, whatever its byte layout)
    assert "WAL" in (_replay_error(db) or "")
    health, present = _open_like_the_server(db)
    _assert_loss_reported(health, present, crashed[1])
    assert "opened as of its last checkpoint" in " ".join(health["storage"])
    assert list(tmp_path.glob("faults.duckdb.wal.damaged-*"))


def _ptsim_backup(db: Path) -> subprocess.CompletedProcess[str]:
    ptsim = str(Path(sys.executable).with_name("ptsim"))
    env = {**os.environ, "PTSIM_BACKUP_INTERVAL_S": "0"}
    return subprocess.run(
        [ptsim, "backup", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("damage", ["database header", "WAL cut in half"])
def test_ptsim_backup_on_a_damaged_file_refuses_and_changes_nothing(
    crashed: tuple[Path, list[str]], tmp_path: Path, damage: str
) -> None:
    db = _copy(crashed, tmp_path)
    if damage == "database header":
        with db.open("r+b") as handle:
            handle.write(b"\xff" * 4096)
    else:
        os.truncate(_wal(db), _wal(db).stat().st_size // 2)
    before = _snapshot(tmp_path)
    made = _ptsim_backup(db)
    assert made.returncode == 2, made.stdout + made.stderr
    assert "Backup written" not in made.stdout
    message = made.stderr.strip().splitlines()
    assert len(message) == 1 and "is damaged" in message[0] and "Traceback" not in made.stderr
    assert _snapshot(tmp_path) == before  # no file restored, moved, replayed or written


# -- checksums and backups ---------------------------------------------------------------------


def _corrupt_a_block(db: Path, table: str) -> None:
    """Flip a byte inside a data block that holds only ``table``'s data (the file still opens)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [
            name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        ]
        blocks = {
            name: {
                b
                for (b,) in con.execute(
                    f"SELECT block_id FROM pragma_storage_info('{name}')"
                ).fetchall()
            }
            for name in names
        }
        (block_size,) = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()
    finally:
        con.close()
    others = set().union(*(ids for name, ids in blocks.items() if name != table))
    block = min(b for b in blocks[table] - others if b is not None and b >= 0)
    _flip(db, 3 * 4096 + block * block_size + 100)  # after the three header pages


@pytest.fixture
def corrupt_db(tmp_path: Path) -> Path:
    """A database with payments, one good backup and a table of notes (written by another
    tool, never read at start-up) of which one block is then damaged."""
    from engine.service import Engine

    db = tmp_path / "corrupt.duckdb"
    with Engine.open(db, seed=2, card_key="", backup_interval_s=0) as engine:
        for i in range(20):
            engine.authorize(payment_body(amount=1 + i))
        engine.store.backup()
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE notes AS SELECT i, repeat(md5(i::VARCHAR), 8) AS note FROM range(20000) r(i)"
    )
    con.close()
    _corrupt_a_block(db, "notes")
    return db


def test_a_backup_of_a_file_failing_its_checksums_is_refused_and_marks_health_degraded(
    corrupt_db: Path,
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from engine.backup import KEEP_BACKUPS, list_backups
    from engine.service import Engine

    good = list_backups(corrupt_db)
    assert len(good) == 1
    with Engine.open(corrupt_db, seed=2, card_key="", admin_token=ADMIN_TOKEN) as engine:
        assert engine.health()["status"] == "ok"  # nothing read the damaged block yet
        with TestClient(create_app(engine)) as client:
            for _ in range(KEEP_BACKUPS + 1):  # more than the rotation keeps
                answer = client.post(
                    "/admin/backup", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
                )
                assert answer.status_code == 503, answer.text
                error = answer.json()["error"]
                assert "fails its checksums" in error["message"]
                assert str(corrupt_db.parent) not in answer.text  # no absolute path
            health = client.get("/health").json()
    assert health["status"] == "degraded"
    assert "checksum" in " ".join(health["storage"])
    assert list_backups(corrupt_db) == good  # the verified backup was not rotated out
    assert not list(corrupt_db.with_name("corrupt.duckdb.backups").glob("*.partial*"))


def test_a_block_failing_its_checksum_at_query_time_marks_health_degraded(
    corrupt_db: Path,
) -> None:
    from engine.errors import StoreDamagedError
    from engine.service import Engine

    with Engine.open(corrupt_db, seed=2, card_key="", backup_interval_s=0) as engine:
        with pytest.raises(StoreDamagedError, match="failed its checksum"):
            engine.store.query("SELECT max(hash(COLUMNS(*))) FROM notes")
        health = engine.health()
    assert health["status"] == "degraded"
    assert "checksum" in " ".join(health["storage"])


def test_backups_are_verified_copies_and_rotation_keeps_the_newest(tmp_path: Path) -> None:
    from engine.backup import KEEP_BACKUPS, list_backups
    from engine.service import Engine

    db = tmp_path / "rot.duckdb"
    with Engine.open(db, seed=2, card_key="", backup_interval_s=0) as engine:
        written = []
        for i in range(KEEP_BACKUPS + 2):
            engine.authorize(payment_body(amount=1 + i))
            written.append(engine.store.backup())
    assert list_backups(db) == written[-KEEP_BACKUPS:]
    con = duckdb.connect(str(written[-1]), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM transactions").fetchone()[0] == KEEP_BACKUPS + 2
    finally:
        con.close()


def test_a_backup_that_fails_verification_keeps_no_file(tmp_path: Path, monkeypatch: Any) -> None:
    """The child copies and verifies against the counts taken at the checkpoint; here those
    counts are off by one, as a copy missing rows would be."""
    from engine import backup as backup_module
    from engine.service import Engine

    real_counts = backup_module._row_counts

    def one_row_more(cur: Any, database: str) -> dict[str, int]:
        counts = real_counts(cur, database)
        return {**counts, "transactions": counts["transactions"] + 1}

    db = tmp_path / "verify.duckdb"
    with Engine.open(db, seed=2, card_key="", backup_interval_s=0) as engine:
        engine.authorize(payment_body())
        monkeypatch.setattr(backup_module, "_row_counts", one_row_more)
        with pytest.raises(StoreError, match="Backup refused: the copy failed its check"):
            engine.store.backup()
        assert engine.health()["status"] == "ok"  # a bad copy is not damage of the database
    assert not list(db.with_name("verify.duckdb.backups").iterdir())


def test_a_partial_backup_left_by_a_kill_is_removed_at_the_next_start(tmp_path: Path) -> None:
    from engine.service import Engine

    db = tmp_path / "partial.duckdb"
    with Engine.open(db, seed=2, card_key="", backup_interval_s=0):
        pass
    folder = db.with_name("partial.duckdb.backups")
    folder.mkdir()
    (folder / "backup-20240101T000000000000Z.partial").write_bytes(b"half a copy")
    (folder / "backup-20240101T000000000000Z.partial.wal").write_bytes(b"its log")
    with Engine.open(db, seed=2, card_key="", backup_interval_s=0):
        assert list(folder.iterdir()) == []


def test_restore_starts_a_fresh_commit_record(tmp_path: Path) -> None:
    """``ptsim restore`` puts an older file in place on purpose: not reported as a loss."""
    from engine.backup import list_backups, restore_backup
    from engine.service import Engine

    db = tmp_path / "restore.duckdb"
    with Engine.open(db, seed=2, card_key="", backup_interval_s=0) as engine:
        engine.authorize(payment_body())
        engine.store.backup()
        engine.authorize(payment_body())
    restore_backup(list_backups(db)[-1], db)
    health, present = _open_like_the_server(db)
    assert len(present) == 1 and health["status"] == "ok"


# -- file modes --------------------------------------------------------------------------------


def test_database_wal_backups_key_and_record_are_owner_only(tmp_path: Path) -> None:
    from engine.service import Engine

    db = tmp_path / "modes" / "modes.duckdb"
    old_umask = os.umask(0o022)
    try:
        engine = Engine.open(db, seed=2, card_key="", backup_interval_s=0)
        try:
            engine.authorize(payment_body())
            engine.store.backup()
            engine.authorize(payment_body())
            files = {p.name: p.stat().st_mode & 0o777 for p in db.parent.rglob("*")}
        finally:
            engine.close()
    finally:
        os.umask(old_umask)
    assert {"modes.duckdb", "modes.duckdb.wal", "modes.duckdb.cardkey"} <= set(files)
    assert files.pop("modes.duckdb.backups") == 0o700
    assert all(mode == 0o600 for mode in files.values()), files
