"""``ptsim generate``: a bulk synthetic run from the terminal, with a progress bar.

The database belongs to one process at a time; when the server holds it, the command says so in
one sentence (use the server's ``POST /simulations`` or another ``--db``) and exits with 2.
Ctrl-C stops the run after the chunk being written commits: the run is marked ``interrupted``
with its committed rows, one sentence goes to stderr and the exit code is 130.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from typing import Any

from tqdm import tqdm

from engine.config import get_settings
from engine.errors import UsageError
from engine.lake.layout import Lake
from engine.lake.manifest import PARTITION_TARGET_ROWS, Manifest
from engine.simulation.params import (
    KNOB_NAMES,
    PRESETS,
    ROW_GROUP_ROWS,
    SCENARIOS,
    SimulationParams,
)
from engine.validation import describe_first


def parse_mix(text: str) -> dict[str, float]:
    """``stolen_card=1,card_testing=2`` → {name: weight}; unnamed scenarios get weight 0."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected name=weight, got {part!r}")
        if name.strip() not in SCENARIOS:
            raise argparse.ArgumentTypeError(
                f"unknown scenario {name.strip()!r}; choose from {', '.join(SCENARIOS)}"
            )
        try:
            mix[name.strip()] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"weight of {name.strip()!r} is not a number"
            ) from None
    return mix


def memory_limit(text: str) -> str:
    """A DuckDB memory size such as ``512MB`` or ``2GiB``."""
    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)", text.strip(), re.IGNORECASE):
        raise argparse.ArgumentTypeError(f"expected a size such as 512MB or 2GB, got {text!r}")
    return text.strip()


def add_generate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``generate`` on the main CLI's subparsers."""
    parser = subparsers.add_parser(
        "generate",
        help="bulk synthetic payments with labelled fraud scenarios",
        description="Generate a reproducible simulation run into the database.",
    )
    parser.add_argument("--rows", type=int, required=True, help="payments to generate")
    parser.add_argument("--seed", type=int, required=True, help="seed of every random process")
    days, fraud_rate = (SimulationParams.model_fields[f].default for f in ("days", "fraud_rate"))
    parser.add_argument("--days", type=int, default=days, help=f"simulated days (default {days})")
    parser.add_argument(
        "--fraud-rate",
        type=float,
        default=fraud_rate,
        help=f"expected share of fraud rows (default {fraud_rate})",
    )
    parser.add_argument(
        "--scenario-mix",
        type=parse_mix,
        default=None,
        help="weights, e.g. stolen_card=1,card_testing=1,account_takeover=1,"
        "compromised_merchant=1 (default: equal)",
    )
    difficulty = SimulationParams.model_fields["difficulty"].default
    parser.add_argument(
        "--difficulty",
        choices=list(PRESETS),
        default=difficulty,
        help=f"preset of the difficulty knobs below (default {difficulty}; README 'Difficulty')",
    )
    for knob in KNOB_NAMES:
        parser.add_argument(_option(knob), type=float, default=None, help=_help(knob))
    for size in ("cards", "merchants", "devices"):
        parser.add_argument(_option(size), type=int, default=None, help=_help(size))
    parser.add_argument(
        "--chunk-rows", type=int, default=None,
        help="rows per write transaction at most, in whole DuckDB row groups of "
        f"{ROW_GROUP_ROWS:,} rows (default: one)",
    )  # fmt: skip
    parser.add_argument("--db", help="database file (default: PTSIM_DB)")
    parser.add_argument(
        "--lake",
        help="write the run into this Parquet lake (a directory or an fsspec URL) instead of "
        "the database; the database gives the active policy and the card key",
    )
    parser.add_argument(
        "--partition-rows",
        type=_positive,
        default=PARTITION_TARGET_ROWS,
        help=f"with --lake: most rows per partition file (default {PARTITION_TARGET_ROWS:,}; "
        "the rows never depend on it)",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="with --lake: generate the run's shards on a local Dask cluster of this many "
        "worker processes (one thread each); the rows never depend on it",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="with --lake: generate on the existing Dask cluster of this scheduler "
        "(tcp://HOST:PORT); its workers must reach the lake at the same path",
    )
    # the most rows per shard (tests and benchmarks: small runs of several shards); it changes
    # the rows of runs above it, so it is not offered in the help
    parser.add_argument("--shard-rows", type=_positive, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--memory-limit",
        type=memory_limit,
        default="512MB",
        help="DuckDB buffer memory for this process (default 512MB; it keeps written blocks "
        "cached up to this limit, so peak memory stays flat as --rows grows)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_generate)
    return parser


# The shell's convention for a command stopped by SIGINT (128 + 2); ``ptsim`` returns it too.
INTERRUPTED = 130


class _CtrlC:
    """While entered, Ctrl-C (SIGINT) only sets :attr:`pressed`; the run stops at its next commit.

    A KeyboardInterrupt raised at an arbitrary point would land inside DuckDB, which turns it
    into "Query interrupted" (a RuntimeError): the run was then marked failed with a traceback.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._previous: object = None

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            self._previous = signal.signal(signal.SIGINT, self._press)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def _press(self, signum: int, frame: object) -> None:
        self.pressed = True


def _into_lake(engine: Any, args: argparse.Namespace, params: SimulationParams,
               progress: Any) -> Any:  # fmt: skip
    """The run into ``--lake``: in this process, or its shards on a Dask cluster."""
    kwargs = {"progress": progress, "partition_rows": args.partition_rows,
              "shard_rows": args.shard_rows}  # fmt: skip
    if args.workers is None and args.scheduler is None:
        return engine.simulate_into_lake(args.lake, params, **kwargs)
    from engine.lake.cluster import cluster_client, shard_runner

    with cluster_client(args.workers, args.scheduler) as client:
        return engine.simulate_into_lake(args.lake, params, runner=shard_runner(client), **kwargs)


def _positive(text: str) -> int:
    """A positive whole number."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _help(field: str) -> str:
    """A SimulationParams field's description, lower-cased, for its option's help."""
    text = SimulationParams.model_fields[field].description or field
    return text[0].lower() + text[1:].rstrip(".").replace("%", "%%")


def _option(field: str) -> str:
    """The command-line option that sets a SimulationParams field."""
    return "--" + field.replace("_", "-")


def run_generate(args: argparse.Namespace) -> int:
    """Run ``generate``; returns the exit code (an invalid or refused run raises an
    :class:`~engine.errors.EngineError`, which :func:`workbench.cli.main` reports)."""
    from pydantic import ValidationError

    from engine.service import Engine

    fields: dict[str, object] = {
        "rows": args.rows,
        "seed": args.seed,
        "days": args.days,
        "fraud_rate": args.fraud_rate,
    }
    if args.scenario_mix is not None:
        fields["scenario_mix"] = args.scenario_mix
    fields["difficulty"] = args.difficulty
    for name in (*KNOB_NAMES, "cards", "merchants", "devices"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    if args.chunk_rows is not None:
        fields["chunk_rows"] = args.chunk_rows
    if (args.workers is not None or args.scheduler) and not args.lake:
        raise UsageError("--workers and --scheduler generate into a lake: give --lake DIR too.")
    if args.workers is not None and args.scheduler:
        raise UsageError("Give --workers (a local cluster) or --scheduler (an existing one).")
    try:
        params = SimulationParams(**fields)
    except ValidationError as exc:  # main() prints it on stderr and exits with 2
        raise UsageError(describe_first(exc, root="arguments", name=_option)[1]) from None
    engine = Engine(get_settings(**({"db": args.db} if args.db else {})))
    engine.store.set_memory_limit(args.memory_limit)
    bar = tqdm(
        total=params.rows,
        unit=" rows",
        unit_scale=True,
        disable=args.quiet,
        dynamic_ncols=True,
        desc="generate",
    )

    stop = _CtrlC()
    committed = 0

    def progress(written: int, planned: int) -> None:
        nonlocal committed
        committed = written
        bar.update(written - bar.n)
        if stop.pressed:  # raised after a commit: the run ends 'interrupted' with these rows
            raise KeyboardInterrupt

    try:
        with stop:
            if args.lake:
                record = _into_lake(engine, args, params, progress)
            else:
                record = engine.simulate(params, progress=progress)
    except KeyboardInterrupt:
        bar.close()
        runs = Lake(args.lake).manifests() if args.lake else engine.list_runs()
        run = max(
            (r.record() if isinstance(r, Manifest) else r for r in runs),
            key=lambda r: r.id,
            default=None,
        )
        print(
            f"ptsim generate: interrupted; run {run.id if run else '?'} is marked "
            f"{run.status if run else 'interrupted'} with its {committed:,} committed rows.",
            file=sys.stderr,
        )
        return INTERRUPTED
    finally:
        bar.close()
        engine.close()
    summary = record.summary
    where = f" in the lake {args.lake}" if args.lake else ""
    print(
        f"run {record.id}{where} {record.status}: {record.rows_written:,} rows in "
        f"{record.timings.get('total_s', 0):.1f} s ({record.timings.get('rows_per_s', 0):,.0f} "
        f"rows/s); approval rate {summary['approval_rate']:.2%}, fraud rows "
        f"{summary['fraud_rows']:,}, fraud caught {summary['fraud_caught_rate']:.2%}, "
        f"total cost {summary['costs'].total:,.2f} {summary['costs'].currency}"
    )
    return 0
