"""``ptsim export``: a run (or live traffic) as one Parquet file, from a database or a lake that
no server holds (while a server runs, ask it: ``GET /simulations/{id}/export``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from engine.config import get_settings
from engine.errors import UsageError
from engine.lake.layout import LAKE_RUN_BASE


def _run(text: str) -> int | str:
    if text == "live":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a run id or 'live', got {text!r}")
    return int(text)


def _export(args: argparse.Namespace) -> int:
    lake_run = isinstance(args.run, int) and args.run > LAKE_RUN_BASE
    lake = args.lake or (get_settings().lake if lake_run else None)
    if lake_run and not lake:
        raise UsageError(f"Run {args.run} is a lake run; pass --lake DIR (or set PTSIM_LAKE).")
    target = Path(args.to).expanduser() / f"run-{args.run}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = _stitched(lake, args.run, target) if lake_run else None
    if rows is None:
        rows = _through_engine(args, lake, lake_run, target)
    seconds = time.perf_counter() - started
    print(f"run {args.run}: {rows:,} rows written to {target} in {seconds:.1f} s")
    return 0


def _stitched(lake: str, run_id: int, target: Path) -> int | None:
    """A lake run from its files alone: no engine, no database (None: not stitchable)."""
    from engine.lake.export import export_lake_run
    from engine.lake.layout import Lake

    try:
        return export_lake_run(Lake(lake), run_id, target)
    except OSError as exc:
        raise UsageError(f"The lake's files could not be read or written: {exc}.") from exc


def _through_engine(
    args: argparse.Namespace, lake: str | None, lake_run: bool, target: Path
) -> int:
    from engine.service import Engine

    overrides: dict[str, object] = {}
    if args.db:
        overrides["db"] = args.db
    elif lake_run:
        overrides["db"] = ":memory:"  # a lake run needs no database: a server may hold it
    if lake:
        overrides["lake"] = lake
    with Engine(get_settings(**overrides)) as engine:
        return engine.export_run(args.run, target)


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``export`` on the ``ptsim`` parser."""
    export = sub.add_parser("export", help="write a run (or live traffic) as one Parquet file")
    export.add_argument("--run", type=_run, required=True, help="run id, or 'live'")
    export.add_argument("--to", required=True, help="directory to write run-<id>.parquet into")
    export.add_argument("--db", help="database file (default: PTSIM_DB)")
    export.add_argument("--lake", help="the Parquet lake of lake runs (default: PTSIM_LAKE)")
    export.set_defaults(handler=_export)
