"""The simulated world: cards, merchants and devices with profiles, and legitimate traffic.

* **Cards** are Luhn-valid 16-digit numbers from the simulated *test* BIN table
  (``engine/data/test_bins.csv``: never live-looking BINs), drawn with the table's mix weights;
  the BIN gives the card's issuing country, whose currency is the card's home currency. Each card
  has a spending level (log-normal), a daily payment rate (gamma, mean 1.5/day), a preferred
  channel, one or two usual devices and two home IP addresses in its country (GeoIP data,
  :mod:`engine.geo`). Full numbers only exist while their keyed fingerprint (HMAC, once per card)
  is computed; rows refer to cards by code and are dictionary-encoded at write time.
* **Merchants** have an ISO 18245 category (``engine/data/merchant_categories.csv``: amounts,
  channel mix, opening hours, fraud exposure), a country (``engine/data/countries.csv``) whose
  currency they charge in, and a popularity (Pareto).
* **Where cards pay**: mostly at merchants of their own country; with probability
  :data:`ABROAD_SHARE` at a merchant anywhere, drawn by the category's pull on foreign customers
  (airlines, hotels, digital goods more than groceries), so card-not-present payments are
  cross-border more often than card-present ones (rates in ``docs/world.md``). Merchants are
  weighted by their category's intensity at the payment's hour (open, or the closed-hours
  share): each category's hour-of-day profile shapes its traffic.
* **Devices**: a card pays from its usual device (93% of its device payments), a second one
  (6%) or another (1%: borrowed, new). The pool holds 0.8 devices per card: each usual device
  is one card's own or a household's two; second devices are drawn from the whole pool. A
  separate pool holds fraudsters' devices. All device ids come from one random draw, so an id
  says nothing about who uses it. A run's history starts empty, so a card's first payment on
  each of its devices is "new" (``is_new_device``): in a 1-day run that is most device
  payments, after a month about one in ten.
* **Arrivals** are a Poisson process whose intensity follows a daily and a weekly profile;
  conditional on the run's row count, the rows per simulated hour are multinomial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from engine import geo
from engine.cards import fingerprint_digests
from engine.features import CHANNELS
from engine.fx import RATES_PER_EUR
from engine.issuers import bins, countries
from engine.merchant_categories import categories
from engine.simulation.latency_model import latency_draws, stand_in, timed_out, untimed_latency
from engine.simulation.params import MAX_CARDS, SimulationParams
from engine.simulation.rows import NO_DISPUTE, NO_LABEL, NO_SCENARIO, Rows

HOUR_MS = 3_600_000
# the currencies of the world's countries (the first five in their historical code order)
CURRENCIES: tuple[str, ...] = tuple(
    dict.fromkeys(("GBP", "EUR", "USD", "CHF", "CAD", *filter(None, countries().currency)))
)
MAJOR_CURRENCIES = 5  # GBP, EUR, USD, CHF, CAD: the foreign currencies fraud scenarios use
CURRENCY_PER_GBP = np.array([float(RATES_PER_EUR[c] / RATES_PER_EUR["GBP"]) for c in CURRENCIES])
COUNTRY_CURRENCY = np.array(
    [CURRENCIES.index(c) if c else -1 for c in countries().currency], dtype=np.int8
)
TEST_BINS: tuple[str, ...] = bins().bins  # simulated test BIN ranges (engine/data/test_bins.csv)
CARD_LENGTH = 16
MEAN_DAILY_RATE = 1.5
DEVICES_PER_CARD = 0.8
DEVICE_SHARES = (0.93, 0.99)  # cumulative: usual device, second device, then any other

CH = {name: code for code, name in enumerate(CHANNELS)}
CHANNEL_SHARE = np.array([{"pos": 0.35, "contactless": 0.25, "mobile": 0.12,
                           "ecommerce": 0.25, "moto": 0.03}[c] for c in CHANNELS])  # fmt: skip
CHANNEL_CDF = np.cumsum(CHANNEL_SHARE) / CHANNEL_SHARE.sum()
DEVICE_CHANNEL = np.array([c in ("mobile", "ecommerce") for c in CHANNELS])  # sends a device id
CARD_PRESENT = np.array([c in ("pos", "contactless") for c in CHANNELS])
PREFERRED_CHANNEL_SHARE = 0.65  # a card keeps its habit where the payment's class allows it
# payments at a merchant drawn from anywhere (by its category's pull on foreign customers)
# rather than from the card's own country: card-present (travel) and card-not-present
ABROAD_SHARE = np.array([0.05, 0.25])
CNP_SHARE = float(CHANNEL_SHARE[~CARD_PRESENT].sum())  # card-not-present while all is open
FOREIGN_HOME_CURRENCY = 0.5  # card-not-present abroad: priced in the card's currency this often
TYPICAL_CENTS = 3_000.0  # card_mu is the log of a card's typical amount: its spending level
MCC = categories()
ONLINE_CATEGORIES = MCC.channel_share[:, CHANNELS.index("ecommerce")] >= 0.3  # card testing
_PREFIXES = (
    "Acorn", "Birch", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris", "Juniper",
    "Kestrel", "Linden", "Maple", "Nimbus", "Orchid", "Pioneer", "Quartz", "Riverside", "Summit",
    "Tidal", "Umber", "Vista", "Willow", "Yarrow", "Zenith", "Northway", "Eastgate", "Southbank",
)  # fmt: skip
# Relative payment intensity by hour of day (UTC) and by weekday (Monday first).
_NIGHT_AND_MORNING = [0.15, 0.10, 0.07, 0.06, 0.07, 0.12, 0.30, 0.60, 0.90, 1.00, 1.05, 1.15]
_AFTERNOON_AND_EVENING = [1.30, 1.20, 1.05, 1.00, 1.05, 1.20, 1.35, 1.30, 1.10, 0.85, 0.55, 0.30]
DAILY_PROFILE = np.array([*_NIGHT_AND_MORNING, *_AFTERNOON_AND_EVENING])
WEEKLY_PROFILE = np.array([0.95, 0.95, 1.00, 1.00, 1.10, 1.20, 0.90])

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def stream_rng(seed: int, *key: int) -> np.random.Generator:
    """An independent generator for one part of a run (population, an hour's traffic, ...).

    Derived from the run seed with a SeedSequence spawn key, so each part's randomness does not
    depend on how much any other part consumed, nor on chunking.
    """
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def hex_strings(raw: np.ndarray) -> pa.Array:
    """Lower-case hex of each row of a (n, k) uint8 array, as an Arrow string array."""
    n, k = raw.shape
    out = np.empty((n, 2 * k), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    offsets = np.arange(0, 2 * k * (n + 1), 2 * k, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out)])


def _unique_integers(rng: np.random.Generator, high: int, n: int) -> np.ndarray:
    """``n`` distinct integers in [0, high), in draw order."""
    drawn = np.empty(0, dtype=np.int64)
    while True:
        drawn = np.concatenate([drawn, rng.integers(0, high, n + n // 8 + 16)])
        _, first = np.unique(drawn, return_index=True)
        if len(first) >= n:
            return drawn[np.sort(first)[:n]]


def luhn_card_numbers(bin_digits: np.ndarray, account: np.ndarray) -> np.ndarray:
    """16-digit numbers (a (n, 16) digit array): 6-digit BIN + 9-digit account + check digit."""
    n = len(account)
    digits = np.empty((n, CARD_LENGTH), dtype=np.int64)
    digits[:, :6] = bin_digits
    digits[:, 6:15] = (account[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    payload = digits[:, :15].copy()
    doubled = payload[:, 0::2] * 2  # positions that are odd counting from the check digit
    payload[:, 0::2] = np.where(doubled > 9, doubled - 9, doubled)
    digits[:, 15] = (10 - payload.sum(axis=1) % 10) % 10
    return digits


def _tickets(weights: np.ndarray, per_item: float, cap: int = 1_000_000) -> np.ndarray:
    """Item codes repeated in proportion to ``weights``: a uniform index into the result draws
    an item with probability ∝ weight (a table lookup instead of a search per row)."""
    mean = float(weights.mean()) if len(weights) else 0.0
    if not mean > 0:  # no item has weight (e.g. only online merchants, none card-present)
        return np.arange(len(weights), dtype=np.int64)  # then every item is as likely
    reps = np.clip(np.rint(weights / mean * per_item), 1, cap).astype(np.int64)
    return np.repeat(np.arange(len(weights), dtype=np.int64), reps)


@dataclass(frozen=True, slots=True)
class Population:
    """Every profile a run draws from (column-wise, indexed by code)."""

    card_digest: np.ndarray  # (n_cards, 16) uint8: HMAC fingerprint, as the live path stores it
    card_bin: np.ndarray  # int8 index into TEST_BINS
    card_last4: np.ndarray  # int16, 0..9999
    card_country: np.ndarray  # int8 index into countries().codes: the BIN's issuing country
    card_home: np.ndarray  # int8 index into CURRENCIES: the issuing country's currency
    card_mu: np.ndarray  # log of the typical amount in cents (the card's spending level)
    card_channel: np.ndarray  # int8 preferred channel
    card_device: np.ndarray  # int64 usual devices
    card_device2: np.ndarray
    card_tickets: np.ndarray  # draws a card ∝ its daily rate
    merchant_names: pa.Array
    merchant_category: np.ndarray  # int8 index into the MCC table (engine.merchant_categories)
    merchant_country: np.ndarray  # int8 index into countries().codes
    merchant_currency: np.ndarray  # int8 index into CURRENCIES
    merchant_tickets: np.ndarray  # ∝ popularity × card-present share: where cards are present
    fraud_merchant_tickets: np.ndarray  # ∝ popularity × the category's fraud exposure
    online_merchant_tickets: np.ndarray  # card-testing targets
    counterfeit_merchant_tickets: np.ndarray  # ∝ popularity × card-present × exposure × place
    abroad: _Weighted  # by (hour regime, class): ∝ popularity × pull × class share × hours
    domestic: _Weighted  # by (hour regime, country, class): ∝ popularity × class share × hours
    online_by_hour: np.ndarray  # (24,) float64 chance that a payment is card-not-present
    device_names: pa.Array
    n_legit_devices: int  # codes below are customers' devices, the rest fraudsters'
    ip_names: pa.Array  # dotted-quad text of every IP address (card c: home codes 2c, 2c + 1)
    ip_country: np.ndarray  # int16 each address's country: index into geo_table().codes
    ip_pools: dict[str, tuple[int, int]]  # (first code, count) of the travel, vpn, fraud pools

    @property
    def n_cards(self) -> int:
        """Number of cards."""
        return len(self.card_home)

    @property
    def n_fraud_devices(self) -> int:
        """Number of fraudsters' devices."""
        return len(self.device_names) - self.n_legit_devices

    def card_numbers(self, cards: np.ndarray, seed: int) -> list[str]:
        """Full numbers of some cards (tests only: rebuilt from the seed, never stored)."""
        return [_card_number_strings(seed, self.n_cards)[int(c)] for c in cards]


@dataclass(frozen=True, slots=True)
class _Weighted:
    """Weighted items of many groups in one cumulative array: a vectorised draw of one item
    per row from the row's group, with probability ∝ its weight there."""

    items: np.ndarray  # int64 item codes, grouped
    cum: np.ndarray  # float64 cumulative weights over all groups
    start: np.ndarray  # float64 cumulative weight before each group
    total: np.ndarray  # float64 each group's weight (0: empty)
    first: np.ndarray  # int64 each group's first position in items
    last: np.ndarray  # int64 its last position

    def draw(self, group: np.ndarray, u: np.ndarray, fallback: np.ndarray | int) -> np.ndarray:
        """One item per row from its group by uniform ``u``; ``fallback`` where it is empty."""
        at = np.searchsorted(self.cum, self.start[group] + u * self.total[group], side="right")
        at = np.clip(at, self.first[group], self.last[group])  # rounding at a group's edges
        return np.where(self.total[group] > 0, self.items[at], fallback)


def _weighted(
    group: np.ndarray, items: np.ndarray, weights: np.ndarray, n_groups: int
) -> _Weighted:
    """``items`` with positive ``weights``, each in its ``group`` (a group code per entry)."""
    keep = weights > 0
    order = np.argsort(group[keep], kind="stable")
    group, items, weights = group[keep][order], items[keep][order], weights[keep][order]
    cum = np.cumsum(weights)
    count = np.bincount(group, minlength=n_groups)
    first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    total = np.bincount(group, weights=weights, minlength=n_groups)
    start = np.concatenate([[0.0], np.cumsum(total)[:-1]])
    return _Weighted(items.astype(np.int64), cum, start, total, first,
                     np.maximum(first + count - 1, 0))  # fmt: skip


# Hours whose set of open categories is the same share one regime: merchants are weighted by
# the categories' hours once per regime, not once per hour.
_OPEN_SETS, HOUR_REGIME = np.unique(MCC.hourly.T, axis=0, return_inverse=True)
HOUR_REGIME = HOUR_REGIME.ravel()


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many cards, merchants and customers' devices a run's population has."""

    cards: int
    merchants: int
    devices: int


def population_size(params: SimulationParams) -> Sizes:
    """The population of a run: the sizes given in ``params``, else sized from its rows and
    days (the defaults of issue 13 keep the proportions runs always had):

    - cards: :data:`MEAN_DAILY_RATE` (1.5) payments per card and day, an active everyday card
      (an assumption of this model, not a measured figure), so a month-long run gives each card
      some 45 payments of history; at least 50, at most 2,000,000;
    - merchants: one per 5 cards, at least 200 and at most 20,000 (popularity is Pareto, so a
      few merchants take most payments, as on a real acquirer's book; with fewer, one popular
      hotel could dominate a small run);
    - customers' devices: :data:`DEVICES_PER_CARD` (0.8) per card: most cards pay from one
      phone or computer, and households share some (fraudsters' devices are a separate pool,
      one per 200 cards, at least 8)."""
    cards = params.cards
    if cards is None:
        cards = math.ceil(params.rows / (params.days * MEAN_DAILY_RATE))
        cards = int(min(max(cards, 50), MAX_CARDS))
    merchants = params.merchants or int(min(max(cards // 5, 200), 20_000))
    devices = params.devices or max(int(cards * DEVICES_PER_CARD), 1)
    return Sizes(cards=cards, merchants=merchants, devices=devices)


def _card_digits(seed: int, n_cards: int) -> tuple[np.ndarray, np.ndarray]:
    rng = stream_rng(seed, 0, 0)
    bin_code = rng.choice(len(TEST_BINS), n_cards, p=bins().weight).astype(np.int8)
    account = _unique_integers(rng, 10**9, n_cards)
    bin_digits = np.array([[int(d) for d in b] for b in TEST_BINS], dtype=np.int64)
    return bin_code, luhn_card_numbers(bin_digits[bin_code], account)


def _card_number_strings(seed: int, n_cards: int) -> list[str]:
    _, digits = _card_digits(seed, n_cards)
    return [b.decode() for b in (digits + 48).astype(np.uint8).view(f"S{CARD_LENGTH}").ravel()]


def build_population(params: SimulationParams, card_key: bytes) -> Population:
    """Draw every profile of a run from its seed (HMAC once per card)."""
    sizes = population_size(params)
    n_cards, n_merchants = sizes.cards, sizes.merchants
    bin_code, digits = _card_digits(params.seed, n_cards)
    numbers = (digits + 48).astype(np.uint8).view(f"S{CARD_LENGTH}").ravel().tolist()
    digest = fingerprint_digests(numbers, card_key)
    card_digest = np.frombuffer(digest, dtype=np.uint8).reshape(n_cards, 16)
    last4 = (digits[:, 12:] * np.array([1000, 100, 10, 1])).sum(axis=1).astype(np.int16)
    del digits, numbers

    rng = stream_rng(params.seed, 0, 1)
    card_country = bins().country[bin_code]
    mu = np.log(TYPICAL_CENTS) + 0.5 * rng.standard_normal(n_cards)
    channel = np.searchsorted(CHANNEL_CDF, rng.random(n_cards), side="right").astype(np.int8)
    rate = rng.gamma(2.0, MEAN_DAILY_RATE / 2.0, n_cards)
    n_legit_devices = sizes.devices
    n_fraud_devices = max(n_cards // 200, 8)
    # one's own usual device, or a household's (at most two cards: 0.8 devices per card), from
    # a generator of its own; the first row below was the usual device before issue 13, still
    # drawn so that every later profile (merchants, names, ...) keeps its values for a seed
    device = stream_rng(params.seed, 0, 2).permutation(n_cards) % n_legit_devices
    device2 = rng.integers(0, n_legit_devices, (2, n_cards))[1]
    device_raw = _unique_integers(rng, 2**48, n_legit_devices + n_fraud_devices)
    device_names = hex_strings(device_raw.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 2:])

    world = countries()
    category = rng.choice(len(MCC), n_merchants, p=MCC.merchants / MCC.merchants.sum())
    category = category.astype(np.int8)
    # merchants sit where the cards are, and in the countries of the merchants column
    where = np.bincount(card_country, minlength=len(world.codes)) / n_cards
    where = where + world.merchants / world.merchants.sum()
    merchant_country = rng.choice(len(world.codes), n_merchants, p=where / where.sum())
    merchant_country = merchant_country.astype(np.int8)
    popularity = _within_category(rng.pareto(1.2, n_merchants) + 1.0, category)
    names = _merchant_names(rng, category)
    online = ONLINE_CATEGORIES[category]
    if not online.any():
        online[:] = True
    ips, ip_country, pools = _ip_addresses(rng, card_country)
    return Population(
        card_digest=card_digest,
        card_bin=bin_code,
        card_last4=last4,
        card_country=card_country,
        card_home=COUNTRY_CURRENCY[card_country],
        card_mu=mu,
        card_channel=channel,
        card_device=device,
        card_device2=device2,
        card_tickets=_tickets(rate, 4.0, cap=200),
        merchant_names=pa.array(names, pa.string()),
        merchant_category=category,
        merchant_country=merchant_country,
        merchant_currency=COUNTRY_CURRENCY[merchant_country],
        merchant_tickets=_tickets(popularity * _present_share(category), 20.0, cap=20_000),
        fraud_merchant_tickets=_tickets(
            _fraud_weights(popularity * MCC.exposure[category], merchant_country, card_country),
            20.0,
            cap=20_000,
        ),
        online_merchant_tickets=_online_tickets(
            _fraud_weights(popularity, merchant_country, card_country), online
        ),
        counterfeit_merchant_tickets=_tickets(
            _counterfeit_weights(popularity, category, merchant_country), 20.0, cap=20_000
        ),
        abroad=_by_class(
            np.zeros(n_merchants, dtype=np.int64), popularity * MCC.abroad[category], category, 1
        ),
        domestic=_by_class(
            merchant_country.astype(np.int64), popularity, category, len(world.codes)
        ),
        online_by_hour=_online_by_hour(popularity, category),
        device_names=device_names,
        n_legit_devices=n_legit_devices,
        ip_names=geo.ip_texts(ips),
        ip_country=ip_country,
        ip_pools=pools,
    )


def _ip_addresses(
    rng: np.random.Generator, card_country: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[int, int]]]:
    """Every IP address of a run (uint32), their countries, and where each pool starts: two
    home addresses per card (codes ``2 c`` and ``2 c + 1``) in its issuing country, then the
    pools of travellers', VPN exits' and fraudsters' addresses (countries.csv weights)."""
    world = countries()
    table = geo.geo_table()
    to_geo = np.array([table.code_index(code) for code in world.codes], dtype=np.int64)
    n_cards = len(card_country)
    sizes = {"travel": max(n_cards // 10, 64), "vpn": max(n_cards // 50, 32),
             "fraud": max(n_cards // 100, 32)}  # fmt: skip
    wanted = [np.repeat(card_country.astype(np.int64), 2)]
    pools: dict[str, tuple[int, int]] = {}
    first = 2 * n_cards
    for name, size in sizes.items():
        weights = getattr(world, name)
        wanted.append(rng.choice(len(world.codes), size, p=weights / weights.sum()))
        pools[name] = (first, size)
        first += size
    countries_geo = to_geo[np.concatenate(wanted)]
    ips = geo.random_ips(rng, countries_geo)
    return ips, countries_geo.astype(np.int16), pools


def _within_category(popularity: np.ndarray, category: np.ndarray) -> np.ndarray:
    """Popularity rescaled so that each category's merchants together draw the category's share
    of payments (``merchants`` column): a Pareto draw then ranks merchants within a category,
    and one lucky hotel cannot make a run's hotels a tenth of its traffic."""
    share = MCC.merchants / MCC.merchants.sum()
    total = np.bincount(category, weights=popularity, minlength=len(MCC))
    return popularity / total[category] * share[category]


def _fraud_weights(weights: np.ndarray, merchant_country: np.ndarray,
                   card_country: np.ndarray) -> np.ndarray:  # fmt: skip
    """Fraud targets: ``weights`` (popularity × exposure) rescaled so that the fraud's merchant
    countries follow the card base, as genuine traffic's mostly do: a merchant's country alone
    (a merchant abroad, where few local cards pay) does not reveal its fraud."""
    n = len(countries().codes)
    cards = np.bincount(card_country, minlength=n) / len(card_country)
    mass = np.bincount(merchant_country, weights=weights, minlength=n)
    target = np.where(mass > 0, cards, 0.0)
    target = target / target.sum() if target.sum() > 0 else np.full(n, 1.0 / n)
    return weights * (target / np.where(mass > 0, mass, 1.0))[merchant_country]


def _counterfeit_weights(popularity: np.ndarray, category: np.ndarray,
                         merchant_country: np.ndarray) -> np.ndarray:  # fmt: skip
    """Where cloned cards are used: card-present merchants (popularity × card-present share ×
    the category's fraud exposure), more in the countries travellers visit and fraud rings
    work from (countries.csv ``travel`` + ``fraud``), a little everywhere else."""
    world = countries()
    place = world.travel / world.travel.sum() + world.fraud / world.fraud.sum()
    place = place + 0.1 * place.mean()
    exposure = MCC.exposure[category]
    return popularity * _present_share(category) * exposure * place[merchant_country]


def _present_share(category: np.ndarray) -> np.ndarray:
    """Each merchant's category's card-present share of payments (0 for online-only ones)."""
    return MCC.channel_share[:, CARD_PRESENT].sum(axis=1)[category]


def _online_by_hour(popularity: np.ndarray, category: np.ndarray) -> np.ndarray:
    """P(card-not-present) at each hour of day: :data:`CNP_SHARE` when every category is open,
    shifted by how much of each class's merchant weight is open at that hour (at night shops
    close and online orders remain)."""
    present = _present_share(category)
    hours = MCC.hourly[category].T  # (24, merchants)
    cp = _class_hours(hours, popularity * present)
    cnp = _class_hours(hours, popularity * (1 - present))
    both = CNP_SHARE * cnp + (1 - CNP_SHARE) * cp
    return np.divide(CNP_SHARE * cnp, both, out=np.zeros(24), where=both > 0)


def _class_hours(hours: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A class's intensity at each hour: its merchants' hours weighted by ``weight``, all 0
    when the run has none of the class (a few merchants, all online: no card-present traffic)."""
    total = weight.sum()
    return (hours * weight).sum(axis=1) / total if total > 0 else np.zeros(len(hours))


def _by_class(group: np.ndarray, weights: np.ndarray, category: np.ndarray,
              n_groups: int) -> _Weighted:  # fmt: skip
    """Merchants by (hour regime r, ``group`` g, class k) as ``(r n_groups + g) 2 + k`` (class
    0: card-present, 1: not), weighted by ``weights`` × the category's share of the class ×
    its intensity in the regime's hours."""
    present = _present_share(category)
    n, regimes = len(group), len(_OPEN_SETS)
    merchant = np.tile(np.arange(n), 2 * regimes)
    regime = np.repeat(np.arange(regimes), 2 * n)
    cls = np.tile(np.repeat([0, 1], n), regimes)
    share = np.where(cls == 0, present[merchant], 1.0 - present[merchant])
    hours = _OPEN_SETS[regime, category[merchant]]
    codes = (regime * n_groups + group[merchant]) * 2 + cls
    return _weighted(codes, merchant, weights[merchant] * share * hours, regimes * n_groups * 2)


def _online_tickets(popularity: np.ndarray, online: np.ndarray) -> np.ndarray:
    codes = np.flatnonzero(online)
    return codes[_tickets(popularity[codes], 20.0, cap=20_000)]


def _merchant_names(rng: np.random.Generator, category: np.ndarray) -> list[str]:
    prefix = rng.integers(0, len(_PREFIXES), len(category))
    noun = rng.integers(0, 3, len(category))
    seen: dict[str, int] = {}
    names = []
    for p, c, k in zip(prefix.tolist(), category.tolist(), noun.tolist(), strict=True):
        base = f"{_PREFIXES[p]} {MCC.nouns[c][k % len(MCC.nouns[c])]}"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base} {seen[base]}")
    return names


def hour_starts_ms(params: SimulationParams) -> np.ndarray:
    """Start of each simulated hour, ms since the epoch."""
    start_ms = int((params.start - datetime(1970, 1, 1)) / timedelta(milliseconds=1))
    return start_ms + HOUR_MS * np.arange(params.days * 24, dtype=np.int64)


def hour_counts(params: SimulationParams) -> np.ndarray:
    """Rows per simulated hour: multinomial with the daily × weekly intensity profile."""
    hours = params.days * 24
    first = params.start
    offset_h = np.arange(hours)
    hour_of_day = (first.hour + offset_h) % 24
    weekday = (first.weekday() + (first.hour + offset_h) // 24) % 7
    weights = DAILY_PROFILE[hour_of_day] * WEEKLY_PROFILE[weekday]
    return stream_rng(params.seed, 1).multinomial(params.rows, weights / weights.sum())


def amounts_cents(rng: np.random.Generator, pop: Population, card: np.ndarray,
                  merchant: np.ndarray) -> np.ndarray:  # fmt: skip
    """Legitimate amounts at ``merchant``, in its currency (see :func:`_amounts_from`)."""
    z = rng.standard_normal(len(card))
    return _amounts_from(pop, card, merchant, pop.merchant_currency[merchant], z)


def _amounts_from(pop: Population, card: np.ndarray, merchant: np.ndarray,
                  currency: np.ndarray, z: np.ndarray) -> np.ndarray:  # fmt: skip
    """The category's log-normal amount (median in GBP, converted to ``currency`` at the
    reference rates) shifted by the card's spending level."""
    category = pop.merchant_category[merchant]
    log_amount = (
        np.log(MCC.median_cents[category])
        + (pop.card_mu[card] - np.log(TYPICAL_CENTS))
        + MCC.sigma[category] * z
    )
    cents = np.exp(log_amount) * CURRENCY_PER_GBP[currency]
    return np.clip(np.rint(cents), 50, 50_000_000).astype(np.int64)


@dataclass(frozen=True, slots=True)
class _HourDraws:
    """The random draws of one hour's legitimate payments, in the order they are drawn."""

    rng: np.random.Generator  # kept for the hour's last draw (stand-in latencies), if any
    offset_ms: np.ndarray  # unsorted offsets within the hour
    card_ticket: np.ndarray
    where: np.ndarray  # (2, n): abroad?, which merchant
    u: np.ndarray  # (4, n): channel, habit, device and card-not-present uniforms
    stranger: np.ndarray
    home_u: np.ndarray
    amount_z: np.ndarray
    draw: np.ndarray
    latency: tuple[np.ndarray, np.ndarray, np.ndarray]


def _hour_draws(rng: np.random.Generator, pop: Population, count: int) -> _HourDraws:
    return _HourDraws(
        rng=rng,
        offset_ms=rng.integers(0, HOUR_MS, count),
        card_ticket=rng.integers(0, len(pop.card_tickets), count),
        where=rng.random((2, count)),
        u=rng.random((4, count)),  # one call: the same numbers as four in a row
        stranger=rng.integers(0, pop.n_legit_devices, count),  # a borrowed or new device
        home_u=rng.random(count),
        amount_z=rng.standard_normal(count),
        draw=rng.random(count),
        latency=latency_draws(rng, count),
    )


def genuine_merchants(pop: Population, card: np.ndarray, online: np.ndarray, where: np.ndarray,
                      hour: np.ndarray) -> np.ndarray:  # fmt: skip
    """Each payment's merchant for its class (``online``: card-not-present) and hour of day:
    domestic to the card, or anywhere (:data:`ABROAD_SHARE` of the class), weighted by the
    categories' intensity at that hour."""
    cls = online.astype(np.int64)
    regime = HOUR_REGIME[hour].astype(np.int64)
    n_countries = len(countries().codes)
    anywhere = pop.abroad.draw(regime * 2 + cls, where[1], pop.merchant_tickets[0])
    home_group = (regime * n_countries + pop.card_country[card]) * 2 + cls
    home = pop.domestic.draw(home_group, where[1], anywhere)  # none of the class at home
    return np.where(where[0] < ABROAD_SHARE[cls], anywhere, home)


def _online(pop: Population, card: np.ndarray, u: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """Whether each payment is card-not-present: a card whose habit is card-not-present keeps
    it (:data:`PREFERRED_CHANNEL_SHARE`); the others go online often enough that the hour's
    share is ``online_by_hour``."""
    habit = ~CARD_PRESENT[pop.card_channel[card]] & (u[1] < PREFERRED_CHANNEL_SHARE)
    kept = PREFERRED_CHANNEL_SHARE * CNP_SHARE  # the expected share of habitual online payments
    rest = np.clip((pop.online_by_hour[hour] - kept) / (1.0 - kept), 0.0, 1.0)
    return habit | (u[3] < rest)


def _class_cdf() -> np.ndarray:
    """(categories, 2, channels): each category's cumulative channel mix within a class (0:
    card-present, 1: not); its whole mix where it has no channel of the class."""
    in_class = np.stack([CARD_PRESENT, ~CARD_PRESENT])  # (2, channels)
    share = MCC.channel_share[:, None, :] * in_class[None, :, :]
    total = share.sum(axis=2, keepdims=True)
    share = np.where(total > 0, share, MCC.channel_share[:, None, :])
    return np.cumsum(share, axis=2) / share.sum(axis=2, keepdims=True)


CLASS_CDF = _class_cdf()


def _channels(pop: Population, card: np.ndarray, merchant: np.ndarray, online: np.ndarray,
              u: np.ndarray) -> np.ndarray:  # fmt: skip
    """The card's preferred channel (with probability :data:`PREFERRED_CHANNEL_SHARE`) when it
    is of the payment's class and the merchant's category accepts it, else one from the
    category's channel mix within the class."""
    category = pop.merchant_category[merchant]
    cdf = CLASS_CDF[category, online.astype(np.int64)]  # (n, channels)
    any_channel = (u[0][:, None] >= cdf[:, :-1]).sum(axis=1)
    preferred = pop.card_channel[card]
    habit = (u[1] < PREFERRED_CHANNEL_SHARE) & (CARD_PRESENT[preferred] != online)
    habit &= MCC.accepts[category, preferred]
    return np.where(habit, preferred, any_channel).astype(np.int8)


def legit_hours(
    rngs: list[np.random.Generator], pop: Population, counts: list[int], t0_ms: list[int]
) -> Rows:
    """Legitimate payments of consecutive hours, in event order: hour ``i`` has ``counts[i]``
    rows from generator ``rngs[i]``, starting at ``t0_ms[i]``.

    Each hour draws its numbers from its own generator, as if it were generated alone; the
    arithmetic on them runs once for all the hours (a run's cost then follows its rows, not its
    simulated hours). Element-wise numpy arithmetic gives the same values either way."""
    hours = [_hour_draws(rng, pop, n) for rng, n in zip(rngs, counts, strict=True)]

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(h, name) for h in hours])

    starts = np.asarray(t0_ms, dtype=np.int64)
    # hours are disjoint and in order: one sort of all offsets sorts each hour's
    t_ms = np.sort(np.repeat(starts, counts) + joined("offset_ms"))
    hour_of_day = np.repeat((starts // HOUR_MS) % 24, counts)
    card = pop.card_tickets[joined("card_ticket")]
    u = np.concatenate([h.u for h in hours], axis=1)
    online = _online(pop, card, u, hour_of_day)
    where = np.concatenate([h.where for h in hours], axis=1)
    merchant = genuine_merchants(pop, card, online, where, hour_of_day)
    channel = _channels(pop, card, merchant, online, u)
    device = np.where(
        u[2] < DEVICE_SHARES[0],
        pop.card_device[card],
        np.where(u[2] < DEVICE_SHARES[1], pop.card_device2[card], joined("stranger")),
    )
    device = np.where(DEVICE_CHANNEL[channel], device, -1)
    # the merchant's currency; card-not-present abroad, often priced in the card's own
    foreign = pop.merchant_country[merchant] != pop.card_country[card]
    home_priced = foreign & ~CARD_PRESENT[channel] & (joined("home_u") < FOREIGN_HOME_CURRENCY)
    currency = np.where(home_priced, pop.card_home[card], pop.merchant_currency[merchant])
    currency = currency.astype(np.int8)
    count = len(t_ms)
    return Rows(
        t_ms=t_ms,
        card=card,
        merchant=merchant.astype(np.int32),
        channel=channel,
        device=device,
        currency=currency,
        amount_cents=_amounts_from(pop, card, merchant, currency, joined("amount_z")),
        draw=joined("draw"),
        latency_ms=_hours_latency(hours, counts, CARD_PRESENT[channel]),
        scenario=np.full(count, NO_SCENARIO, dtype=np.int8),
        label_at_ms=np.full(count, NO_LABEL, dtype=np.int64),
        dispute=np.full(count, NO_DISPUTE, dtype=np.int8),
    )


def _hours_latency(
    hours: list[_HourDraws], counts: list[int], card_present: np.ndarray
) -> np.ndarray:
    """:func:`authorization_latency` of each hour, computed for all hours at once."""
    first = np.cumsum([0, *counts])
    z = np.concatenate([h.latency[0] for h in hours], axis=1)
    slow = np.concatenate([h.latency[1] + at for h, at in zip(hours, first.tolist(), strict=False)])
    tail = np.concatenate([h.latency[2] for h in hours])
    total = untimed_latency(card_present, z, slow, tail)
    out = timed_out(total)
    if len(out):  # rare: each hour draws its stand-in latencies last, in row order
        hour = np.searchsorted(first, out, side="right") - 1
        for h in np.unique(hour).tolist():
            mine = out[hour == h]
            total[mine] = stand_in(hours[h].rng, len(mine))
    return np.round(total, 3)
