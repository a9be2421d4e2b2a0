"""Dashboard reads: KPIs, time series, decline reasons and amounts, aggregated in DuckDB.

Every function returns a few hundred rows at most, whatever the table size, so front-ends never
pull raw transactions. :func:`dashboard` reads everything from one snapshot.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from engine.decision import REASON_TEXT, Reason
from engine.filters import RowFilter, naive_utc
from engine.latency import reported
from engine.live_totals import LiveSnapshot
from engine.models import LatencyKind
from engine.stats import selection_totals, selection_totals_of_rows
from engine.store import LIVE_SOURCE, ReadTx, Store

# Candidate widths of a time-series bucket; the first that gives at most MAX_BUCKETS wins.
BUCKET_WIDTHS: tuple[timedelta, ...] = (
    timedelta(seconds=10),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=7),
    timedelta(days=30),
)
MAX_BUCKETS = 120
AMOUNT_BINS_PER_DECADE = 10
LATENCY_SAMPLE_ROWS = 500_000


@dataclass(frozen=True, slots=True)
class Kpis:
    """Headline numbers over the selected rows, the same as ``GET /stats`` for the selection
    (:mod:`engine.stats`); latency percentiles are None when no selected row has one."""

    total: int
    approved: int
    declined: int
    approval_rate: float
    avg_amount: Decimal
    p50_latency: float | None
    p95_latency: float | None
    p99_latency: float | None
    latency_kind: LatencyKind | None  # measured (live), modelled (simulation) or mixed
    first_at: datetime | None
    last_at: datetime | None


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Everything the live dashboard draws, for one filter.

    ``series``: bucket (start), n, approved, approval_rate, p50, p95, p99 (latency ms);
    ``reasons``: reason_code, reason, n (declines only); ``amounts``: lo, hi, n (log-spaced bins).
    """

    filters: RowFilter
    kpis: Kpis
    bucket: timedelta
    series: pd.DataFrame
    series_sampled: bool  # the series' latency percentiles come from a LATENCY_SAMPLE_ROWS sample
    reasons: pd.DataFrame
    amounts: pd.DataFrame


@dataclass(frozen=True, slots=True)
class FilterOptions:
    """Values present in the data, to offer in filter widgets."""

    channels: list[str]
    currencies: list[str]
    runs: list[int]
    has_live: bool
    first_at: datetime | None
    last_at: datetime | None


def bucket_width(first: datetime | None, last: datetime | None) -> timedelta:
    """The narrowest bucket giving at most :data:`MAX_BUCKETS` buckets over ``[first, last]``."""
    if first is None or last is None:
        return BUCKET_WIDTHS[0]
    span = last - first
    for width in BUCKET_WIDTHS:
        if span / width <= MAX_BUCKETS:
            return width
    return BUCKET_WIDTHS[-1]


def _latency_source(where: str, params: dict[str, Any], rows: int) -> tuple[str, dict[str, Any]]:
    """``FROM ... WHERE ...`` for the time series' latency percentiles: every selected row, or,
    above :data:`LATENCY_SAMPLE_ROWS` selected rows, a repeatable system sample of about that
    many (per-bucket percentiles over ten million rows would cost half a second per refresh;
    the KPIs are exact, see :mod:`engine.stats`)."""
    if rows <= LATENCY_SAMPLE_ROWS:
        return f"FROM transactions {where}", params
    percent = max(0.01, min(100.0, 100.0 * LATENCY_SAMPLE_ROWS / rows))
    return f"FROM transactions TABLESAMPLE {percent:.4f}% (system, 42) {where}", params


def kpis(
    tx: ReadTx,
    filters: RowFilter,
    live: LiveSnapshot | None,
    span: tuple[datetime | None, datetime | None],
) -> Kpis:
    """Totals, approval rate, average ticket and latency percentiles of the selected rows, by
    :func:`engine.stats.selection_totals` (from running totals for a whole source when the live
    totals are given), and ``span``, the (first, last) time they cover."""
    if live is None:  # without the live totals, count the rows
        totals = selection_totals_of_rows(tx, filters)
    else:
        totals = selection_totals(tx, live, filters)
    latency = totals.latency if totals.latency.count else None
    return Kpis(
        total=totals.total,
        approved=totals.approved,
        declined=totals.declined,
        approval_rate=totals.approved / totals.total if totals.total else 0.0,
        avg_amount=totals.avg_amount,
        p50_latency=latency.p50 if latency else None,
        p95_latency=latency.p95 if latency else None,
        p99_latency=latency.p99 if latency else None,
        latency_kind=totals.latency_kind,
        first_at=span[0],
        last_at=span[1],
    )


@dataclass(frozen=True, slots=True)
class Part:
    """A piece of a selection whose rows change together, and the token that changes when they
    may have: the whole selection, or for all traffic with live payments beside runs, the live
    rows and the runs' rows apart (live payments then leave the runs' aggregates memoized)."""

    where: str
    params: dict[str, Any]
    version: object

    def key(self, store: Store, *what: object) -> tuple[Any, ...]:
        """The memo key of one aggregate of this part."""
        params = tuple(sorted((k, str(v)) for k, v in self.params.items()))
        return ("part", id(store), str(store.path), self.where, params, self.version, *what)


@dataclass(frozen=True, slots=True)
class Selection:
    """A filter's rows as one part (``whole``), and the parts the dashboard adds up."""

    whole: Part
    parts: list[Part]


def selection_parts(tx: ReadTx, store: Store, filters: RowFilter) -> Selection:
    """``filters``' rows in the parts the dashboard aggregates apart and adds up: all traffic
    with live payments and runs as the live rows and the runs' rows, else one part."""
    where, params = filters.where()
    whole = Part(where, params, data_version(store, filters))
    if filters.run != "all" or tx.one(_HAS_LIVE, {}) is None:
        return Selection(whole, [whole])
    runs = [int(row[0]) for row in tx.rows(_RUNS, {})]
    if not runs:
        return Selection(whole, [whole])
    if filters.latest is not None:
        # "the latest hours" end at the newest selected row, live or simulated: both parts cut
        # at that time, which their memo keys then hold
        earlier = filters.model_copy(update={"latest": None})
        sql, args = earlier.where()
        (newest,) = tx.one(f"SELECT max(created_at) FROM transactions {sql}", args)
        if newest is None:
            return Selection(whole, [whole])
        cut = newest - filters.latest
        if filters.since is not None:
            cut = max(cut, naive_utc(filters.since))
        where, params = earlier.model_copy(update={"since": cut}).where()
    runs_version = tuple((run, store.source_version(run)) for run in runs)
    return Selection(
        whole,
        [
            Part(f"{where} AND run_id IS NULL", params, store.source_version(LIVE_SOURCE)),
            Part(f"{where} AND run_id IS NOT NULL", params, ("runs", runs_version)),
        ],
    )


def time_series(reads: Reads, selection: Selection, width: timedelta) -> tuple[pd.DataFrame, bool]:
    """Per time bucket from the first to the last selected row (empty buckets included, with a
    NaN rate): count, approvals, approval rate and latency p50/p95/p99, the same nearest-rank
    percentiles as the KPIs (:mod:`engine.latency`), from a sample of a part with more than
    :data:`LATENCY_SAMPLE_ROWS` rows; and whether a sample was used.

    Counts add up over parts. Percentiles do not, so when two parts share a bucket (a run's
    simulated time reaching live traffic's wall-clock time) they are taken over the whole."""
    parts = selection.parts
    width_us = int(width / timedelta(microseconds=1))
    counts = [reads.of(part, _bucket_counts, width_us) for part in parts]
    rows = [int(c["n"].sum()) for c in counts]
    latency_of = [
        reads.of(part, _bucket_latency, width_us, n) for part, n in zip(parts, rows, strict=True)
    ]
    latency = pd.concat([frame for frame, _ in latency_of], ignore_index=True)
    sampled = any(was_sampled for _, was_sampled in latency_of)
    if latency["b"].duplicated().any():
        latency, sampled = _bucket_latency(reads.tx, selection.whole, width_us, sum(rows))
    merged = counts[0] if len(parts) == 1 else _summed(counts, "b", ["n", "approved"])
    return _series_frame(merged, latency, width_us), sampled


def _bucket_counts(tx: ReadTx, part: Part, width_us: int) -> pd.DataFrame:
    return tx.frame(
        f"""SELECT epoch_us(created_at) // $width AS b, count(*) AS n,
                   count_if(status = 'Approved') AS approved
            FROM transactions {part.where} GROUP BY b ORDER BY b""",
        {**part.params, "width": width_us},
    )


def _bucket_latency(tx: ReadTx, part: Part, width_us: int, rows: int) -> tuple[pd.DataFrame, bool]:
    source, params = _latency_source(part.where, part.params, rows)
    frame = tx.frame(
        f"""SELECT epoch_us(created_at) // $width AS b,
                   quantile_disc(latency_ms, [0.5, 0.95, 0.99]) AS q
            {source} GROUP BY b""",
        {**params, "width": width_us},
    )
    return frame, rows > LATENCY_SAMPLE_ROWS


def _series_frame(counts: pd.DataFrame, latency: pd.DataFrame, width_us: int) -> pd.DataFrame:
    if len(counts):  # one row per bucket, empty ones included, so charts show gaps as gaps
        every = pd.DataFrame({"b": np.arange(counts["b"].min(), counts["b"].max() + 1)})
        counts = every.merge(counts, on="b", how="left").fillna({"n": 0, "approved": 0})
        counts = counts.astype({"n": "int64", "approved": "int64"})
    frame = counts.merge(latency, on="b", how="left")
    frame.insert(0, "bucket", pd.to_datetime(frame["b"] * width_us, unit="us"))
    frame["approval_rate"] = frame["approved"] / frame["n"].where(frame["n"] > 0)
    quantiles = frame.pop("q")
    for i, name in enumerate(("p50", "p95", "p99")):
        frame[name] = [
            reported(q[i]) if isinstance(q, (list, tuple, np.ndarray)) and len(q) else None
            for q in quantiles
        ]
    return frame.drop(columns="b")


def decline_reasons(reads: Reads, selection: Selection) -> pd.DataFrame:
    """Declined rows per reason code, most frequent first."""
    counted = [reads.of(part, _reason_counts) for part in selection.parts]
    frame = counted[0] if len(counted) == 1 else _summed(counted, "reason_code", ["n"])
    frame = frame.sort_values(["n", "reason_code"], ascending=[False, True], ignore_index=True)
    frame.insert(1, "reason", [REASON_TEXT[Reason[code]] for code in frame["reason_code"]])
    return frame


def _reason_counts(tx: ReadTx, part: Part) -> pd.DataFrame:
    return tx.frame(
        f"""SELECT CAST(reason_code AS VARCHAR) AS reason_code, count(*) AS n
            FROM transactions {part.where} AND status = 'Declined' GROUP BY reason_code""",
        part.params,
    )


def amount_histogram(reads: Reads, selection: Selection) -> pd.DataFrame:
    """Counts of amounts in log-spaced bins (``AMOUNT_BINS_PER_DECADE`` per power of ten)."""
    counted = [reads.of(part, _amount_counts) for part in selection.parts]
    # a copy: the counts may be a memoized part's, shared with later reads
    frame = (counted[0] if len(counted) == 1 else _summed(counted, "b", ["n"])).copy()
    k = AMOUNT_BINS_PER_DECADE
    frame["lo"] = 10.0 ** (frame["b"] / k)
    frame["hi"] = 10.0 ** ((frame["b"] + 1) / k)
    return frame[["lo", "hi", "n"]]


def _amount_counts(tx: ReadTx, part: Part) -> pd.DataFrame:
    # rows counted per distinct amount first and each amount binned once: amounts repeat
    # (cents), so this takes the logarithm of far fewer values (about 35% less time at 10M rows)
    k = AMOUNT_BINS_PER_DECADE
    return tx.frame(
        f"""SELECT floor(log10(amount::DOUBLE) * {k})::INTEGER AS b, sum(n)::BIGINT AS n
            FROM (SELECT amount, count(*) AS n FROM transactions {part.where} AND amount > 0
                  GROUP BY amount)
            GROUP BY b ORDER BY b""",
        part.params,
    )


def _span(tx: ReadTx, part: Part) -> tuple[datetime | None, datetime | None]:
    first, last = tx.one(
        f"SELECT min(created_at), max(created_at) FROM transactions {part.where}", part.params
    )
    return first, last


def merged_span(spans: list[tuple[datetime | None, datetime | None]]) -> tuple[Any, Any]:
    """The (first, last) time over parts' spans (None where no part has a row)."""
    firsts = [first for first, _ in spans if first is not None]
    lasts = [last for _, last in spans if last is not None]
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def _summed(frames: list[pd.DataFrame], key: str, columns: list[str]) -> pd.DataFrame:
    """Parts' counts added up per ``key`` (in ``key`` order)."""
    whole = pd.concat(frames, ignore_index=True)
    summed = whole.groupby(key, as_index=False, sort=True)[columns].sum()
    return summed.astype({c: "int64" for c in columns})


@dataclass(frozen=True, slots=True)
class Reads:
    """One dashboard read: its snapshot, and the memo of unchanged parts' aggregates (None:
    compute everything). The aggregate functions above take it with a :class:`Selection`."""

    tx: ReadTx
    store: Store
    memo: _Memo | None

    def of(self, part: Part, compute: Callable[..., Any], *args: Any) -> Any:
        """``compute(tx, part, *args)``, from the memo while ``part`` has not changed."""
        if self.memo is None or part.version is None:
            return compute(self.tx, part, *args)
        key = part.key(self.store, compute.__name__, *args)
        hit = self.memo.get(key)
        if hit is None:
            hit = compute(self.tx, part, *args)
            self.memo.put(key, hit)
        return hit


def data_version(store: Store, filters: RowFilter | None = None) -> object:
    """A token that changes whenever the rows ``filters`` selects may have changed (added,
    deleted, latency written back): for one run or live traffic alone, that source's version
    (a completed run's token stays the same while live payments flow); otherwise the store's
    count of committed writes (it is the only writer of its file)."""
    if filters is not None and filters.run != "all":
        source = LIVE_SOURCE if filters.run == "live" else int(filters.run)
        return "source", source, store.source_version(source)
    return store.generation


class _Memo:
    """The last few results per (store, filters, data version): an idle dashboard refreshing
    every few seconds, or many browser sessions watching the same traffic, cost one query."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


MEMO = _Memo()
PART_MEMO = _Memo(size=64)  # parts' aggregates: five per part and filter


def dashboard(
    store: Store,
    filters: RowFilter,
    live: Callable[[], LiveSnapshot] | None = None,
    use_memo: bool = True,
) -> Dashboard:
    """Every dashboard aggregate for ``filters``, read from one snapshot; answered from
    :data:`MEMO` when the data has not changed since the same filters were last computed.
    ``live`` gives the live traffic's running totals (the engine's), so the KPIs of a whole
    source cost the same at any table size. All traffic with live payments is aggregated as
    two parts added up (:func:`selection_parts`): a live payment then recomputes only the live
    rows' part, and the runs' part is read from :data:`PART_MEMO`."""
    with store.read() as tx:
        key = (id(store), str(store.path), filters, data_version(store, filters))
        if use_memo and (hit := MEMO.get(key)) is not None:
            return hit
        reads = Reads(tx, store, PART_MEMO if use_memo else None)
        selection = selection_parts(tx, store, filters)
        span = merged_span([reads.of(part, _span) for part in selection.parts])
        head = kpis(tx, filters, live() if live is not None else None, span)
        width = bucket_width(*span)
        series, sampled = time_series(reads, selection, width)
        result = Dashboard(
            filters=filters,
            kpis=head,
            bucket=width,
            series=series,
            series_sampled=sampled,
            reasons=decline_reasons(reads, selection),
            amounts=amount_histogram(reads, selection),
        )
    MEMO.put(key, result)
    return result


def filter_options(store: Store) -> FilterOptions:
    """Channels, currencies and runs present, whether there is live traffic, and the time span.

    The runs come from their running totals (one row per run), live traffic from a probe for
    one live row (row-group statistics answer it without a scan); each source's channels,
    currencies and span are memoized by that source's version, so a live payment recomputes
    only the live part (a completed run's part is read once).
    """
    with store.read() as tx:
        sources = [int(row[0]) for row in tx.rows(_RUNS, {})]
        if tx.one(_HAS_LIVE, {}) is not None:
            sources.insert(0, LIVE_SOURCE)
        parts = [_source_options(tx, store, source) for source in sources]
    spans = [(first, last) for _, _, first, last in parts if first is not None]
    return FilterOptions(
        channels=sorted({c for channels, _, _, _ in parts for c in channels}),
        currencies=sorted({c for _, currencies, _, _ in parts for c in currencies}),
        runs=[s for s in sources if s != LIVE_SOURCE],
        has_live=LIVE_SOURCE in sources,
        first_at=min(first for first, _ in spans) if spans else None,
        last_at=max(last for _, last in spans) if spans else None,
    )


_SourceOptions = tuple[list[str], list[str], datetime | None, datetime | None]


def _source_options(tx: ReadTx, store: Store, source: int) -> _SourceOptions:
    """One source's channels, currencies and time span, memoized by its version."""
    key = ("options", id(store), str(store.path), source, store.source_version(source))
    if (hit := _OPTIONS_MEMO.get(key)) is not None:
        return hit
    where = "run_id IS NULL" if source == LIVE_SOURCE else "run_id = $run"
    params = {} if source == LIVE_SOURCE else {"run": source}
    channels = [r[0] for r in tx.rows(_DISTINCT.format(column="channel", where=where), params)]
    currencies = [r[0] for r in tx.rows(_DISTINCT.format(column="currency", where=where), params)]
    first, last = tx.one(
        f"SELECT min(created_at), max(created_at) FROM transactions WHERE {where}", params
    )
    result = (channels, currencies, first, last)
    _OPTIONS_MEMO.put(key, result)
    return result


_OPTIONS_MEMO = _Memo(size=64)
_RUNS = "SELECT source FROM stats_rollup WHERE total > 0 AND source <> 0 ORDER BY source"
_HAS_LIVE = "SELECT 1 FROM transactions WHERE run_id IS NULL LIMIT 1"
_DISTINCT = "SELECT {column} FROM transactions WHERE {where} GROUP BY {column} ORDER BY {column}"
