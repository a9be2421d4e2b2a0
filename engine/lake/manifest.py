"""A lake run's manifest: what the run is, and which of its partitions are committed.

The manifest is the commit. A partition's file is renamed into place first and only then listed
here (the manifest itself is replaced by a rename too), so a reader that goes by the manifest
never sees a half-written file or a row the manifest does not count.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import InvalidRequestError
from engine.simulation.params import RunRecord, RunStatus
from engine.simulation.summary import RunSummary
from engine.store import utc_now
from engine.validation import quoted_field

FORMAT = 1  # bumped when the layout or the manifest changes incompatibly
PARTITION_TARGET_ROWS = 1_000_000  # ~60 MB of Parquet: a task's worth of work on a cluster


def partition_rows(rows: int, target: int = PARTITION_TARGET_ROWS) -> int:
    """Rows per partition of a run of ``rows`` rows: the run cut into equal parts of at most
    ``target``. It depends on the run's size only (never on chunking or on how many processes
    write), so partition ``k`` always holds the same rows of a seed's run: rows
    ``[k * p, (k + 1) * p)`` of its event order. (The rows themselves never depend on it.)"""
    parts = max(1, math.ceil(rows / target))
    return math.ceil(rows / parts)


class Partition(BaseModel):
    """One committed partition: its file (relative to the lake root) and its rows."""

    model_config = ConfigDict(frozen=True)

    index: int
    path: str
    first_row: int  # its first row's position in the run's event order
    rows: int
    bytes: int


class Rollup(BaseModel):
    """Running totals of the committed rows, as the database keeps per run (GET /stats)."""

    total: int = 0
    approved: int = 0
    amount_cents: int = 0
    latency: dict[int, int] = Field(default_factory=dict)  # histogram bucket -> rows


class Writer(BaseModel):
    """The process writing the run: a run left 'running' by a dead process is interrupted."""

    host: str
    pid: int
    started: str  # the process's start time (from /proc), so a reused pid is not mistaken


class Manifest(BaseModel):
    """Everything known about one lake run (``manifests/run-<id>.json``)."""

    format: int = FORMAT
    run_id: int
    status: RunStatus
    created_at: datetime  # naive UTC, as in the database
    finished_at: datetime | None = None
    seed: int
    params: dict[str, Any]
    code_version: str
    generator_version: str
    policy_version: int
    policy: dict[str, Any]  # the deciding policy's definition: rules, weights, list pins
    rows_planned: int
    rows_written: int = 0
    partition_rows: int
    shards: int = 1  # sub-worlds the rows were generated as (engine/simulation/shards.py)
    partitions: list[Partition] = Field(default_factory=list)
    rollup: Rollup = Field(default_factory=Rollup)
    summary: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    writer: Writer | None = None

    @property
    def readable(self) -> bool:
        """Whether readers may use its rows: a finished run (completed, or stopped with its
        committed partitions), never one still being written."""
        return self.status != "running"

    def require_readable(self, field: str) -> None:
        """Refuse a run still being written (a reader never sees half a run): raises
        :class:`InvalidRequestError` naming ``field``."""
        if not self.readable:
            raise InvalidRequestError(
                field,
                f"{quoted_field(field)} names a lake run that is still being written; "
                "retry when it has finished (GET /simulations shows its status).",
            )

    def finished(
        self,
        status: RunStatus,
        error: str | None,
        timings: dict[str, float],
        summary: RunSummary,
        total_s: float,
    ) -> Manifest:
        """The final manifest: ``status`` and ``error``, the stage ``timings`` plus the run's
        total and rows per second, the ``summary``, stamped now."""
        rate = round(summary.rows / total_s, 1) if total_s > 0 else 0.0
        timings = {**timings, "total_s": round(total_s, 3), "rows_per_s": rate}
        return self.model_copy(
            update={
                "status": status,
                "error": error,
                "finished_at": utc_now(),
                "timings": timings,
                "summary": summary.as_dict(),
            }
        )

    def record(self) -> RunRecord:
        """The run as :class:`RunRecord`, the shape the database's runs are answered in."""
        return RunRecord(
            id=self.run_id,
            status=self.status,
            created_at=self.created_at,
            finished_at=self.finished_at,
            seed=self.seed,
            params=self.params,
            policy_version=self.policy_version,
            code_version=self.code_version,
            rows_planned=self.rows_planned,
            rows_written=self.rows_written,
            progress=min(self.rows_written / self.rows_planned, 1.0) if self.rows_planned else 1.0,
            timings=self.timings,
            summary=self.summary,
            error=self.error,
        )
