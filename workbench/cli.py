"""The ``ptsim`` command line: ``serve`` (dashboard + API), ``api``, ``generate`` and more."""

from __future__ import annotations

import argparse
import logging
import sys

from engine.config import get_settings
from engine.errors import EngineError
from workbench.cli_backup import add_backup_parsers
from workbench.cli_export import add_export_parser


def _serve(args: argparse.Namespace) -> int:
    from workbench.server import run

    pairs = (("db", args.db), ("api_port", args.api_port), ("lake", args.lake))
    overrides = {k: v for k, v in pairs if v}
    if getattr(args, "ui_port", None):
        overrides["ui_port"] = args.ui_port
    return run(get_settings(**overrides), with_dashboard=args.command == "serve")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="ptsim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="dashboard and REST API in one process (make run)")
    api = sub.add_parser("api", help="the REST API alone")
    for command in (serve, api):
        command.add_argument("--db", help="database file (default: PTSIM_DB)")
        command.add_argument("--api-port", type=int, help="API port (default: PTSIM_API_PORT)")
        command.add_argument(
            "--lake", help="attach this Parquet lake's runs (default: PTSIM_LAKE; none)"
        )
        command.set_defaults(handler=_serve)
    serve.add_argument("--ui-port", type=int, help="dashboard port (default: PTSIM_UI_PORT)")
    add_backup_parsers(sub)
    add_export_parser(sub)
    try:
        from workbench.cli_generate import add_generate_parser
    except ImportError:  # the bulk generator ships separately
        pass
    else:
        add_generate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ptsim`` console script.

    One error style for every subcommand: a sentence on stderr and exit code 2 (argparse reports
    unusable arguments the same way), 130 after Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except EngineError as exc:
        print(f"ptsim: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
