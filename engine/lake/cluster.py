"""A lake's runs on a Dask cluster: shards generated as tasks, backtests grouped per partition.

Generation: each shard of a run (:mod:`engine.simulation.shards`) is one task
(:func:`engine.lake.sharded.write_shard`); the client commits the manifest as tasks finish.
A task whose worker dies is run again by the scheduler on another worker (Dask reschedules the
tasks of a lost worker, up to ``distributed.scheduler.allowed-failures`` times, then the run
fails); a task that raises is retried :data:`RETRIES` times. A retried shard publishes its file
under the same name, so a run never holds a shard twice and never shows a half-written file.

Reads: :func:`grouped_on_cluster` runs one aggregating query (the backtest's or the
comparison's, compiled by the engine as always) with DuckDB in each task over some of the run's
partition files and adds the per-task groups up. Counts and sums of disjoint sets of rows add
up to those of their union, so the merged groups are exactly the single-process query's.

Dask is imported only when a cluster is used.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from engine.backtest import Grouped
from engine.errors import UsageError
from engine.lake.catalog import LakeCatalog
from engine.lake.sharded import ShardResult, ShardRunner, ShardTask, write_shard
from engine.store import Store, query_files

RETRIES = 2  # a shard task that raised is tried this many more times
CLUSTER_CONFIG = Path(__file__).with_name("dask.yaml")
"""Dask settings for the clusters the workbench starts (compose's workers: ``DASK_CONFIG``)."""
ADDITIVE = ("n", "cents", "pence", "priced")  # the grouped queries' aggregates: counts, sums


@contextlib.contextmanager
def cluster_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: of an existing cluster at ``scheduler`` (``tcp://host:port``), else of a
    local cluster of ``workers`` processes with one thread each, on 127.0.0.1, closed after."""
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines drown progress
    if scheduler:
        unreachable = UsageError(
            f"No Dask scheduler answered at {scheduler}; start one (dask scheduler) or "
            "give --workers to run a local cluster."
        )
        if not _accepts_connections(scheduler):
            raise unreachable  # at once: Client would retry a refused port for its whole timeout
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise unreachable from exc
        with client:
            yield client
        return
    if workers is None or workers < 1:
        raise UsageError("A local cluster needs at least one worker (--workers 1 or more).")
    import dask

    (tree,) = dask.config.collect_yaml([str(CLUSTER_CONFIG)])
    # for the rest of the process, not a with-block: a nanny reads it when it is created, and
    # scaling the cluster up later creates more
    dask.config.set(_dotted(tree))
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        _close_quietly(cluster)


def _dotted(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys, leaves only: ``dask.config.set`` replaces the whole
    value of a key it is given, so a nested dict would drop Dask's other defaults there."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _close_quietly(cluster: Any) -> None:
    """Close a local cluster. distributed's worker-status watcher can raise KeyError at close
    when a worker's removal arrives after the scheduler has forgotten that worker (a shutdown
    race, seen after scaling): by then the workers and the scheduler are closed, so it is
    logged, not raised over the run that just finished."""
    try:
        cluster.close()
    except KeyError as exc:
        logging.getLogger("ptsim.lake").debug("closing the local cluster: %r (ignored)", exc)


def _accepts_connections(address: str) -> bool:
    """Whether a TCP connection to ``address`` (``tcp://host:port``) opens within a second.
    Addresses of other schemes (tls://, inproc://) are left to Dask to judge."""
    parts = urlsplit(address)
    if parts.scheme != "tcp" or parts.hostname is None or parts.port is None:
        return True
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1.0):
            return True
    except OSError:
        return False


def shard_runner(client: Any) -> ShardRunner:
    """Runs shard tasks on ``client``'s cluster, yielding each result as its task finishes;
    the tasks left are cancelled when the caller stops (an error, Ctrl-C)."""
    from distributed import as_completed

    def run(tasks: list[ShardTask]) -> Iterator[ShardResult]:
        keys = [f"ptsim-shard-{t.run_id}-{t.shard.index}" for t in tasks]
        futures = client.map(write_shard, tasks, key=keys, retries=RETRIES, pure=False)
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.cancel(futures)

    return run


def group_files(
    sql: str, params: dict[str, Any], view: str, tables: dict[str, Any]
) -> pd.DataFrame:
    """Run the grouped ``sql`` over one task's files: ``view`` defines ``transactions`` over
    them; ``tables`` (Arrow tables: the lists the policies pin) are what else it reads."""
    return query_files(view, tables, sql, params)


def merge_groups(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-task groups added up into the groups of all their rows."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    joined = pd.concat(frames, ignore_index=True)
    keys = [c for c in joined.columns if c not in ADDITIVE]
    additive = [c for c in ADDITIVE if c in joined.columns]
    merged = joined.groupby(keys, sort=False, dropna=False)[additive].sum(min_count=1)
    merged = merged.reset_index()
    return merged.astype(frames[0].dtypes.to_dict())


def grouped_on_cluster(
    client: Any,
    sql: str,
    params: dict[str, Any],
    views: list[str],
    tables: dict[str, Any],
) -> pd.DataFrame:
    """The grouped query run once per view (each over some partitions) on the cluster, merged."""
    futures = [
        client.submit(group_files, sql, params, view, tables, pure=False, retries=RETRIES)
        for view in views
    ]
    return merge_groups(client.gather(futures))


_LIST_TABLES = ("list_cards", "list_items")  # what a policy's list semi-joins read (engine/lists)


class ClusterReads:
    """Aggregating queries over an attached lake's runs, run on a Dask cluster."""

    def __init__(self, client: Any, catalog: LakeCatalog, store: Store) -> None:
        self.client = client
        self._catalog = catalog
        self._store = store

    def grouped(self, run_id: int) -> Grouped:
        """Runs a backtest's or comparison's grouped query over run ``run_id`` on the cluster:
        one task per few shards (:meth:`LakeCatalog.task_views`), the list tables the query
        reads sent along, groups merged."""
        slots = sum(self.client.nthreads().values())  # the workers' threads: tasks at once
        views = self._catalog.task_views(run_id, slots)
        with self._store.read() as tx:  # before the read's own transaction (not nested)
            lists = {name: tx.arrow(f"SELECT * FROM {name}") for name in _LIST_TABLES}

        def run(sql: str, params: dict[str, Any]) -> pd.DataFrame:
            used = {n: t for n, t in lists.items() if re.search(rf"\bFROM {n}\b", sql)}
            return grouped_on_cluster(self.client, sql, params, views, used)

        return run
