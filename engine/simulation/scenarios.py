"""The labelled scenarios, their rates, and the difficulty knobs that blur and move them.

Each scenario produces *episodes*; an episode starts at a uniform time within a simulated hour
and its rows may run into later hours. Every row of a scenario carries ``scenario`` (its label);
whether and when a dispute reveals it is drawn later (:mod:`.outcomes`).

1. ``stolen_card`` — a spree on a stolen card: 2 + Poisson(3) payments, about 8 minutes apart,
   of 300–2,500 (log-uniform) at high-value merchants, on a fraudster's device the card has never
   used, mostly ecommerce, sometimes in a foreign currency (an episode *abroad*: the seam where
   merchant and IP countries join it).
2. ``card_testing`` — one fraudster device tries 10 + Poisson(15) different cards about every
   20 seconds at one online merchant, with tiny amounts (0.01–2.00) in one currency.
3. ``account_takeover`` — a known card suddenly appears on a new device and on a channel it does
   not usually use; 3 + Poisson(3) payments about 45 minutes apart with amounts growing
   geometrically (×1.3–1.8 each) from above the card's typical amount.
4. ``compromised_merchant`` — a merchant is breached for a window (12 h, or a sixth of a short
   run); 5 + Poisson(10) cards pay there genuinely during the window (these visits are *not*
   fraud), and each is defrauded 1 + Poisson(1) times elsewhere, card-not-present, from 2 hours
   to 5 days later (a third of a short run).
5. ``counterfeit`` — a card-present merchant carries a skimmer for a window (as a breached
   merchant's: the visits are genuine); each skimmed card is cloned and used card-present (pos)
   at merchants in another country than its issuing country, 1 + Poisson(2) payments about 40
   minutes apart, from 6 hours to 5 days later (docs/world.md).
6. ``friendly_fraud`` — not fraud: a genuine card-not-present payment (the cardholder's own card,
   device, channel and amount) that its cardholder later disputes; chosen among the genuine rows
   (:func:`.outcomes.mark_friendly_fraud`), not made by an episode.

**Class overlap** (``overlap``): that share of fraud episodes mimics the card's own behaviour.
A blended stolen-card spree or account takeover uses the card's usual device and channel (a
spoofed fingerprint, malware on the victim's own device), amounts from the card's own profile at
ordinary merchants, in its home currency, five (stolen card) or four (takeover) times slower; a
blended card-testing run sends each card from another customer's device (a botnet of home
devices), with amounts of 1.00–30.00, six times slower; a blended compromised-merchant victim is
defrauded like a blended spree (the visits stay as they are).

**Drift** (``drift`` d): over the run the fraud moves. The mix at run fraction x is
(1 − x)·m + x·m_end, where m_end moves weight from the scenarios a static amount rule catches to
those it misses (stolen_card and card_testing × (1 − d/2), account_takeover and
compromised_merchant × (1 + d)); and a share d·x of stolen-card and account-takeover episodes keep
their amounts just under 500, the default policy's high-amount threshold (400–499.99).

**Adaptation** (``adaptation``): card testers and stolen-card sprees learn from the run's own
decisions (:mod:`.adaptive`): adapting episodes keep amounts under the threshold that declined
their ring, slow down and switch to fresh devices (``Context.tactics``, set at each review).

Rates: with ``fraud_rate`` f, scenario share s_h in hour h and E fraud rows per episode, an hour
with c_h planned rows starts Poisson(f·s_h·c_h/E · W/W_eligible) episodes, where W = Σ c_h·s_h
and only hours early enough for the episode to fit before the run ends are eligible
(W_eligible), so the expected share of fraud rows is f and scenario s makes W/Σ c_h of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.simulation.adaptive import LEARNING_DAYS, NAIVE, UNDER, Tactics
from engine.simulation.latency_model import authorization_latency
from engine.simulation.params import LABELLED_SCENARIOS, SCENARIOS, SimulationParams
from engine.simulation.population import (
    CARD_PRESENT,
    CH,
    CURRENCY_PER_GBP,
    DEVICE_CHANNEL,
    HOUR_MS,
    MAJOR_CURRENCIES,
    Population,
    amounts_cents,
    genuine_merchants,
)
from engine.simulation.rows import NO_DISPUTE, NO_LABEL, NO_SCENARIO, Rows

MINUTE_MS = 60_000
DAY_MS = 24 * HOUR_MS
CODE = {name: code for code, name in enumerate(LABELLED_SCENARIOS)}
NEAR_THRESHOLD = (400.0, 499.99)  # just under the default policy's 500 high-amount rule
# drift: the end mix's weight factor per scenario, as (constant, × d)
_DRIFT_TILT = {"stolen_card": (1.0, -0.5), "card_testing": (1.0, -0.5),
               "account_takeover": (1.0, 1.0), "compromised_merchant": (1.0, 1.0),
               "counterfeit": (1.0, 0.0)}  # fmt: skip
_ABROAD_TRIES = 12  # candidate merchants per counterfeit payment, the first abroad is taken


@dataclass(frozen=True, slots=True)
class Context:
    """Run-level facts the episode generators need."""

    run_start_ms: int
    run_end_ms: int
    breach_window_ms: int  # compromised merchant: how long the breach lasts
    max_delay_ms: int  # compromised merchant: latest first fraud after a visit
    overlap: float  # share of fraud episodes that mimic the card's own behaviour
    drift: float  # how far behaviour has moved by the end of the run
    adaptation: float = 0.0  # share of adaptive scenarios' episodes that follow their tactics
    tactics: dict[str, Tactics] = field(default_factory=dict)  # from the last review

    def adapting(
        self, rng: np.random.Generator, name: str, start: np.ndarray
    ) -> tuple[np.ndarray, Tactics]:
        """Which episodes of scenario ``name`` (by start time) follow the ring's tactics, and
        the tactics: ``adaptation`` · (1 − exp(−t / LEARNING_DAYS)) of them t days into the run
        (no draw while the ring has learned nothing or nobody adapts)."""
        tactics = self.tactics.get(name, NAIVE)
        if self.adaptation <= 0 or tactics == NAIVE:
            return np.zeros(len(start), dtype=bool), tactics
        days = (start - self.run_start_ms) / DAY_MS
        share = self.adaptation * -np.expm1(-days / LEARNING_DAYS)
        return rng.random(len(start)) < share, tactics

    def drifted(self, rng: np.random.Generator, start: np.ndarray) -> np.ndarray:
        """Which episodes (by start time) behave as drift has moved them: d·x of them at run
        fraction x."""
        if self.drift <= 0:
            return np.zeros(len(start), dtype=bool)
        x = (start - self.run_start_ms) / max(self.run_end_ms - self.run_start_ms, 1)
        return rng.random(len(start)) < self.drift * x

    def blended(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """Which of ``k`` episodes mimic the card's own behaviour."""
        if self.overlap <= 0:
            return np.zeros(k, dtype=bool)
        return rng.random(k) < self.overlap


def context(params: SimulationParams, run_start_ms: int) -> Context:
    """Breach window and fraud delay (scaled down for short runs), and the difficulty knobs."""
    duration = params.days * DAY_MS
    knobs = params.knobs()
    return Context(
        run_start_ms=run_start_ms,
        run_end_ms=run_start_ms + duration,
        breach_window_ms=min(12 * HOUR_MS, duration // 6),
        max_delay_ms=max(min(5 * DAY_MS, duration // 3), 3 * HOUR_MS),
        overlap=knobs.overlap,
        drift=knobs.drift,
        adaptation=knobs.adaptation,
    )


def mean_fraud_rows(name: str) -> float:
    """Expected fraud rows per episode."""
    return {"stolen_card": 5.0, "card_testing": 25.0, "account_takeover": 6.0,
            "compromised_merchant": 15.0 * 2.0, "counterfeit": 15.0 * 3.0}[name]  # fmt: skip


def span_ms(name: str, ctx: Context) -> int:
    """How long after its start an episode's rows (nearly all) fall."""
    return {
        "stolen_card": 6 * HOUR_MS,
        "card_testing": 2 * HOUR_MS,
        "account_takeover": DAY_MS,
        "compromised_merchant": ctx.breach_window_ms + ctx.max_delay_ms + 6 * HOUR_MS,
        "counterfeit": ctx.breach_window_ms + ctx.max_delay_ms + 12 * HOUR_MS,
    }[name]


def mix_over_run(params: SimulationParams, x: np.ndarray) -> np.ndarray:
    """The fraud scenarios' shares at run fractions ``x``: shape (len(x), len(SCENARIOS)),
    each row summing to 1 (or 0 when no weight is positive). Without drift, the mix itself."""
    shares = np.array([params.mix_shares()[name] for name in SCENARIOS])
    d = params.knobs().drift
    end = shares * np.array([a + b * d for a, b in (_DRIFT_TILT[n] for n in SCENARIOS)])
    if end.sum() > 0:
        end = end / end.sum()
    mix = (1.0 - x)[:, None] * shares + x[:, None] * end
    total = mix.sum(axis=1, keepdims=True)
    return np.divide(mix, total, out=np.zeros_like(mix), where=total > 0)


def episode_rates(
    params: SimulationParams, counts: np.ndarray, hour_starts: np.ndarray, ctx: Context
) -> np.ndarray:
    """Expected episodes starting in each hour, per fraud scenario: shape (hours, SCENARIOS)."""
    rates = np.zeros((len(counts), len(SCENARIOS)))
    x = (hour_starts - ctx.run_start_ms) / max(ctx.run_end_ms - ctx.run_start_ms, 1)
    mix = mix_over_run(params, x)
    for code, name in enumerate(SCENARIOS):
        wanted = counts * mix[:, code]  # rows of this scenario wanted per hour, / fraud_rate
        if params.fraud_rate <= 0 or wanted.sum() <= 0:
            continue
        eligible = hour_starts + HOUR_MS + span_ms(name, ctx) <= ctx.run_end_ms
        if not eligible.any():  # run too short for the whole span: start in the first hour
            eligible = np.zeros(len(counts), dtype=bool)
            eligible[0] = True
        in_reach = wanted[eligible].sum()
        if in_reach == 0:
            continue
        scale = params.fraud_rate / mean_fraud_rows(name) * wanted.sum() / in_reach
        rates[eligible, code] = wanted[eligible] * scale
    return rates


def _expand(
    rng: np.random.Generator, start: np.ndarray, sizes: np.ndarray, gap_ms: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row episode index and event time: ``sizes`` rows per episode, exponential gaps of
    mean ``gap_ms`` (per episode)."""
    episode = np.repeat(np.arange(len(sizes)), sizes)
    gaps = rng.exponential(1.0, len(episode)) * gap_ms[episode]
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    gaps[first[sizes > 0]] = 0.0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[first[sizes > 0]], sizes[sizes > 0])
    rank = np.arange(len(episode)) - np.repeat(first, sizes)
    return episode, start[episode] + elapsed.astype(np.int64), rank


def _pace(blended: np.ndarray, gap_ms: float, slower: float) -> np.ndarray:
    """Mean gap per episode: ``slower`` times longer for the blended ones."""
    return np.where(blended, gap_ms * slower, gap_ms)


def _fraud_rows(
    rng: np.random.Generator,
    code: int,
    t_ms: np.ndarray,
    card: np.ndarray,
    merchant: np.ndarray,
    channel: np.ndarray,
    device: np.ndarray,
    currency: np.ndarray,
    amount_cents: np.ndarray,
) -> Rows:
    n = len(t_ms)
    draw = rng.random(n)
    latency = authorization_latency(rng, CARD_PRESENT[channel])
    return Rows(
        t_ms=t_ms.astype(np.int64),
        card=card.astype(np.int64),
        merchant=merchant.astype(np.int32),
        channel=channel.astype(np.int8),
        device=device.astype(np.int64),
        currency=currency.astype(np.int8),
        amount_cents=amount_cents.astype(np.int64),
        draw=draw,
        latency_ms=latency,
        scenario=np.full(n, code, dtype=np.int8),
        label_at_ms=np.full(n, NO_LABEL, dtype=np.int64),  # drawn by outcomes.observe_disputes
        dispute=np.full(n, NO_DISPUTE, dtype=np.int8),
    )


def _log_uniform_cents(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return np.rint(np.exp(rng.uniform(np.log(low * 100), np.log(high * 100), n))).astype(np.int64)


def _pick(rng: np.random.Generator, tickets: np.ndarray, n: int) -> np.ndarray:
    return tickets[rng.integers(0, len(tickets), n)]


def _fraud_device(rng: np.random.Generator, pop: Population, n: int) -> np.ndarray:
    return pop.n_legit_devices + rng.integers(0, pop.n_fraud_devices, n)


def _own_channel(pop: Population, card: np.ndarray) -> np.ndarray:
    """The card's preferred channel where it sends a device id, else ecommerce."""
    usual = pop.card_channel[card]
    return np.where(DEVICE_CHANNEL[usual], usual, CH["ecommerce"])


def _mimicked(
    rng: np.random.Generator,
    pop: Population,
    blended: np.ndarray,
    card: np.ndarray,
    t_ms: np.ndarray,
    merchant: np.ndarray,
    currency: np.ndarray,
    amount: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``merchant``, ``currency`` and ``amount`` with the blended rows' replaced as the card's
    own card-not-present payments would have them: a merchant drawn as genuine traffic draws one
    at that hour (mostly in the card's country), its currency, and an amount from the card's
    profile in that currency (drawn for those rows only)."""
    at = np.flatnonzero(blended)
    if not len(at):
        return merchant, currency, amount
    merchant, currency, amount = merchant.copy(), currency.copy(), amount.copy()
    hour = (t_ms[at] // HOUR_MS) % 24
    online = np.ones(len(at), dtype=bool)
    merchant[at] = genuine_merchants(pop, card[at], online, rng.random((2, len(at))), hour)
    currency[at] = pop.merchant_currency[merchant[at]]
    amount[at] = amounts_cents(rng, pop, card[at], merchant[at])
    return merchant, currency, amount


def _near_threshold(
    rng: np.random.Generator, drifted: np.ndarray, amount: np.ndarray, cap: bool = False
) -> np.ndarray:
    """``amount`` with the drifted rows' just under the high-amount threshold (``cap``: only
    where they were above it)."""
    at = np.flatnonzero(drifted)
    if not len(at):
        return amount
    amount = amount.copy()
    under = _log_uniform_cents(rng, *NEAR_THRESHOLD, len(at))
    amount[at] = np.minimum(amount[at], under) if cap else under
    return amount


def _adapted_amounts(
    rng: np.random.Generator, adapt: np.ndarray, tactics: Tactics, amount: np.ndarray
) -> np.ndarray:
    """``amount`` with the adapting rows at or above the ring's threshold cut to just under
    it (:data:`.adaptive.UNDER` of it)."""
    if not np.isfinite(tactics.cap_cents):
        return amount
    over = np.flatnonzero(adapt & (amount >= tactics.cap_cents))
    if not len(over):
        return amount
    amount = amount.copy()
    share = rng.uniform(*UNDER, len(over))
    amount[over] = np.maximum(np.floor(tactics.cap_cents * share), 1).astype(np.int64)
    return amount


def _fresh_devices(
    rng: np.random.Generator, pop: Population, adapt: np.ndarray, tactics: Tactics,
    device: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """``device`` with the adapting rows' replaced by fingerprints the ring has not used (an
    emulator spoofing ordinary customers' phones), once declines taught it to."""
    at = np.flatnonzero(adapt & (device >= 0)) if tactics.fresh_devices else []
    if not len(at):
        return device
    device = device.copy()
    device[at] = rng.integers(0, pop.n_legit_devices, len(at))
    return device


def _abroad(rng: np.random.Generator, k: int, share: float) -> np.ndarray:
    """Which of ``k`` episodes pay in a foreign currency (their merchants and IP addresses are
    abroad more often than genuine ones anyway: docs/world.md)."""
    return rng.random(k) < share


def stolen_card(rng: np.random.Generator, pop: Population, start: np.ndarray, ctx: Context) -> Rows:
    """Scenario 1: high amounts on a new device, in a quick spree."""
    k = len(start)
    card = _pick(rng, pop.card_tickets, k)
    blended, drifted = ctx.blended(rng, k), ctx.drifted(rng, start)
    device = np.where(blended, pop.card_device[card], _fraud_device(rng, pop, k))
    channel = np.where(rng.random(k) < 0.8, CH["ecommerce"], CH["mobile"])
    channel = np.where(blended, _own_channel(pop, card), channel)
    foreign = rng.integers(0, MAJOR_CURRENCIES, k)
    currency = np.where(_abroad(rng, k, 0.4) & ~blended, foreign, pop.card_home[card])
    sizes = 2 + rng.poisson(3.0, k)
    adapt, tactics = ctx.adapting(rng, "stolen_card", start)
    gap = _pace(blended, 8 * MINUTE_MS, 5.0) * np.where(adapt, tactics.slower, 1.0)
    ep, t_ms, _ = _expand(rng, start, sizes, gap)
    n = len(ep)
    merchant = _pick(rng, pop.fraud_merchant_tickets, n)
    amount = _near_threshold(rng, drifted[ep], _log_uniform_cents(rng, 300, 2_500, n))
    merchant, currency, amount = _mimicked(rng, pop, blended[ep], card[ep], t_ms, merchant,
                                           currency[ep], amount)  # fmt: skip
    amount = _adapted_amounts(rng, adapt[ep], tactics, amount)
    device = _fresh_devices(rng, pop, adapt[ep], tactics, device[ep])  # one per payment
    return _fraud_rows(rng, CODE["stolen_card"], t_ms, card[ep], merchant, channel[ep],
                       device, currency, amount)  # fmt: skip


def card_testing(
    rng: np.random.Generator, pop: Population, start: np.ndarray, ctx: Context
) -> Rows:
    """Scenario 2: one device, many cards, tiny amounts, seconds apart."""
    k = len(start)
    blended = ctx.blended(rng, k)
    device = _fraud_device(rng, pop, k)
    merchant = _pick(rng, pop.online_merchant_tickets, k)
    currency = rng.integers(0, 3, k)
    sizes = 10 + rng.poisson(15.0, k)
    adapt, tactics = ctx.adapting(rng, "card_testing", start)
    gap = _pace(blended, 20_000, 6.0) * np.where(adapt, tactics.slower, 1.0)
    ep, t_ms, _ = _expand(rng, start, sizes, gap)
    n = len(ep)
    card = rng.integers(0, pop.n_cards, n)  # a list of stolen numbers, not the busiest cards
    amount, rotated = rng.integers(1, 201, n), device[ep]
    at = np.flatnonzero(blended[ep])
    if len(at):  # larger amounts, each card from another home device (a botnet's)
        amount[at] = rng.integers(100, 3_001, len(at))
        rotated = rotated.copy()
        rotated[at] = rng.integers(0, pop.n_legit_devices, len(at))
    amount = _adapted_amounts(rng, adapt[ep], tactics, amount)
    rotated = _fresh_devices(rng, pop, adapt[ep], tactics, rotated)  # one per card
    channel = np.full(n, CH["ecommerce"])
    return _fraud_rows(rng, CODE["card_testing"], t_ms, card, merchant[ep], channel,
                       rotated, currency[ep], amount)  # fmt: skip


def account_takeover(
    rng: np.random.Generator, pop: Population, start: np.ndarray, ctx: Context
) -> Rows:
    """Scenario 3: a known card on a new device and an unusual channel, amounts rising."""
    k = len(start)
    card = _pick(rng, pop.card_tickets, k)
    blended, drifted = ctx.blended(rng, k), ctx.drifted(rng, start)
    device = np.where(blended, pop.card_device[card], _fraud_device(rng, pop, k))
    usual = pop.card_channel[card]
    channel = np.where(usual == CH["ecommerce"], CH["mobile"], CH["ecommerce"])
    channel = np.where(blended, _own_channel(pop, card), channel)
    base = np.exp(pop.card_mu[card]) * rng.uniform(1.0, 2.0, k)
    growth = rng.uniform(1.3, 1.8, k)
    sizes = 3 + rng.poisson(3.0, k)
    ep, t_ms, rank = _expand(rng, start, sizes, _pace(blended, 45 * MINUTE_MS, 4.0))
    n = len(ep)
    merchant = _pick(rng, pop.fraud_merchant_tickets, n)
    amount = np.clip(np.rint(base[ep] * growth[ep] ** rank), 100, 50_000_000).astype(np.int64)
    amount = _near_threshold(rng, drifted[ep], amount, cap=True)
    merchant, currency, amount = _mimicked(rng, pop, blended[ep], card[ep], t_ms, merchant,
                                           pop.card_home[card][ep], amount)  # fmt: skip
    return _fraud_rows(rng, CODE["account_takeover"], t_ms, card[ep], merchant, channel[ep],
                       device[ep], currency, amount)  # fmt: skip


def _breach_visits(
    rng: np.random.Generator, pop: Population, start: np.ndarray, ctx: Context
) -> tuple[np.ndarray, np.ndarray, Rows]:
    """A breached card-present merchant per episode and the genuine visits (not fraud) of its
    5 + Poisson(10) victims during the breach window: (merchants, episode per visit, visits)."""
    k = len(start)
    breached = _pick(rng, pop.merchant_tickets, k)
    victims = 5 + rng.poisson(10.0, k)
    ep = np.repeat(np.arange(k), victims)
    v = len(ep)
    card = _pick(rng, pop.card_tickets, v)
    visit_t = start[ep] + rng.integers(0, max(ctx.breach_window_ms, 1), v)
    visit_channel = np.where(rng.random(v) < 0.5, CH["pos"], CH["contactless"])
    visits = Rows(
        t_ms=visit_t.astype(np.int64),
        card=card.astype(np.int64),
        merchant=breached[ep].astype(np.int32),
        channel=visit_channel.astype(np.int8),
        device=np.full(v, -1, dtype=np.int64),
        currency=pop.merchant_currency[breached[ep]].astype(np.int8),  # paid at the merchant
        amount_cents=amounts_cents(rng, pop, card, breached[ep]),
        draw=rng.random(v),
        latency_ms=authorization_latency(rng, CARD_PRESENT[visit_channel]),
        scenario=np.full(v, NO_SCENARIO, dtype=np.int8),
        label_at_ms=np.full(v, NO_LABEL, dtype=np.int64),
        dispute=np.full(v, NO_DISPUTE, dtype=np.int8),
    )
    return breached, ep, visits


def compromised_merchant(
    rng: np.random.Generator, pop: Population, start: np.ndarray, ctx: Context
) -> Rows:
    """Scenario 4: genuine visits to a breached merchant, then frauds elsewhere, later."""
    breached, ep, visits = _breach_visits(rng, pop, start, ctx)
    card, visit_t, v = visits.card, visits.t_ms, len(visits)
    first = visit_t + rng.uniform(2 * HOUR_MS, ctx.max_delay_ms, v).astype(np.int64)
    blended = ctx.blended(rng, v)
    sizes = 1 + rng.poisson(1.0, v)
    victim, t_ms, _ = _expand(rng, first, sizes, _pace(blended, 30 * MINUTE_MS, 4.0))
    n = len(victim)
    mimic = blended[victim]
    merchant = _pick(rng, pop.fraud_merchant_tickets, n)
    elsewhere = breached[ep][victim]
    merchant = np.where(
        merchant == elsewhere, (merchant + 1) % len(pop.merchant_category), merchant
    )
    channel = np.where(rng.random(n) < 0.7, CH["ecommerce"], CH["moto"])
    device = np.where(
        (channel == CH["ecommerce"]) & (rng.random(n) < 0.5), _fraud_device(rng, pop, n), -1
    )
    victim_card = card[victim]
    if mimic.any():
        channel = np.where(mimic, _own_channel(pop, victim_card), channel)
        device = np.where(mimic, pop.card_device[victim_card], device)
    foreign = rng.integers(0, MAJOR_CURRENCIES, n)
    abroad = _abroad(rng, n, 0.5) & ~mimic
    currency = np.where(abroad, foreign, pop.card_home[victim_card])
    amount = _log_uniform_cents(rng, 100, 1_500, n)
    merchant, currency, amount = _mimicked(rng, pop, mimic, victim_card, t_ms, merchant,
                                           currency, amount)  # fmt: skip
    frauds = _fraud_rows(rng, CODE["compromised_merchant"], t_ms, victim_card, merchant,
                         channel, device, currency, amount)  # fmt: skip
    return Rows.concat([visits, frauds])


def _merchants_abroad(
    rng: np.random.Generator, pop: Population, tickets: np.ndarray, card: np.ndarray
) -> np.ndarray:
    """A merchant per row from ``tickets``, in a country other than the row's card's: the first
    of :data:`_ABROAD_TRIES` candidates abroad (the last candidate if none is)."""
    candidates = tickets[rng.integers(0, len(tickets), (len(card), _ABROAD_TRIES))]
    abroad = pop.merchant_country[candidates] != pop.card_country[card][:, None]
    pick = np.where(abroad.any(axis=1), abroad.argmax(axis=1), _ABROAD_TRIES - 1)
    return candidates[np.arange(len(card)), pick]


def counterfeit(rng: np.random.Generator, pop: Population, start: np.ndarray, ctx: Context) -> Rows:
    """Scenario 5: cards skimmed at a card-present merchant (genuine visits, not fraud, as a
    breached merchant's), cloned, and used card-present (``pos``: a magnetic-stripe clone) at
    merchants in another country, from 6 hours to 5 days (a third of a short run) later:
    1 + Poisson(2) payments per clone about 40 minutes apart, 80–1,500 (log-uniform, in the
    merchant's currency) at high-exposure shops. Blended clones shop like a traveller: popular
    card-present merchants abroad, amounts from the card's own profile, four times slower."""
    *_, visits = _breach_visits(rng, pop, start, ctx)
    card, v = visits.card, len(visits)
    first = visits.t_ms + rng.uniform(6 * HOUR_MS, ctx.max_delay_ms, v).astype(np.int64)
    blended = ctx.blended(rng, v)
    sizes = 1 + rng.poisson(2.0, v)
    clone, t_ms, _ = _expand(rng, first, sizes, _pace(blended, 40 * MINUTE_MS, 4.0))
    n = len(clone)
    mimic, clone_card = blended[clone], card[clone]
    exposed = _merchants_abroad(rng, pop, pop.counterfeit_merchant_tickets, clone_card)
    popular = _merchants_abroad(rng, pop, pop.merchant_tickets, clone_card)
    merchant = np.where(mimic, popular, exposed)
    currency = pop.merchant_currency[merchant].astype(np.int8)
    shop = _log_uniform_cents(rng, 80, 1_500, n) * CURRENCY_PER_GBP[currency]
    amount = np.where(mimic, amounts_cents(rng, pop, clone_card, merchant), np.rint(shop))
    channel = np.full(n, CH["pos"])
    device = np.full(n, -1)
    frauds = _fraud_rows(rng, CODE["counterfeit"], t_ms, clone_card, merchant, channel, device,
                         currency, amount.astype(np.int64))  # fmt: skip
    return Rows.concat([visits, frauds])


GENERATORS: dict[str, Callable[[np.random.Generator, Population, np.ndarray, Context], Rows]] = {
    "stolen_card": stolen_card,
    "card_testing": card_testing,
    "account_takeover": account_takeover,
    "compromised_merchant": compromised_merchant,
    "counterfeit": counterfeit,
}


def episodes_for_hour(
    rng: np.random.Generator, pop: Population, rates: np.ndarray, t0_ms: int, ctx: Context
) -> Rows:
    """Rows of the episodes starting in the hour at ``t0_ms`` (unsorted; later rows included;
    rows after the run's end dropped)."""
    parts = []
    for code, name in enumerate(SCENARIOS):
        if rates[code] <= 0:
            continue
        k = int(rng.poisson(rates[code]))
        if k == 0:
            continue
        start = t0_ms + np.sort(rng.integers(0, HOUR_MS, k))
        rows = GENERATORS[name](rng, pop, start, ctx)
        parts.append(rows.take(rows.t_ms < ctx.run_end_ms))
    return Rows.concat(parts) if parts else Rows.empty()
