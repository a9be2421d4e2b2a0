"""Where cards come from: the simulated test BIN table and the countries of the simulated world.

Two committed tables (package data, ``engine/data/``), read once:

* ``test_bins.csv`` — simulated *test* BIN ranges (the sandboxes' published test BINs and more
  made up inside the same test prefixes), each with its scheme, issuing country (ISO 3166-1
  alpha-2), card segment and a mix weight. The live path maps a card's BIN to its issuing
  country with :func:`bin_country` (a BIN not in the table has no country); the simulator draws
  its cards' BINs with the weights.
* ``countries.csv`` — each country's currency and the weights of where merchants are, where
  cardholders travel, where VPN exits and fraudsters' addresses are (see the file's header).
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources

import numpy as np


def read_table(name: str) -> list[dict[str, str]]:
    """Rows of the committed CSV ``engine/data/<name>`` (lines starting with '#' are comments)."""
    text = resources.files("engine").joinpath("data", name).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


@dataclass(frozen=True, slots=True)
class Bins:
    """The BIN table, column-wise (row order of the file)."""

    bins: tuple[str, ...]  # six digits
    scheme: tuple[str, ...]
    country: np.ndarray  # int8 index into COUNTRIES.codes
    segment: tuple[str, ...]
    weight: np.ndarray  # float64 shares, summing to 1
    origin: tuple[str, ...]  # 'published' (a sandbox's test BIN) or 'simulated'


@dataclass(frozen=True, slots=True)
class Countries:
    """The simulated world's countries, column-wise; weights are relative (not normalized)."""

    codes: tuple[str, ...]
    currency: tuple[str | None, ...]  # None: only IP addresses come from there
    merchants: np.ndarray
    travel: np.ndarray
    vpn: np.ndarray
    fraud: np.ndarray

    def index(self, code: str) -> int:
        """The index of ``code``."""
        return self.codes.index(code)


@functools.cache
def countries() -> Countries:
    """The countries table (read once)."""
    rows = read_table("countries.csv")

    def weights(column: str) -> np.ndarray:
        return np.array([float(r[column]) for r in rows])

    return Countries(
        codes=tuple(r["country"] for r in rows),
        currency=tuple(r["currency"] or None for r in rows),
        merchants=weights("merchants"),
        travel=weights("travel"),
        vpn=weights("vpn"),
        fraud=weights("fraud"),
    )


@functools.cache
def bins() -> Bins:
    """The simulated test BIN table (read once)."""
    rows = read_table("test_bins.csv")
    where = countries()
    weight = np.array([float(r["weight"]) for r in rows])
    return Bins(
        bins=tuple(r["bin"] for r in rows),
        scheme=tuple(r["scheme"] for r in rows),
        country=np.array([where.index(r["country"]) for r in rows], dtype=np.int8),
        segment=tuple(r["segment"] for r in rows),
        weight=weight / weight.sum(),
        origin=tuple(r["origin"] for r in rows),
    )


@functools.cache
def _country_by_bin() -> dict[str, str]:
    table = bins()
    codes = countries().codes
    return {b: codes[c] for b, c in zip(table.bins, table.country.tolist(), strict=True)}


def bin_country(card_bin: str) -> str | None:
    """The issuing country (ISO 3166-1 alpha-2) of a BIN (its six digits as text), or None
    for a BIN the simulated table does not list."""
    return _country_by_bin().get(card_bin)
