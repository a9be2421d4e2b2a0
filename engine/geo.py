"""Countries of IPv4 addresses, from the GeoLite2 country data the ``geoip2fast`` package ships.

The data is MaxMind's GeoLite2 Country (IPv4), bundled in the ``geoip2fast`` wheel as one
gzipped pickle: no network access, no hand-made table. It is loaded once per process, lazily,
into numpy arrays: each network's first address (uint32, sorted), its last address and its
country. Reading the package's pickle and building the arrays takes ~0.2 s, which every
simulation run paid in its population stage (a 1,000-row run: 0.35 s instead of 0.06 s). So
the arrays built from it are kept in the user's cache directory (``platformdirs``), named by
the SHA-256 of the package's data file and :data:`CACHE_FORMAT`, and later processes load them
in milliseconds; a missing, unreadable or damaged cache file is rebuilt from the package, an
unwritable cache directory only costs the rebuild. Then

* :func:`countries_of` looks up many addresses at once (one ``np.searchsorted``);
* :func:`country_of` looks up one address given as text (None for private, reserved, unknown
  or non-IPv4 addresses: the bundled data is IPv4 only);
* :func:`random_ips` draws public addresses inside given countries, uniformly over each
  country's addresses (so a network is chosen in proportion to its size).

Semantics follow the package exactly (a test compares thousands of addresses with
``GeoIP2Fast().lookup``): an address in no network, or in a network the package marks private
or reserved, has no country. One quirk is kept on purpose: geoip2fast 1.2.2 marks its first
country, Andorra (``AD``), as private (its ``is_private`` test is ``index < 16`` over a list
whose 16th entry is Andorra), so Andorran addresses have no country here either.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import ipaddress
import logging
import time
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.files import written_aside

UNKNOWN = -1  # country index of an address without a country
# The package's own test for private/reserved networks (geoip2fast.py, ``_country_lookup``):
# the first 16 entries of its country list are reserved ranges (and, by its off-by-one, AD).
_PACKAGE_PRIVATE_BELOW = 16
# Region codes in the data that are not ISO 3166-1 countries (MaxMind's continent fallbacks).
_NOT_COUNTRIES = frozenset({"EU", "ASIA"})
# The arrays the cache holds are derived by the code below: change this when that code changes
# what it derives, so caches written by older code are not read.
CACHE_FORMAT = 1
# geoip2fast's default data file (its GEOIP2FAST_DAT_GZ_FILE), which GeoIP2Fast() loads
_PACKAGE_DATA = "geoip2fast.dat.gz"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GeoTable:
    """The bundled networks, sorted by first address; countries index :attr:`codes`."""

    first: np.ndarray  # uint32 first address of each network
    last: np.ndarray  # uint32 last address (inclusive)
    country: np.ndarray  # int16 index into codes, UNKNOWN for private/reserved networks
    codes: tuple[str, ...]  # the data's region codes, as the package reports them
    names: tuple[str, ...]  # their English names
    source: str  # e.g. 'MAXMIND:GeoLite2-Country-IPv4-en-20240618'
    load_seconds: float  # what loading took: from the cache, or the package's data
    # random_ips: networks grouped by country, with the cumulative address counts
    by_country: np.ndarray  # int64 network indices, ordered by country then address
    cum_size: np.ndarray  # int64 addresses in by_country[: i + 1]
    country_start: np.ndarray  # int64 addresses before country c's first network

    def code_index(self, code: str) -> int:
        """The index of region ``code`` (ValueError when the data has no such code)."""
        try:
            return self.codes.index(code)
        except ValueError:
            raise ValueError(f"the GeoIP data has no country {code!r}") from None


def _package_networks() -> tuple[list[int], list[int], list[int], list[str], str]:
    """(first addresses, prefix lengths, country-list indices, the country list as 'CC:Name',
    the data's source) straight from geoip2fast's loaded data.

    The package offers lookups one address at a time only; its loaded data is module state of
    ``geoip2fast.geoip2fast`` (lists of chunks). This function is the one place that reads it
    (``tests/engine/test_geo.py`` checks the result against the package's own lookups)."""
    from geoip2fast import GeoIP2Fast
    from geoip2fast import geoip2fast as internals

    reader = GeoIP2Fast()  # loads the bundled geoip2fast.dat.gz (country, IPv4) into the module
    first = [ip for chunk in internals.mainListFirstIP for ip in chunk]
    prefix = [n for chunk in internals.mainListNetlength for n in chunk]
    country = [c for chunk in internals.mainListIDCountryCodes for c in chunk]
    return first, prefix, country, list(internals.mainListNamesCountry), str(reader.source_info)


@functools.cache
def geo_table() -> GeoTable:
    """The GeoIP networks as numpy arrays (loaded on first use, once per process, from the
    user's cache directory when an earlier process left them there)."""
    import platformdirs  # only here: the first lookup pays for it, not every import

    return cached_geo_table(Path(platformdirs.user_cache_dir("ptsim")))


def cached_geo_table(cache_dir: Path) -> GeoTable:
    """The GeoIP networks, read from ``cache_dir`` if it holds them for the installed package's
    data, else built from the package and written there (atomically; failures to write are
    logged, not raised: the table is still returned)."""
    started = time.perf_counter()
    path = cache_dir / f"geo-v{CACHE_FORMAT}-{_package_data_digest()[:24]}.npz"
    table = _read_cache(path)
    if table is None:
        table = _built_table()
        _write_cache(path, table)
    return replace(table, load_seconds=time.perf_counter() - started)


def _package_data_digest() -> str:
    """SHA-256 of the data file geoip2fast loads: a new package release (new data) is a new
    cache file."""
    spec = importlib.util.find_spec("geoip2fast")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("geoip2fast is not installed: run `make setup`")
    data = Path(next(iter(spec.submodule_search_locations))) / _PACKAGE_DATA
    return hashlib.sha256(data.read_bytes()).hexdigest()


_ARRAYS = ("first", "last", "country", "by_country", "cum_size", "country_start")
_TEXTS = ("codes", "names")


def _read_cache(path: Path) -> GeoTable | None:
    """The table saved at ``path``, or None when it is missing or unreadable (then rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in _ARRAYS}
            texts = {name: tuple(saved[name].tolist()) for name in _TEXTS}
            source = str(saved["source"])
    except FileNotFoundError:
        return None
    except Exception as exc:  # a torn or foreign file: rebuild it
        log.info("rebuilding the GeoIP cache %s: %s", path, exc)
        return None
    return GeoTable(**arrays, **texts, source=source, load_seconds=0.0)


def _write_cache(path: Path, table: GeoTable) -> None:
    """Save ``table`` at ``path``, whole or not at all (another process may be reading it)."""

    def save(aside: Path) -> None:
        with aside.open("wb") as out:  # a file object: np.savez would add ".npz" to a name
            np.savez(
                out,
                **{name: getattr(table, name) for name in _ARRAYS},
                **{name: np.array(getattr(table, name), dtype=str) for name in _TEXTS},
                source=np.array(table.source),
            )

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        written_aside(path, save)
    except OSError as exc:
        log.info("could not write the GeoIP cache %s (%s); it is rebuilt next time", path, exc)


def _built_table() -> GeoTable:
    """The table built from the package's own data (~0.2 s)."""
    first_list, prefix_list, country_list, entries, source = _package_networks()
    first = np.array(first_list, dtype=np.int64)
    size = np.left_shift(np.int64(1), 32 - np.array(prefix_list, dtype=np.int64))
    index = np.array(country_list, dtype=np.int64)
    codes = tuple(entry.split(":", 1)[0] for entry in entries)
    names = tuple(entry.split(":", 1)[1] for entry in entries)
    country = np.where(index < _PACKAGE_PRIVATE_BELOW, UNKNOWN, index).astype(np.int16)
    # a last address never reaches past the next network's start (the data has one overlap,
    # 240.0.0.0/4 over 255.255.255.255/32, both reserved: the package's search picks the later)
    last = np.minimum(first + size - 1, np.append(first[1:] - 1, 2**32 - 1))
    public = np.flatnonzero(country != UNKNOWN)
    by_country = public[np.argsort(country[public], kind="stable")]
    cum_size = np.cumsum(size[by_country])
    counts = np.bincount(country[by_country], weights=size[by_country], minlength=len(codes))
    country_start = np.concatenate([[0], np.cumsum(counts.astype(np.int64))[:-1]])
    return GeoTable(
        first=first.astype(np.uint32),
        last=last.astype(np.uint32),
        country=country,
        codes=codes,
        names=names,
        source=source,
        load_seconds=0.0,
        by_country=by_country,
        cum_size=cum_size,
        country_start=country_start.astype(np.int64),
    )


def countries_of(ips: np.ndarray) -> np.ndarray:
    """The country index (into ``geo_table().codes``) of each IPv4 address (uint32 array);
    :data:`UNKNOWN` for private, reserved and unlisted addresses."""
    table = geo_table()
    ips = np.asarray(ips, dtype=np.uint32)
    at = np.searchsorted(table.first, ips, side="right") - 1
    found = ips <= table.last[at]  # at >= 0 always: the first network starts at 0.0.0.0
    return np.where(found, table.country[at], UNKNOWN).astype(np.int16)


def country_codes_of(ips: np.ndarray) -> np.ndarray:
    """:func:`countries_of` as an object array of codes (None for :data:`UNKNOWN`)."""
    table = geo_table()
    labels = np.array([*table.codes, None], dtype=object)  # index -1 → None
    return labels[countries_of(ips)]


def ipv4_number(text: str) -> int | None:
    """The address as an unsigned 32-bit number, or None when ``text`` is not IPv4."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return int(address) if address.version == 4 else None


def country_of(ip_text: str) -> str | None:
    """The country code of one address given as text: None for private, reserved, unknown,
    invalid or IPv6 addresses (the bundled data covers IPv4 only)."""
    number = ipv4_number(ip_text)
    if number is None:
        return None
    index = int(countries_of(np.array([number], dtype=np.uint32))[0])
    return None if index == UNKNOWN else geo_table().codes[index]


def random_ips(rng: np.random.Generator, countries: np.ndarray) -> np.ndarray:
    """One public IPv4 address (uint32) inside each requested country (indices into
    ``geo_table().codes``), uniform over the country's addresses. ValueError for a country
    without public networks."""
    table = geo_table()
    countries = np.asarray(countries, dtype=np.int64)
    start = table.country_start[countries]
    end = np.append(table.country_start[1:], table.cum_size[-1])[countries]
    if (end == start).any():
        empty = sorted({table.codes[c] for c in countries[end == start].tolist()})
        raise ValueError(f"the GeoIP data has no public networks in {', '.join(empty)}")
    target = start + np.floor(rng.random(len(countries)) * (end - start)).astype(np.int64)
    j = np.searchsorted(table.cum_size, target, side="right")
    network = table.by_country[j]
    size_j = table.cum_size[j] - np.where(j > 0, table.cum_size[j - 1], 0)
    offset = target - (table.cum_size[j] - size_j)
    return (table.first[network].astype(np.int64) + offset).astype(np.uint32)


def ip_texts(ips: np.ndarray) -> pa.Array:
    """Dotted-quad text of IPv4 numbers (uint32), as an Arrow string array (vectorised)."""
    octets = np.asarray(ips, dtype=">u4").view(np.uint8).reshape(-1, 4)
    parts = [pc.cast(pa.array(octets[:, k]), pa.string()) for k in range(4)]
    return pc.binary_join_element_wise(*parts, ".")


def iso_countries() -> frozenset[str]:
    """The ISO 3166-1 alpha-2 codes the GeoIP data names (region fallbacks and the reserved
    entries left out): the vocabulary of country attributes and ``merchant_country``."""
    codes = geo_table().codes
    return frozenset(c for c in codes if len(c) == 2 and c.isalpha() and c not in _NOT_COUNTRIES)


class _LazyCodes(Set[str]):
    """A set of region codes read from the GeoIP data on first use (a rule catalogue built at
    import time does not load the data: only the first check against the set does)."""

    def __init__(self, codes: Callable[[], frozenset[str]]) -> None:
        self._codes = codes

    def __contains__(self, value: object) -> bool:
        return value in self._codes()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._codes()))

    def __len__(self) -> int:
        return len(self._codes())


@functools.cache
def _regions() -> frozenset[str]:
    table = geo_table()
    public = set(np.unique(table.country[table.country != UNKNOWN]).tolist())
    return frozenset(table.codes[i] for i in public)


ISO_COUNTRIES: Set[str] = _LazyCodes(functools.cache(iso_countries))
"""The ISO 3166-1 alpha-2 codes of the GeoIP data (lazy): merchant and card countries."""
GEOIP_REGIONS: Set[str] = _LazyCodes(_regions)
"""Every code an address can have (lazy): ISO countries and the data's 'EU' / 'ASIA'."""
