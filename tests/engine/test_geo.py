"""engine/geo.py against the geoip2fast package it reads: the vectorised lookup equals the
package's own ``lookup`` address by address, and sampled addresses fall in their country."""

from __future__ import annotations

import numpy as np
import pytest
from geoip2fast import GeoIP2Fast

from engine import geo


@pytest.fixture(scope="module")
def reader() -> GeoIP2Fast:
    return GeoIP2Fast()


def _package_code(reader: GeoIP2Fast, ips: np.ndarray) -> list[str | None]:
    out = []
    for text in geo.ip_texts(ips).to_pylist():
        code = reader.lookup(text).country_code
        out.append(None if code in ("--", "") else code)
    return out


def test_the_wrapped_internals_are_sorted_networks_with_known_countries() -> None:
    table = geo.geo_table()
    assert len(table.first) > 100_000 and table.first[0] == 0
    assert (np.diff(table.first.astype(np.int64)) > 0).all()
    assert (table.last >= table.first).all()
    assert table.source.startswith("MAXMIND:GeoLite2-Country")
    assert {"GB", "US", "DE", "FR"} <= set(table.codes)


def test_vectorised_lookup_equals_the_package_for_random_addresses(reader) -> None:
    ips = np.random.default_rng(7).integers(0, 2**32, 4_000, dtype=np.uint64).astype(np.uint32)
    edges = geo.geo_table().first[::997]  # network boundaries and the address just before
    ips = np.concatenate([ips, edges, edges - np.uint32(1)])
    assert geo.country_codes_of(ips).tolist() == _package_code(reader, ips)


def test_sampled_addresses_map_back_to_their_country(reader) -> None:
    table = geo.geo_table()
    wanted = ["GB", "US", "DE", "FR", "BR", "IN", "NG", "SG", "LU", "MT"]
    countries = np.repeat([table.code_index(c) for c in wanted], 300)
    ips = geo.random_ips(np.random.default_rng(3), countries)
    expected = np.repeat(wanted, 300).tolist()
    assert geo.country_codes_of(ips).tolist() == expected
    assert _package_code(reader, ips) == expected
    assert len(np.unique(ips)) > 0.99 * len(ips)


def test_sampling_is_reproducible_and_weighted_by_network_size() -> None:
    table = geo.geo_table()
    us = np.full(20_000, table.code_index("US"))
    first = geo.random_ips(np.random.default_rng(1), us)
    assert (first == geo.random_ips(np.random.default_rng(1), us)).all()
    # uniform over the country's addresses: the share landing in a /8 of the US follows its size
    sizes = table.last.astype(np.int64) - table.first + 1
    mine = table.country == table.code_index("US")
    in_low_half = (table.first < 2**31) & mine
    share = sizes[in_low_half].sum() / sizes[mine].sum()
    assert abs((first < 2**31).mean() - share) < 0.02


def test_country_of_text() -> None:
    assert geo.country_of("8.8.8.8") == "US"
    for private in ("10.1.2.3", "192.168.0.1", "127.0.0.1", "0.0.0.1", "255.255.255.255"):
        assert geo.country_of(private) is None
    assert geo.country_of("::1") is None  # IPv6: the bundled data is IPv4 only
    assert geo.country_of("not an address") is None
    assert geo.ipv4_number("1.2.3.4") == 0x01020304


def test_a_country_without_public_networks_is_refused() -> None:
    table = geo.geo_table()
    with pytest.raises(ValueError, match="AD"):  # the package's quirk: Andorra reads private
        geo.random_ips(np.random.default_rng(0), np.array([table.code_index("AD")]))


def test_iso_countries_are_two_letter_codes() -> None:
    codes = geo.iso_countries()
    assert {"GB", "US", "DE", "AD"} <= codes
    assert "EU" not in codes and "ASIA" not in codes and "99" not in codes


def _same_table(a: geo.GeoTable, b: geo.GeoTable) -> None:
    for name in ("first", "last", "country", "by_country", "cum_size", "country_start"):
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == right.dtype and np.array_equal(left, right), name
    assert (a.codes, a.names, a.source) == (b.codes, b.names, b.source)


def test_the_cache_holds_exactly_what_the_package_gives(tmp_path) -> None:
    built = geo.cached_geo_table(tmp_path)  # nothing cached yet: built from the package
    (saved,) = tmp_path.glob("geo-v*.npz")
    read = geo.cached_geo_table(tmp_path)  # read back from the file
    _same_table(built, geo._built_table())
    _same_table(read, built)
    assert isinstance(read.codes, tuple) and isinstance(read.codes[0], str)
    assert [p.name for p in tmp_path.iterdir()] == [saved.name]  # no temporary file left


def test_a_damaged_cache_file_is_rebuilt(tmp_path) -> None:
    geo.cached_geo_table(tmp_path)
    (saved,) = tmp_path.glob("geo-v*.npz")
    saved.write_bytes(saved.read_bytes()[:1000])  # torn
    _same_table(geo.cached_geo_table(tmp_path), geo._built_table())
    _same_table(geo._read_cache(saved), geo._built_table())  # and written again, whole


def test_an_unwritable_cache_directory_still_gives_the_table(tmp_path) -> None:
    blocked = tmp_path / "a file"
    blocked.write_text("not a directory")
    _same_table(geo.cached_geo_table(blocked / "ptsim"), geo._built_table())


def test_new_package_data_is_a_new_cache_file(tmp_path, monkeypatch) -> None:
    geo.cached_geo_table(tmp_path)
    monkeypatch.setattr(geo, "_package_data_digest", lambda: "f" * 64)
    geo.cached_geo_table(tmp_path)
    assert len(list(tmp_path.glob("geo-v*.npz"))) == 2
