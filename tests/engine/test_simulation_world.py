"""The simulated world as stored: issuing countries from BINs, merchant categories and countries,
IP addresses and their GeoIP countries, cross-border rates, currencies, per-category channels,
amounts and opening hours (the rates docs/world.md documents)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from geoip2fast import GeoIP2Fast
from support import read_frame

from engine.issuers import bin_country, bins, countries
from engine.merchant_categories import categories
from engine.service import Engine

CARD_PRESENT = ["pos", "contactless"]


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("world") / "w.duckdb"
    with Engine.open(path, card_key="world-key") as eng:
        run = eng.simulate({"rows": 80_000, "seed": 11, "days": 14, "fraud_rate": 0.02})
        return read_frame(
            eng.store,
            "SELECT lpad(CAST(card_bin AS VARCHAR), 6, '0') AS bin, card_hash::VARCHAR AS card, "
            "channel::VARCHAR AS channel, currency::VARCHAR AS currency, merchant, "
            "CAST(amount * 100 AS BIGINT) AS cents, hour(created_at) AS hour, is_fraud, "
            "merchant_category, merchant_country, card_country, ip_address, ip_country, "
            "fraud_scenario::VARCHAR AS scenario, device_id "
            "FROM transactions WHERE run_id = ? ORDER BY id",
            [run.id],
        )


def test_card_country_is_the_bins_issuing_country(rows) -> None:
    assert (rows.card_country == rows.bin.map(bin_country)).all()
    # cards follow the BIN table's mix weights
    per_card = rows.drop_duplicates("card")
    share = per_card.bin.value_counts(normalize=True)
    weight = dict(zip(bins().bins, bins().weight, strict=True))
    for b in ("400000", "400082", "555582"):
        assert abs(share[b] - weight[b]) < 0.03, b


def test_card_present_rows_carry_no_ip_and_the_rest_one_in_its_geoip_country(rows) -> None:
    present = rows.channel.isin(CARD_PRESENT)
    assert rows.ip_address[present].isna().all() and rows.ip_country[present].isna().all()
    assert rows.ip_address[~present].notna().all()
    sample = rows[~present].sample(2_000, random_state=1)
    reader = GeoIP2Fast()
    looked_up = [reader.lookup(ip).country_code for ip in sample.ip_address]
    assert looked_up == sample.ip_country.tolist()  # every simulated address is placeable


def test_genuine_ips_are_mostly_at_home_and_fraud_ips_often_not(rows) -> None:
    online = rows[~rows.channel.isin(CARD_PRESENT)]
    genuine, fraud = online[~online.is_fraud], online[online.is_fraud]
    home = (genuine.ip_country == genuine.card_country).mean()
    assert 0.88 < home < 0.96  # 90% home addresses, plus travel and VPN exits that are home
    assert (fraud.ip_country == fraud.card_country).mean() < home - 0.2


def test_cross_border_rates_are_the_documented_ones(rows) -> None:
    genuine = rows[~rows.is_fraud]
    cross = genuine.card_country != genuine.merchant_country
    present = genuine.channel.isin(CARD_PRESENT)
    assert 0.07 < cross.mean() < 0.14  # docs/world.md: about 10%
    assert 0.02 < cross[present].mean() < 0.07  # about 4% card-present (travel)
    assert 0.15 < cross[~present].mean() < 0.26  # about 20% card-not-present


def test_counterfeit_is_card_present_abroad(rows) -> None:
    clones = rows[rows.scenario == "counterfeit"]
    assert len(clones) > 100 and clones.is_fraud.all()
    assert (clones.channel == "pos").all()  # a magnetic-stripe clone at a terminal
    assert clones.device_id.isna().all() and clones.ip_address.isna().all()
    assert (clones.merchant_country != clones.card_country).all()  # never in its own country
    genuine_present = rows[~rows.is_fraud & rows.channel.isin(CARD_PRESENT)]
    abroad = genuine_present.merchant_country != genuine_present.card_country
    assert abroad.mean() < 0.07  # docs/world.md: genuine card-present payments, about 4%


def test_card_not_present_fraud_is_cross_border_far_more_often(rows) -> None:
    online = rows[~rows.channel.isin(CARD_PRESENT)]
    fraud, genuine = online[online.is_fraud], online[~online.is_fraud]
    by_merchant = (fraud.merchant_country != fraud.card_country).mean()
    by_ip = (fraud.ip_country != fraud.card_country).mean()
    assert 0.45 < by_merchant < 0.75  # docs/world.md: 50–70%, genuine about 20%
    assert by_merchant > 2 * (genuine.merchant_country != genuine.card_country).mean()
    assert 0.6 < by_ip < 0.92 and by_ip > 5 * (genuine.ip_country != genuine.card_country).mean()
    for name in ("stolen_card", "card_testing", "account_takeover", "compromised_merchant"):
        part = fraud[fraud.scenario == name]
        assert (part.merchant_country != part.card_country).mean() > 0.35, name


def test_currency_follows_the_country(rows) -> None:
    world = countries()
    currency_of = dict(zip(world.codes, world.currency, strict=True))
    genuine = rows[~rows.is_fraud]
    merchant_currency = genuine.merchant_country.map(currency_of)
    card_currency = genuine.card_country.map(currency_of)
    present = genuine.channel.isin(CARD_PRESENT)
    assert (genuine.currency[present] == merchant_currency[present]).all()
    online = ~present
    either = (genuine.currency == merchant_currency) | (genuine.currency == card_currency)
    assert either[online].all()
    abroad = online & (genuine.card_country != genuine.merchant_country)
    home_priced = (genuine.currency == card_currency)[abroad].mean()
    assert 0.35 < home_priced < 0.65  # half of card-not-present purchases abroad


def test_categories_shape_channels_amounts_and_hours(rows) -> None:
    table = categories()
    genuine = rows[~rows.is_fraud]
    mcc = genuine.merchant_category.map(lambda c: f"{c:04d}")
    assert set(mcc) <= set(table.mcc) and len(set(mcc)) >= 12
    # a category's channels are the ones its mix accepts
    assert not genuine.channel[mcc == "5816"].isin(CARD_PRESENT).any()  # digital games
    assert not genuine.channel[mcc == "5541"].isin(["ecommerce", "moto"]).any()  # fuel
    # amounts: log-normal around the category's median (GBP rows: no conversion)
    gbp = genuine.currency == "GBP"
    median = genuine[gbp].groupby(mcc[gbp]).cents.median() / 100
    assert median["4511"] > 5 * median["5411"] > 5 * median["5814"] / 2
    # opening hours: groceries close at night (UTC), digital goods never do
    night = genuine.hour.between(0, 5)
    grocery_night = (mcc[night] == "5411").mean() / (mcc[~night] == "5411").mean()
    games_night = (mcc[night] == "5816").mean() / (mcc[~night] == "5816").mean()
    assert grocery_night < 0.5 < games_night


def test_friendly_fraud_pays_from_the_cardholders_own_ips_and_fraud_from_elsewhere() -> None:
    """Friendly fraud is the cardholder's own payment: its IP is drawn as a genuine row's (home,
    travel or VPN), never from the fraud pool a fraud row mostly uses."""
    import numpy as np

    from engine.features import CHANNELS
    from engine.simulation.params import SimulationParams
    from engine.simulation.population import build_population
    from engine.simulation.rows import FRIENDLY_CODE, Rows
    from engine.simulation.scenarios import CODE
    from engine.simulation.world import world_columns

    pop = build_population(SimulationParams(rows=4_000, seed=3), b"world-key")
    n = 2_000

    def rows_of(scenario: int) -> Rows:
        return Rows(
            t_ms=1_767_225_600_000 + np.arange(n, dtype=np.int64) * 1_000,
            card=np.arange(n, dtype=np.int64) % pop.n_cards,
            merchant=np.zeros(n, dtype=np.int32),
            channel=np.full(n, CHANNELS.index("ecommerce"), dtype=np.int8),
            device=np.full(n, -1, dtype=np.int64),
            currency=np.zeros(n, dtype=np.int8),
            amount_cents=np.full(n, 1_000, dtype=np.int64),
            draw=np.zeros(n),
            latency_ms=np.zeros(n),
            scenario=np.full(n, scenario, dtype=np.int8),
            label_at_ms=np.full(n, -1, dtype=np.int64),
            dispute=np.full(n, -1, dtype=np.int8),
        )

    first, size = pop.ip_pools["fraud"]
    in_fraud_pool = lambda ip: (ip >= first) & (ip < first + size)  # noqa: E731
    friendly = world_columns(rows_of(FRIENDLY_CODE), pop, 3).ip
    assert not in_fraud_pool(friendly).any()
    home = (friendly // 2 == np.arange(n) % pop.n_cards).mean()
    assert 0.85 < home < 0.95  # 90% the card's own home addresses
    stolen = world_columns(rows_of(CODE["stolen_card"]), pop, 3).ip
    assert in_fraud_pool(stolen).mean() > 0.5


def test_a_world_whose_only_merchant_is_online_has_no_invalid_arithmetic(tmp_path) -> None:
    """The RuntimeWarnings that fuzzing POST /simulations showed: with no card-present merchant
    the card-present class weighed 0 (its hourly profile and the merchant tickets divided 0 by
    0). Now the class is empty: every payment is card-not-present, the tickets are uniform."""
    import warnings

    import numpy as np

    from engine.simulation.params import SimulationParams
    from engine.simulation.population import _present_share, _tickets, build_population
    from engine.simulation.rows import Rows
    from engine.simulation.stream import chunks

    params = SimulationParams(rows=2_000, days=2, seed=14, merchants=1, fraud_rate=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        pop = build_population(params, b"world-key")
        rows = Rows.concat(list(chunks(params, pop, 500)))
    assert _present_share(pop.merchant_category).tolist() == [0.0]  # the one merchant: online
    assert (pop.online_by_hour == 1.0).all()
    assert len(rows) == params.rows and (rows.merchant == 0).all()
    assert _tickets(np.zeros(3), 20.0).tolist() == [0, 1, 2]
    with Engine.open(tmp_path / "w.duckdb", card_key="world-key") as eng:
        assert eng.simulate(params).status == "completed"


def test_fraud_from_the_cards_own_device_pays_from_its_home_network() -> None:
    """Blended fraud (malware or remote access on the victim's device) comes from the card's
    own home addresses like its genuine payments; fraud from a fraudster's device does not."""
    import numpy as np

    from engine.simulation.params import SimulationParams
    from engine.simulation.population import CH, build_population
    from engine.simulation.rows import Rows
    from engine.simulation.scenarios import CODE
    from engine.simulation.world import world_columns

    pop = build_population(SimulationParams(rows=50_000, seed=4), b"world-key")
    n = 4_000
    card = np.arange(n) % pop.n_cards
    rows = Rows(
        t_ms=1_767_225_600_000 + np.arange(n, dtype=np.int64) * 1_000, card=card,
        merchant=np.zeros(n, np.int32), channel=np.full(n, CH["ecommerce"], np.int8),
        device=pop.card_device[card], currency=np.zeros(n, np.int8),
        amount_cents=np.full(n, 1_000), draw=np.zeros(n), latency_ms=np.zeros(n),
        scenario=np.full(n, CODE["stolen_card"], np.int8), label_at_ms=np.full(n, -1),
        dispute=np.full(n, -1, np.int8),
    )  # fmt: skip
    home = world_columns(rows, pop, seed=4).ip // 2 == card  # codes 2c, 2c + 1: card c's
    assert 0.85 < home.mean() < 0.95  # the genuine share of home addresses (90%)
    stranger = dataclasses.replace(rows, device=np.full(n, pop.n_legit_devices))  # a fraudster's
    assert (world_columns(stranger, pop, seed=4).ip // 2 == card).mean() < 0.05
