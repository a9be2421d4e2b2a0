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
    from engine.service import Engine

    lake_run = isinstance(args.run, int) and args.run > LAKE_RUN_BASE
    if lake_run and not args.lake:
        raise UsageError(f"Run {args.run} is a lake run; pass --lake DIR (or set PTSIM_LAKE).")
    overrides: dict[str, object] = {}
    if args.db:
        overrides["db"] = args.db
    elif lake_run:
        overrides["db"] = ":memory:"  # a lake run needs no database: a server may hold it
    if args.lake:
        overrides["lake"] = args.lake
    target = Path(args.to).expanduser() / f"run-{args.run}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with Engine(get_settings(**overrides)) as engine:
        rows = engine.export_run(args.run, target)
    seconds = time.perf_counter() - started
    print(f"run {args.run}: {rows:,} rows written to {target} in {seconds:.1f} s")
    return 0


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``export`` on the ``ptsim`` parser."""
    export = sub.add_parser("export", help="write a run (or live traffic) as one Parquet file")
    export.add_argument("--run", type=_run, required=True, help="run id, or 'live'")
    export.add_argument("--to", required=True, help="directory to write run-<id>.parquet into")
    export.add_argument("--db", help="database file (default: PTSIM_DB)")
    export.add_argument("--lake", help="the Parquet lake of lake runs (default: PTSIM_LAKE)")
    export.set_defaults(handler=_export)
