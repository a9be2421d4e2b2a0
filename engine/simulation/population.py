"""The simulated world: cards, merchants and devices with profiles, and legitimate traffic.

* **Cards** are Luhn-valid 16-digit numbers from published *test* BIN ranges (never live-looking
  BINs), each with a home currency, a typical amount and its spread (log-normal), a daily payment
  rate (gamma, mean 1.5/day), a preferred channel and one or two usual devices. Full numbers only
  exist while their keyed fingerprint (HMAC, once per card) is computed; rows refer to cards by
  code and are dictionary-encoded at write time.
* **Merchants** have a category (which scales amounts) and a popularity (Pareto).
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

from engine.cards import fingerprint_digests
from engine.features import CHANNELS
from engine.simulation.latency_model import latency_draws, stand_in, timed_out, untimed_latency
from engine.simulation.params import MAX_CARDS, SimulationParams
from engine.simulation.rows import NO_DISPUTE, NO_LABEL, NO_SCENARIO, Rows

HOUR_MS = 3_600_000
CURRENCIES: tuple[str, ...] = ("GBP", "EUR", "USD", "CHF", "CAD")
HOME_CURRENCY_SHARE = np.array([0.5, 0.3, 0.2, 0.0, 0.0])
# Published test ranges (Visa, Mastercard test BINs used by payment sandboxes).
TEST_BINS: tuple[str, ...] = ("400000", "401288", "411111", "424242", "222300", "510510", "555555")
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
PREFERRED_CHANNEL_SHARE = 0.65
HOME_CURRENCY_KEEP = 0.97

# category: (amount multiplier, fraud tilt, nouns)
CATEGORIES: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "grocery": (0.8, 1.0, ("Grocers", "Market", "Foods")),
    "fuel": (1.2, 1.0, ("Fuel", "Petrol", "Service Station")),
    "restaurant": (0.9, 1.0, ("Kitchen", "Bistro", "Diner")),
    "fashion": (1.6, 1.2, ("Outfitters", "Boutique", "Apparel")),
    "travel": (4.0, 1.5, ("Travel", "Airways", "Hotels")),
    "electronics": (3.0, 1.5, ("Electronics", "Tech", "Computers")),
    "digital": (0.5, 1.3, ("Games", "Apps", "Streaming")),
    "jewelry": (5.0, 1.5, ("Jewellers", "Gold", "Watches")),
}
CATEGORY_NAMES = tuple(CATEGORIES)
CATEGORY_AMOUNT = np.array([v[0] for v in CATEGORIES.values()])
CATEGORY_FRAUD_TILT = np.array([v[1] for v in CATEGORIES.values()])
ONLINE_CATEGORIES = np.array([c in ("digital", "electronics", "fashion") for c in CATEGORIES])
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
    reps = np.clip(np.rint(weights / weights.mean() * per_item), 1, cap).astype(np.int64)
    return np.repeat(np.arange(len(weights), dtype=np.int64), reps)


@dataclass(frozen=True, slots=True)
class Population:
    """Every profile a run draws from (column-wise, indexed by code)."""

    card_digest: np.ndarray  # (n_cards, 16) uint8: HMAC fingerprint, as the live path stores it
    card_bin: np.ndarray  # int8 index into TEST_BINS
    card_last4: np.ndarray  # int16, 0..9999
    card_home: np.ndarray  # int8 index into CURRENCIES
    card_mu: np.ndarray  # log of the typical amount in cents
    card_sigma: np.ndarray
    card_channel: np.ndarray  # int8 preferred channel
    card_device: np.ndarray  # int64 usual devices
    card_device2: np.ndarray
    card_tickets: np.ndarray  # draws a card ∝ its daily rate
    merchant_names: pa.Array
    merchant_category: np.ndarray  # int8 index into CATEGORY_NAMES
    merchant_tickets: np.ndarray  # draws a merchant ∝ popularity
    fraud_merchant_tickets: np.ndarray  # ∝ popularity × the category's fraud tilt
    online_merchant_tickets: np.ndarray  # card-testing targets
    device_names: pa.Array
    n_legit_devices: int  # codes below are customers' devices, the rest fraudsters'

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
    - merchants: one per 25 cards, at least 40 and at most 20,000 (popularity is Pareto, so a
      few merchants take most payments, as on a real acquirer's book);
    - customers' devices: :data:`DEVICES_PER_CARD` (0.8) per card: most cards pay from one
      phone or computer, and households share some (fraudsters' devices are a separate pool,
      one per 200 cards, at least 8)."""
    cards = params.cards
    if cards is None:
        cards = math.ceil(params.rows / (params.days * MEAN_DAILY_RATE))
        cards = int(min(max(cards, 50), MAX_CARDS))
    merchants = params.merchants or int(min(max(cards // 25, 40), 20_000))
    devices = params.devices or max(int(cards * DEVICES_PER_CARD), 1)
    return Sizes(cards=cards, merchants=merchants, devices=devices)


def _card_digits(seed: int, n_cards: int) -> tuple[np.ndarray, np.ndarray]:
    rng = stream_rng(seed, 0, 0)
    bin_code = rng.integers(0, len(TEST_BINS), n_cards).astype(np.int8)
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
    home = rng.choice(len(CURRENCIES), n_cards, p=HOME_CURRENCY_SHARE).astype(np.int8)
    mu = np.log(3_000.0) + 0.5 * rng.standard_normal(n_cards)
    sigma = rng.uniform(0.3, 0.8, n_cards)
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

    category = rng.integers(0, len(CATEGORIES), n_merchants).astype(np.int8)
    popularity = rng.pareto(1.2, n_merchants) + 1.0
    names = _merchant_names(rng, category)
    tilt = CATEGORY_FRAUD_TILT[category]
    online = ONLINE_CATEGORIES[category]
    if not online.any():
        online[:] = True
    return Population(
        card_digest=card_digest,
        card_bin=bin_code,
        card_last4=last4,
        card_home=home,
        card_mu=mu,
        card_sigma=sigma,
        card_channel=channel,
        card_device=device,
        card_device2=device2,
        card_tickets=_tickets(rate, 4.0, cap=200),
        merchant_names=pa.array(names, pa.string()),
        merchant_category=category,
        merchant_tickets=_tickets(popularity, 20.0, cap=20_000),
        fraud_merchant_tickets=_tickets(popularity * tilt, 20.0, cap=20_000),
        online_merchant_tickets=_online_tickets(popularity, online),
        device_names=device_names,
        n_legit_devices=n_legit_devices,
    )


def _online_tickets(popularity: np.ndarray, online: np.ndarray) -> np.ndarray:
    codes = np.flatnonzero(online)
    return codes[_tickets(popularity[codes], 20.0, cap=20_000)]


def _merchant_names(rng: np.random.Generator, category: np.ndarray) -> list[str]:
    prefix = rng.integers(0, len(_PREFIXES), len(category))
    noun = rng.integers(0, 3, len(category))
    seen: dict[str, int] = {}
    names = []
    for p, c, k in zip(prefix.tolist(), category.tolist(), noun.tolist(), strict=True):
        base = f"{_PREFIXES[p]} {CATEGORIES[CATEGORY_NAMES[c]][2][k]}"
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
    """Legitimate amounts: the card's log-normal profile scaled by the merchant's category."""
    return _amounts_from(pop, card, merchant, rng.standard_normal(len(card)))


def _amounts_from(pop: Population, card: np.ndarray, merchant: np.ndarray,
                  z: np.ndarray) -> np.ndarray:  # fmt: skip
    log_amount = pop.card_mu[card] + pop.card_sigma[card] * z
    cents = np.exp(log_amount) * CATEGORY_AMOUNT[pop.merchant_category[merchant]]
    return np.clip(np.rint(cents), 50, 50_000_000).astype(np.int64)


@dataclass(frozen=True, slots=True)
class _HourDraws:
    """The random draws of one hour's legitimate payments, in the order they are drawn."""

    rng: np.random.Generator  # kept for the hour's last draw (stand-in latencies), if any
    offset_ms: np.ndarray  # unsorted offsets within the hour
    card_ticket: np.ndarray
    merchant_ticket: np.ndarray
    u: np.ndarray  # (3, n): channel, preferred-channel and device uniforms
    stranger: np.ndarray
    abroad: np.ndarray
    home_u: np.ndarray
    amount_z: np.ndarray
    draw: np.ndarray
    latency: tuple[np.ndarray, np.ndarray, np.ndarray]


def _hour_draws(rng: np.random.Generator, pop: Population, count: int) -> _HourDraws:
    return _HourDraws(
        rng=rng,
        offset_ms=rng.integers(0, HOUR_MS, count),
        card_ticket=rng.integers(0, len(pop.card_tickets), count),
        merchant_ticket=rng.integers(0, len(pop.merchant_tickets), count),
        u=rng.random((3, count)),  # one call: the same numbers as three in a row
        stranger=rng.integers(0, pop.n_legit_devices, count),  # a borrowed or new device
        abroad=rng.integers(0, len(CURRENCIES), count),
        home_u=rng.random(count),
        amount_z=rng.standard_normal(count),
        draw=rng.random(count),
        latency=latency_draws(rng, count),
    )


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

    # hours are disjoint and in order: one sort of all offsets sorts each hour's
    t_ms = np.sort(np.repeat(np.asarray(t0_ms, dtype=np.int64), counts) + joined("offset_ms"))
    card = pop.card_tickets[joined("card_ticket")]
    merchant = pop.merchant_tickets[joined("merchant_ticket")]
    u = np.concatenate([h.u for h in hours], axis=1)
    any_channel = np.searchsorted(CHANNEL_CDF, u[0], side="right")
    channel = np.where(u[1] < PREFERRED_CHANNEL_SHARE, pop.card_channel[card], any_channel).astype(
        np.int8
    )
    device = np.where(
        u[2] < DEVICE_SHARES[0],
        pop.card_device[card],
        np.where(u[2] < DEVICE_SHARES[1], pop.card_device2[card], joined("stranger")),
    )
    device = np.where(DEVICE_CHANNEL[channel], device, -1)
    currency = np.where(
        joined("home_u") < HOME_CURRENCY_KEEP, pop.card_home[card], joined("abroad")
    ).astype(np.int8)
    count = len(t_ms)
    return Rows(
        t_ms=t_ms,
        card=card,
        merchant=merchant.astype(np.int32),
        channel=channel,
        device=device,
        currency=currency,
        amount_cents=_amounts_from(pop, card, merchant, joined("amount_z")),
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
