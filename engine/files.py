"""Whole files or none: writing beside the target, then renaming into place."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def written_aside(target: Path, write: Callable[[Path], T]) -> T:
    """``write(aside)`` to a dot-file beside ``target``, then renamed into place, so ``target``
    never holds part of a file (a write cut short leaves nothing, and a reader sees the old file
    or the whole new one); what ``write`` returns."""
    aside = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        result = write(aside)
        aside.replace(target)
    finally:
        aside.unlink(missing_ok=True)
    return result
