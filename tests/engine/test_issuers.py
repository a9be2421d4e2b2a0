"""The committed world tables: simulated test BINs (issuing countries, the documented mix),
countries and ISO 18245 merchant categories."""

from __future__ import annotations

import numpy as np

from engine import geo
from engine.fx import RATES_PER_EUR
from engine.issuers import bin_country, bins, countries
from engine.merchant_categories import MCC_PATTERN, categories, documented_mccs

PUBLISHED = {"400000", "401288", "411111", "424242", "222300", "510510", "555555"}


def test_published_test_bins_are_kept_and_the_rest_are_marked_simulated() -> None:
    table = bins()
    origin = dict(zip(table.bins, table.origin, strict=True))
    assert set(origin) >= PUBLISHED
    assert {b for b, o in origin.items() if o == "published"} == PUBLISHED
    assert {o for b, o in origin.items() if b not in PUBLISHED} == {"simulated"}
    assert len(set(table.bins)) == len(table.bins)
    assert all(len(b) == 6 and b.isdigit() for b in table.bins)
    # simulated ranges stay inside the sandboxes' test prefixes
    assert all(
        b.startswith(("4000", "5555", "2223")) for b, o in origin.items() if o != "published"
    )


def test_the_default_mix_is_the_documented_one() -> None:
    """The shares the CSV header states, recomputed from its rows."""
    table = bins()
    country = np.array(countries().codes)[table.country]
    share = {c: table.weight[country == c].sum() for c in ("GB", "US")}
    assert abs(share["GB"] - 0.57) < 0.01 and abs(share["US"] - 0.125) < 0.01
    assert abs(table.weight[np.array(table.scheme) == "visa"].sum() - 2 / 3) < 0.02
    assert abs(table.weight[np.array(table.segment) == "debit"].sum() - 0.59) < 0.01
    assert abs(table.weight.sum() - 1.0) < 1e-12


def test_bin_country_for_the_live_path() -> None:
    assert bin_country("400000") == "GB"
    assert bin_country("411111") == "US"
    assert bin_country("400027") == "DE"
    assert bin_country("123456") is None  # a BIN outside the table has no country


def test_countries_are_real_with_a_rated_currency() -> None:
    world = countries()
    iso = geo.iso_countries()
    assert set(world.codes) <= iso
    for code, currency in zip(world.codes, world.currency, strict=True):
        assert currency is None or currency in RATES_PER_EUR, code
    # every issuing country has a currency; every weighted merchant country too
    issuing = {world.codes[c] for c in bins().country.tolist()}
    assert all(world.currency[world.index(c)] for c in issuing)
    assert all(world.currency[i] for i in np.flatnonzero(world.merchants > 0))


def test_merchant_categories_are_a_documented_iso_18245_subset() -> None:
    table = categories()
    assert 15 <= len(table) <= 25
    assert {"5411", "5541", "5812", "5311", "5651", "5691", "4511", "7011", "5732", "5816",
            "5944", "4814", "5999", "7995", "4121"} <= documented_mccs()  # fmt: skip
    assert all(MCC_PATTERN.match(code) for code in table.mcc)
    assert np.allclose(table.channel_share.sum(axis=1), 1.0)
    assert (table.median_cents > 0).all() and (table.sigma > 0).all()
    assert (table.exposure > 0).all() and (table.merchants > 0).all()
    # opening hours: groceries shut at night, online goods never do
    grocery, games = table.mcc.index("5411"), table.mcc.index("5816")
    assert table.hourly[grocery, 3] < 1 and table.hourly[grocery, 12] == 1
    assert (table.hourly[games] == 1).all()
