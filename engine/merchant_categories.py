"""Merchant categories: a documented subset of ISO 18245 merchant category codes (MCCs).

The committed table ``engine/data/merchant_categories.csv`` (see its header) gives each category
its amount distribution, channel mix, opening hours, fraud exposure, share of merchants and how
much it draws customers from abroad; the simulator reads it column-wise (:func:`categories`).
``POST /payment`` accepts any ISO 18245-shaped code (four digits): acquirers send codes outside
this subset too, and a rule can still name them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from engine.features import CHANNELS
from engine.issuers import read_table

MCC_PATTERN = re.compile(r"^[0-9]{4}$")
CLOSED_SHARE = 0.05  # a category's intensity outside its opening hours, relative to open


@dataclass(frozen=True, slots=True)
class Categories:
    """The MCC table, column-wise (file order)."""

    mcc: tuple[str, ...]  # four digits
    description: tuple[str, ...]
    median_cents: np.ndarray  # float64
    sigma: np.ndarray  # float64
    channel_share: np.ndarray  # (n, len(CHANNELS)) float64 channel mix, rows summing to 1
    channel_cdf: np.ndarray  # its cumulative sums (last column 1)
    accepts: np.ndarray  # (n, len(CHANNELS)) bool: the channel's share is positive
    hourly: np.ndarray  # (n, 24) float64 relative intensity by UTC hour (1 open, else 0.05)
    exposure: np.ndarray  # float64 fraud exposure
    merchants: np.ndarray  # float64 relative number of merchants
    abroad: np.ndarray  # float64 pull on foreign customers
    nouns: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.mcc)


@functools.cache
def categories() -> Categories:
    """The merchant category table (read once)."""
    rows = read_table("merchant_categories.csv")

    def numbers(column: str) -> np.ndarray:
        return np.array([float(r[column]) for r in rows])

    mix = np.column_stack([numbers(channel) for channel in CHANNELS])
    hours = np.arange(24)
    opens, closes = numbers("open"), numbers("close")
    is_open = (hours[None, :] >= opens[:, None]) & (hours[None, :] < closes[:, None])
    return Categories(
        mcc=tuple(r["mcc"] for r in rows),
        description=tuple(r["description"] for r in rows),
        median_cents=numbers("median") * 100.0,
        sigma=numbers("sigma"),
        channel_share=mix / mix.sum(axis=1, keepdims=True),
        channel_cdf=np.cumsum(mix, axis=1) / mix.sum(axis=1, keepdims=True),
        accepts=mix > 0,
        hourly=np.where(is_open, 1.0, CLOSED_SHARE),
        exposure=numbers("exposure"),
        merchants=numbers("merchants"),
        abroad=numbers("abroad"),
        nouns=tuple(tuple(r["nouns"].split("|")) for r in rows),
    )


def documented_mccs() -> frozenset[str]:
    """The codes of the documented subset."""
    return frozenset(categories().mcc)
