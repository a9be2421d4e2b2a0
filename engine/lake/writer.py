"""Generate a simulation run into a lake: decided chunks → partitions → files → manifest.

The rows are exactly those the database path writes (the same :func:`decided_chunks`); only
where they go differs. The run is cut into partitions by :func:`partition_rows` (its size
alone); :func:`write_partition` writes one partition's file and returns what the manifest lists
about it, and needs nothing but the partition's rows, so a worker process could run it. Here
one process produces the chunks (a producer thread, as in the database path) and writes each
partition as soon as its rows are complete, then commits the manifest listing it.

Status: ``running`` → ``completed``; Ctrl-C or a cancel request → ``interrupted``, any other
exception → ``failed``, each with the committed partitions' true row count; a killed process
leaves 'running', which readers report as interrupted (:meth:`Lake.recover` records it).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.decision import Decider
from engine.lake.layout import Lake
from engine.lake.manifest import (
    PARTITION_TARGET_ROWS,
    Manifest,
    Partition,
    Rollup,
    partition_rows,
)
from engine.lake.sharded import ShardRunner, generate_sharded, in_process
from engine.simulation import records
from engine.simulation.params import SimulationParams
from engine.simulation.population import build_population
from engine.simulation.runner import (
    DecidedChunk,
    Timings,
    _part,
    decided_chunks,
    produced_ahead,
    recorded_end,
)
from engine.simulation.shards import plan
from engine.simulation.summary import RunSummary
from engine.store import utc_now

log = logging.getLogger("ptsim.lake")
Progress = Callable[[int, int], None]  # (rows committed, rows planned)
MINOR_UNITS = "amount_minor"  # the amount in integer minor units, beside the exact decimal
_VERSION_BITS = 0x7000
_VARIANT = 0x8000_0000_0000_0000
_ROW_GROUP = 256 * 1024  # DuckDB reads a file's row groups in parallel
# Dictionary pages only where values repeat (labels, small numbers): ids, fingerprints and
# scores are nearly all distinct, and dictionary-encoding them cost a third of the write time
_DICTIONARY = [
    "currency", "merchant", "channel", "device_id", "status", "reason_code", "action",
    "merchant_country", "card_country", "ip_address", "ip_country", "fraud_scenario",
    "dispute_reason", "card_bin", "card_length", "rule_index", "flag_rule", "policy_version",
    "merchant_category", "velocity_count", "device_seen_count", "device_other_cards",
]  # fmt: skip
# How every lake file is written (the export writes its few columns of its own alike): decimals
# as INT64 as the database's export has them (DECIMAL(18,2) fits), no page index nor bloom filter
FILE_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "use_dictionary": _DICTIONARY,
    "store_decimal_as_integer": True,
    "write_page_index": False,
}
_PLACEHOLDER_RUN = 0  # decided chunks carry a run id column, which the file's path holds instead


def row_ids(created_ms: int, first_row: int, count: int) -> pa.Array:
    """Ids of a run's rows ``[first_row, first_row + count)``: UUIDv7 layout with the run's
    creation time and the row's position, so they grow in event order (as the database's do)
    and any process writing a partition computes the same ones."""
    words = np.empty((count, 2), dtype=">u8")
    words[:, 0] = (created_ms << 16) | _VERSION_BITS
    rows = np.arange(first_row, first_row + count, dtype=np.uint64)
    words[:, 1] = rows | np.uint64(_VARIANT)
    storage = pa.Array.from_buffers(pa.binary(16), count, [None, pa.py_buffer(words.tobytes())])
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def lake_table(table: pa.Table, created_ms: int, first_row: int) -> pa.Table:
    """A decided chunk's table as a lake file holds it: ids first, card fingerprints as UUIDs,
    the amount also in integer minor units, timestamps in microseconds (the database's and
    the export's unit, so an export serves the files' pages unchanged: engine/lake/export.py),
    and no run id column (the directory names it)."""
    n = table.num_rows
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.unit != "us":
            table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp("us")))
    cards = table.column("card_hash").combine_chunks()
    amount = table.column("amount").combine_chunks()
    cents = np.frombuffer(amount.buffers()[1], dtype="<i8")[amount.offset * 2 :: 2][:n]
    out = table.drop_columns(["run_id"])
    out = out.set_column(
        out.schema.get_field_index("card_hash"),
        "card_hash",
        pa.ExtensionArray.from_storage(pa.uuid(), cards),
    )
    out = out.add_column(out.schema.get_field_index("amount") + 1, MINOR_UNITS, pa.array(cents))
    return out.add_column(0, "id", row_ids(created_ms, first_row, n))


class PartitionWriter:
    """Writes one partition's file: rows in event order, in as many pieces as they come, into
    a file aside, in row groups of :data:`_ROW_GROUP` rows whatever the pieces' sizes (each
    ``write_table`` call would start its own); :meth:`publish` renames it into place and says
    what the manifest lists. It needs nothing but the partition's rows, so any process may
    write any partition."""

    def __init__(self, lake: Lake, run_id: int, index: int, first_row: int, created_ms: int):
        self._lake = lake
        self._relative = Lake.partition_path(run_id, index)
        self._aside = lake.aside(self._relative)
        self._index, self._first_row, self._created_ms = index, first_row, created_ms
        self.rows = 0
        self._held: list[pa.Table] = []  # rows not yet a whole row group
        self._file: Any = None
        self._parquet: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        """Append decided rows (the next ones of the partition)."""
        piece = lake_table(table, self._created_ms, self._first_row + self.rows)
        self.rows += piece.num_rows
        self._held.append(piece)
        if sum(held.num_rows for held in self._held) >= _ROW_GROUP:
            self._write_held(whole_groups_only=True)

    def _write_held(self, whole_groups_only: bool) -> None:
        held = pa.concat_tables(self._held)
        take = held.num_rows - held.num_rows % _ROW_GROUP if whole_groups_only else held.num_rows
        if self._parquet is None:
            self._file = self._lake.fs.open(self._aside, "wb")
            self._parquet = pq.ParquetWriter(self._file, held.schema, **FILE_OPTIONS)
        if take:
            self._parquet.write_table(held.slice(0, take), row_group_size=_ROW_GROUP)
        rest = held.slice(take)
        self._held = [rest] if rest.num_rows else []

    def publish(self) -> Partition:
        """Write the last rows, close the file and rename it into place."""
        if self._held:
            self._write_held(whole_groups_only=False)
        assert self._parquet is not None
        self._parquet.close()
        self._file.close()
        size = self._lake.publish(self._aside, self._relative)
        return Partition(index=self._index, path=self._relative, first_row=self._first_row,
                         rows=self.rows, bytes=size)  # fmt: skip

    def discard(self) -> None:
        """Drop the unfinished file (its rows were never listed)."""
        if self._parquet is not None:
            with contextlib.suppress(Exception):
                self._parquet.close()
                self._file.close()
        self._lake.discard(self._aside)


def generate_into_lake(
    lake: Lake,
    params: SimulationParams,
    card_key: bytes,
    decider: Decider,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    partition_target: int = PARTITION_TARGET_ROWS,
    runner: ShardRunner | None = None,
    shard_rows: int | None = None,
) -> Manifest:
    """Generate a run into ``lake`` and return its final manifest. Re-raises what stopped it
    (Ctrl-C, a cancel, an error) after committing the manifest as interrupted or failed.
    ``progress(rows, planned)`` is called after each committed partition (of at most
    ``partition_target`` rows). A run of several shards (over ``shard_rows`` rows), or any run
    given a ``runner`` (a cluster's), is written one partition per shard by
    :func:`engine.lake.sharded.generate_sharded`."""
    abandoned = lake.recover()
    if abandoned:
        log.warning("lake runs %s were left running and are now interrupted", abandoned)
    shards = plan(params, shard_rows)
    sharded = len(shards) > 1 or runner is not None
    created = utc_now()
    manifest = lake.reserve(
        Manifest(
            run_id=0,  # reserve() allocates it
            status="running",
            created_at=created,
            seed=params.seed,
            params=params.model_dump(mode="json"),
            code_version=records.code_version(),
            generator_version=records.GENERATOR_VERSION,
            policy_version=decider.policy.version,
            policy=decider.policy.definition(),
            rows_planned=params.rows,
            partition_rows=shards[0].rows
            if sharded
            else partition_rows(params.rows, partition_target),
            shards=len(shards),
        )
    )
    if sharded:
        return generate_sharded(
            lake, manifest, shards, card_key, decider, runner or in_process, progress, cancel
        )
    run = _LakeRun(lake, manifest, int(created.timestamp() * 1000), progress)
    with recorded_end(run.finish):
        with run.timings.stage("population_s"):
            pop = build_population(params, card_key)
        chunks = decided_chunks(params, pop, decider, _PLACEHOLDER_RUN, run.timings)
        with produced_ahead(chunks, cancel, manifest.run_id) as produced:
            for chunk in produced:
                run.add(chunk)
        run.flush()
    return run.manifest


class _LakeRun:
    """A run being written: fills partitions, publishes each when complete, commits manifests."""

    def __init__(
        self, lake: Lake, manifest: Manifest, created_ms: int, progress: Progress | None
    ) -> None:
        self.lake = lake
        self.progress = progress
        self.manifest = manifest
        self.created_ms = created_ms
        self.timings = Timings()
        self.summary = RunSummary()
        self.rollup = Rollup()
        self.open: PartitionWriter | None = None
        self.open_chunks: list[DecidedChunk] = []  # what the open partition's rows add up to

    def add(self, chunk: DecidedChunk) -> None:
        """Write a chunk's rows into their partitions, committing each partition it completes."""
        size = self.manifest.partition_rows
        at = 0
        while at < len(chunk.rows):
            if self.open is None:
                first = self.manifest.rows_written
                self.open = PartitionWriter(
                    self.lake, self.manifest.run_id, first // size, first, self.created_ms
                )
            take = min(size - self.open.rows, len(chunk.rows) - at)
            whole = at == 0 and take == len(chunk.rows)
            piece = chunk if whole else _part(chunk, slice(at, at + take), _PLACEHOLDER_RUN)
            with self.timings.stage("write_s"):
                self.open.write(piece.table)
            self.open_chunks.append(piece)
            at += take
            if self.open.rows == size:
                self.flush()

    def flush(self) -> None:
        """Publish the open partition (if any), commit the manifest listing it, then report
        progress (which may raise to stop the run: what is committed stays)."""
        if self.open is None:
            return
        with self.timings.stage("write_s"):
            part = self.open.publish()
        for c in self.open_chunks:
            c.add_to(self.summary)
            _add_rollup(self.rollup, c)
        self.open, self.open_chunks = None, []
        self.manifest = self.manifest.model_copy(
            update={
                "partitions": [*self.manifest.partitions, part],
                "rows_written": self.summary.rows,
                "rollup": self.rollup.model_copy(deep=True),
                "summary": self.summary.as_dict(),
            }
        )
        with self.timings.stage("commit_s"):
            self.lake.commit(self.manifest)
        if self.progress is not None:
            self.progress(self.manifest.rows_written, self.manifest.rows_planned)

    def finish(self, status: str, error: str | None, total_s: float) -> None:
        """Commit the final manifest (rows of an unfinished partition were never listed)."""
        if self.open is not None:
            self.open.discard()
            self.open = None
        timings = self.timings.as_dict()
        self.manifest = self.manifest.finished(status, error, timings, self.summary, total_s)
        self.lake.commit(self.manifest)


def _add_rollup(rollup: Rollup, chunk: DecidedChunk) -> None:
    delta = chunk.rollup
    rollup.total += delta.total
    rollup.approved += delta.approved
    rollup.amount_cents += delta.amount_cents
    pairs = zip(delta.latency_buckets.tolist(), delta.latency_counts.tolist(), strict=True)
    for bucket, n in pairs:
        rollup.latency[bucket] = rollup.latency.get(bucket, 0) + n
