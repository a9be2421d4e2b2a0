"""The ``runs`` table: creating, progressing, finishing and reading run records.

Progress is written in the same transaction as each chunk's rows (see :mod:`.runner`), so
``rows_written`` always equals the rows the run really has, even after a crash.
"""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

from engine.errors import NotFoundError
from engine.simulation.params import RunRecord, SimulationParams
from engine.store import Store, WriteTx, utc_now

GENERATOR_VERSION = "2"  # 2: disputes over time, friendly fraud, difficulty presets (issue 13)
_COLUMNS = (
    "id, status, created_at, finished_at, seed, params, policy_version, code_version, "
    "rows_planned, rows_written, timings, summary, error"
)


def code_version() -> str:
    """ptsim's version and the generator's, recorded with each run."""
    try:
        version = metadata.version("ptsim")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"ptsim {version}, generator {GENERATOR_VERSION}"


def create_run(
    store: Store,
    params: SimulationParams,
    policy_version: int,
    key: tuple[str, str] | None = None,
) -> int:
    """Insert a 'running' record and return its id (ids start at 1: source 0 is live traffic).

    ``key`` (Idempotency-Key, request hash) is stored in the same transaction, as payments do:
    a crash can never leave a keyed run whose key a replay would not find.

    Ids come from a persisted counter (schema v8) that a reset never clears, so an id is never
    handed out twice: rows of a run a reset deleted can never merge with a later run's."""
    with store.write() as tx:
        (run_id,) = tx.one("UPDATE run_id_counter SET last_id = last_id + 1 RETURNING last_id")
        tx.execute(
            "INSERT INTO runs (id, created_at, status, seed, params, policy_version, "
            "code_version, rows_planned, rows_written, timings, summary) "
            "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, 0, '{}', '{}')",
            [
                run_id,
                utc_now(),
                params.seed,
                json.dumps(params.model_dump(mode="json")),
                policy_version,
                code_version(),
                params.rows,
            ],
        )
        if key is not None:
            tx.execute("INSERT INTO simulation_keys VALUES (?, ?, ?, ?)", [*key, run_id, utc_now()])
    return int(run_id)


def record_progress(tx: WriteTx, run_id: int, rows_written: int, summary: dict[str, Any]) -> bool:
    """Inside a chunk's transaction: the run now has ``rows_written`` rows. False when the run
    has no record (a reset deleted it): the caller must roll the chunk back."""
    updated = tx.execute(
        "UPDATE runs SET rows_written = ?, summary = ? WHERE id = ?",
        [rows_written, json.dumps(summary), run_id],
    )
    return bool(updated)


def finish_run(
    store: Store,
    run_id: int,
    status: str,
    timings: dict[str, float],
    summary: dict[str, Any],
    error: str | None = None,
) -> None:
    """Set the final status, timings, summary and error of a run."""
    with store.write() as tx:
        tx.execute(
            "UPDATE runs SET status = ?, finished_at = ?, timings = ?, summary = ?, error = ? "
            "WHERE id = ?",
            [status, utc_now(), json.dumps(timings), json.dumps(summary), error, run_id],
        )


def mark_abandoned_runs(store: Store) -> list[int]:
    """At start-up: runs a dead process left 'running' become 'interrupted'. Their committed
    chunks stay (rows_written was committed with them), so the record stays true."""
    with store.write() as tx:
        ids = [r[0] for r in tx.rows("SELECT id FROM runs WHERE status = 'running'")]
        if ids:
            tx.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, "
                "error = 'the process running it stopped before it finished' "
                "WHERE status = 'running'",
                [utc_now()],
            )
    return ids


def _record(row: tuple[Any, ...]) -> RunRecord:
    (rid, status, created, finished, seed, params, policy, code, planned, written, timings,
     summary, error) = row  # fmt: skip
    return RunRecord(
        id=rid,
        status=status,
        created_at=created,
        finished_at=finished,
        seed=seed,
        params=json.loads(params),
        policy_version=policy,
        code_version=code,
        rows_planned=planned,
        rows_written=written,
        progress=min(written / planned, 1.0) if planned else 1.0,
        timings=json.loads(timings or "{}"),
        summary=json.loads(summary or "{}"),
        error=error,
    )


def get_run(store: Store, run_id: int) -> RunRecord:
    """One run record. Raises :class:`NotFoundError`."""
    rows = store.query(f"SELECT {_COLUMNS} FROM runs WHERE id = ?", [run_id])
    if not rows:
        raise NotFoundError(f"Simulation run {run_id} not found.")
    return _record(rows[0])


def list_runs(store: Store) -> list[RunRecord]:
    """Every run record, newest first."""
    return [_record(r) for r in store.query(f"SELECT {_COLUMNS} FROM runs ORDER BY id DESC")]
