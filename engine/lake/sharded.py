"""A run of several shards into a lake: each shard one task and one partition file.

:func:`write_shard` generates one shard (:mod:`engine.simulation.shards`) and publishes its
file ``part-<shard index>.parquet``; it needs only its arguments, so it runs in this process or
as a task on a cluster (:mod:`engine.lake.cluster`). The file is written aside under a name of
its own and renamed into place at the name fixed by the shard's index, so a retried shard
replaces the file of an attempt that died after its rename and never adds a second one.
:func:`generate_sharded` commits the manifest each time a shard finishes, listing each shard
once (by index): the manifest is the commit, whatever order the shards finish in.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.decision import Decider
from engine.lake.layout import Lake
from engine.lake.manifest import Manifest, Partition, Rollup
from engine.simulation.runner import (
    SimulationCancelled,
    Timings,
    produced_ahead,
    recorded_end,
)
from engine.simulation.shards import Shard, shard_chunks
from engine.simulation.summary import RunSummary

Progress = Callable[[int, int], None]  # (rows committed, rows planned)
_PLACEHOLDER_RUN = 0  # the file's path names the run (engine/lake/writer.py)


@dataclass(frozen=True, slots=True)
class ShardTask:
    """Everything a process needs to write one shard of a run (picklable)."""

    lake_url: str
    run_id: int
    created_ms: int  # the run's creation time: its row ids' prefix
    shard: Shard
    card_key: bytes
    decider: Decider


@dataclass(frozen=True, slots=True)
class ShardResult:
    """A published shard: its file, what it adds to the manifest, and what it cost."""

    index: int
    partition: Partition
    summary: RunSummary
    rollup: Rollup
    seconds: float
    timings: dict[str, float]
    pid: int  # the process that wrote it
    peak_rss_bytes: int  # that process's peak resident memory so far


ShardRunner = Callable[[list[ShardTask]], Iterator[ShardResult]]
"""Runs shard tasks and yields their results as they finish (in any order)."""


def write_shard(task: ShardTask) -> ShardResult:
    """Generate one shard and publish its partition file; what the manifest lists about it."""
    from engine.lake.writer import PartitionWriter, _add_rollup  # writer imports this module

    start = time.perf_counter()
    timings = Timings()
    shard = task.shard
    lake = Lake(task.lake_url)
    out = PartitionWriter(lake, task.run_id, shard.index, shard.first_row, task.created_ms)
    summary, rollup = RunSummary(), Rollup()
    chunks = shard_chunks(shard, task.card_key, task.decider, _PLACEHOLDER_RUN, timings)
    try:  # generation overlaps the Parquet encoding, as in one process
        with produced_ahead(chunks) as produced:
            for chunk in produced:
                with timings.stage("write_s"):
                    out.write(chunk.table)
                chunk.add_to(summary)
                _add_rollup(rollup, chunk)
        with timings.stage("write_s"):
            partition = out.publish()
    except BaseException:
        out.discard()
        raise
    return ShardResult(shard.index, partition, summary, rollup, time.perf_counter() - start,
                       timings.as_dict(), os.getpid(), peak_rss_bytes())  # fmt: skip


def peak_rss_bytes() -> int:
    """This process's peak resident memory: ``VmHWM``, which starts afresh at exec. (A worker
    process is forked and exec'd from the client: ``ru_maxrss`` would count the client's
    memory at the fork.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def in_process(tasks: list[ShardTask]) -> Iterator[ShardResult]:
    """The shards one after another in this process."""
    for task in tasks:
        yield write_shard(task)


def generate_sharded(
    lake: Lake,
    manifest: Manifest,
    shards: list[Shard],
    card_key: bytes,
    decider: Decider,
    runner: ShardRunner = in_process,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Manifest:
    """Run the shards of the reserved ``manifest``'s run with ``runner``, committing the
    manifest after each; the final manifest. Re-raises what stopped it (Ctrl-C, a cancel,
    a shard that failed for good) after committing it interrupted or failed."""
    created_ms = int(manifest.created_at.timestamp() * 1000)
    tasks = [ShardTask(lake.url, manifest.run_id, created_ms, s, card_key, decider) for s in shards]
    run = _ShardedRun(lake, manifest)
    with recorded_end(run.finish):
        for result in runner(tasks):
            run.add(result)
            if progress is not None:
                progress(run.manifest.rows_written, run.manifest.rows_planned)
            if cancel is not None and cancel.is_set():
                raise SimulationCancelled(f"Simulation run {manifest.run_id} was cancelled.")
    return run.manifest


class _ShardedRun:
    """The manifest of a run whose shards finish in any order."""

    def __init__(self, lake: Lake, manifest: Manifest) -> None:
        self.lake = lake
        self.manifest = manifest
        self.summary = RunSummary()
        self.rollup = Rollup()
        self.done: dict[int, ShardResult] = {}

    def add(self, result: ShardResult) -> None:
        """List a published shard (once: a repeated index is ignored) and commit."""
        if result.index in self.done:
            return
        self.done[result.index] = result
        self.summary.absorb(result.summary)
        _merge_rollup(self.rollup, result.rollup)
        partitions = sorted((r.partition for r in self.done.values()), key=lambda p: p.index)
        self.manifest = self.manifest.model_copy(
            update={
                "partitions": partitions,
                "rows_written": self.summary.rows,
                "rollup": self.rollup.model_copy(deep=True),
                "summary": self.summary.as_dict(),
            }
        )
        self.lake.commit(self.manifest)

    def finish(self, status: str, error: str | None, total_s: float) -> None:
        """Commit the final manifest, with the shards' timings and the writers' peak memory."""
        # files of attempts that died (a killed worker) stay aside under dot-names: remove them
        self.lake.remove_unlisted(self.manifest)
        timings = _shard_timings(self.done.values())
        self.manifest = self.manifest.finished(status, error, timings, self.summary, total_s)
        self.lake.commit(self.manifest)


def _shard_timings(results: Iterable[ShardResult]) -> dict[str, float]:
    """Stage seconds summed over the shards, shard seconds, and the largest peak RSS."""
    total: dict[str, float] = {}
    peak = 0
    for r in results:
        for name, seconds in r.timings.items():
            total[name] = total.get(name, 0.0) + seconds
        total["shard_s"] = total.get("shard_s", 0.0) + r.seconds
        peak = max(peak, r.peak_rss_bytes)
    out = {k: round(v, 3) for k, v in total.items()}
    if peak:
        out["worker_peak_rss_mib"] = round(peak / 2**20, 1)
    return out


def _merge_rollup(into: Rollup, other: Rollup) -> None:
    into.total += other.total
    into.approved += other.approved
    into.amount_cents += other.amount_cents
    for bucket, n in other.latency.items():
        into.latency[bucket] = into.latency.get(bucket, 0) + n
