"""``ptsim backup`` and ``ptsim restore``: operator commands for the database's backups."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.backup import list_backups, restore_backup
from engine.config import get_settings
from engine.errors import UsageError
from engine.store import Store, open_connection


def _db_path(args: argparse.Namespace) -> Path:
    settings = get_settings(**({"db": args.db} if args.db else {}))
    if settings.db_path is None:
        raise UsageError("An in-memory database has no backups; pass --db or set PTSIM_DB.")
    return settings.db_path


def _backup(args: argparse.Namespace) -> int:
    db_path = _db_path(args)
    if args.list:
        backups = list_backups(db_path)
        for backup in backups:
            print(f"{backup}  {backup.stat().st_size:>12,} bytes")
        if not backups:
            print(f"No backups of {db_path} yet.")
        return 0
    # Refuses with one sentence if the server holds the file, or if it is damaged (then no file
    # is touched: recovering it is the server's job, restoring a backup the operator's).
    store = Store(db_path, recover=False)
    try:
        print(f"Backup written to {store.backup()}")
    finally:
        store.close()
    return 0


def _restore(args: argparse.Namespace) -> int:
    db_path = _db_path(args)
    backups = list_backups(db_path)
    backup = Path(args.backup) if args.backup else (backups[-1] if backups else None)
    if backup is None:
        raise UsageError(f"There is no backup of {db_path} to restore (see `ptsim backup --list`).")
    if db_path.exists():
        open_connection(db_path).close()  # refuse while another process holds the file
    moved = restore_backup(backup, db_path)
    print(
        f"Restored {backup} to {db_path}." + (f" The previous file is at {moved}." if moved else "")
    )
    return 0


def add_backup_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``backup`` and ``restore`` on the ``ptsim`` parser."""
    backup = sub.add_parser("backup", help="write an online backup beside the database")
    backup.add_argument("--db", help="database file (default: PTSIM_DB)")
    backup.add_argument("--list", action="store_true", help="list existing backups")
    backup.set_defaults(handler=_backup)
    restore = sub.add_parser("restore", help="replace the database with a backup (server stopped)")
    restore.add_argument("backup", nargs="?", help="backup file (default: the newest)")
    restore.add_argument("--db", help="database file (default: PTSIM_DB)")
    restore.set_defaults(handler=_restore)
