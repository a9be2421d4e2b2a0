"""Named lists as the compiler receives them: a kind and items already normalised.

Items per kind: ``card`` — 16-byte fingerprints (``bytes`` or ``uuid.UUID``, the same bits as
the stored ``card_hash``); ``bin`` — six-digit text (``'412345'``); ``device``, ``merchant``,
``currency``, ``text`` — text, compared exactly. Storing, normalising and versioning lists is the
caller's job; the compiler only builds lookup structures from them, once.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from engine.rules.exact import bin_number

KINDS = ("card", "bin", "device", "merchant", "currency", "text")
MAX_ITEMS = 1_000_000


@dataclass(frozen=True, slots=True)
class ListSpec:
    """A list's kind (one of :data:`KINDS`) and its normalised items."""

    kind: str
    items: Collection[object]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown list kind {self.kind!r}: one of {', '.join(KINDS)}")
        if len(self.items) > MAX_ITEMS:
            raise ValueError(f"a list holds at most {MAX_ITEMS:,} items, not {len(self.items):,}")


def card_bytes(item: object) -> bytes:
    """A card list item as the 16 bytes of its fingerprint."""
    raw = item.bytes if isinstance(item, uuid.UUID) else item
    if isinstance(raw, np.bytes_):  # an element of an 'S16' array: numpy strips trailing NULs
        raw = bytes(raw).ljust(16, b"\0")
    if not isinstance(raw, bytes) or len(raw) != 16:
        raise ValueError("card list items must be 16-byte fingerprints (bytes or uuid.UUID)")
    return raw


def sorted_cards(items: Collection[object]) -> np.ndarray:
    """Fingerprints as a sorted, unique 'S16' array (for ``searchsorted``). Fixed-width bytes
    compare with trailing NULs as padding, which keeps distinct 16-byte values distinct."""
    return np.unique(np.array([card_bytes(item) for item in items], dtype="S16"))


def sorted_bins(items: Collection[object]) -> np.ndarray:
    """Six-digit items as a sorted, unique int64 array; other text can never equal a BIN."""
    numbers = [n for n in (bin_number(str(item)) for item in items) if n is not None]
    return np.unique(np.array(numbers, dtype=np.int64))


def text_items(items: Collection[object]) -> frozenset[str]:
    """Text items as a set (hash lookups)."""
    return frozenset(str(item) for item in items)
