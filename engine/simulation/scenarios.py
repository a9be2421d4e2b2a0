"""The labelled fraud scenarios, their rates and their chargeback (label-arrival) delays.

Each scenario produces *episodes*; an episode starts at a uniform time within a simulated hour
and its rows may run into later hours. Every fraud row carries ``scenario`` (its label) and
``label_at_ms``: when a chargeback would reveal it, 3 days + gamma(2, 10 days) after the payment.

1. ``stolen_card`` — a spree on a stolen card: 2 + Poisson(3) payments, about 8 minutes apart,
   of 300–2,500 (log-uniform) at high-value merchants, on a fraudster's device the card has never
   used, mostly ecommerce, sometimes in a foreign currency.
2. ``card_testing`` — one fraudster device tries 10 + Poisson(15) different cards about every
   20 seconds at one online merchant, with tiny amounts (0.01–2.00) in one currency.
3. ``account_takeover`` — a known card suddenly appears on a new device and on a channel it does
   not usually use; 3 + Poisson(3) payments about 45 minutes apart with amounts growing
   geometrically (×1.3–1.8 each) from above the card's typical amount.
4. ``compromised_merchant`` — a merchant is breached for a window (12 h, or a sixth of a short
   run); 5 + Poisson(10) cards pay there genuinely during the window (these visits are *not*
   fraud), and each is defrauded 1 + Poisson(1) times elsewhere, card-not-present, from 2 hours
   to 5 days later (a third of a short run).

Rates: with ``fraud_rate`` f, scenario share s and E fraud rows per episode, an hour with c
planned rows starts Poisson(f·s·c/E · N/N_eligible) episodes, where only hours early enough for
the episode to fit before the run ends are eligible (N_eligible rows), so the expected share of
fraud rows is f and the mix is s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.simulation.latency_model import authorization_latency
from engine.simulation.params import SCENARIOS, SimulationParams
from engine.simulation.population import (
    CARD_PRESENT,
    CH,
    HOUR_MS,
    MAJOR_CURRENCIES,
    Population,
    amounts_cents,
)
from engine.simulation.rows import NO_LABEL, NO_SCENARIO, Rows

MINUTE_MS = 60_000
DAY_MS = 24 * HOUR_MS
CODE = {name: code for code, name in enumerate(SCENARIOS)}


@dataclass(frozen=True, slots=True)
class Context:
    """Run-level facts the episode generators need."""

    run_end_ms: int
    breach_window_ms: int  # compromised merchant: how long the breach lasts
    max_delay_ms: int  # compromised merchant: latest first fraud after a visit


def context(params: SimulationParams, run_start_ms: int) -> Context:
    """Breach window and fraud delay, scaled down for short runs."""
    duration = params.days * DAY_MS
    return Context(
        run_end_ms=run_start_ms + duration,
        breach_window_ms=min(12 * HOUR_MS, duration // 6),
        max_delay_ms=max(min(5 * DAY_MS, duration // 3), 3 * HOUR_MS),
    )


def mean_fraud_rows(name: str) -> float:
    """Expected fraud rows per episode."""
    return {"stolen_card": 5.0, "card_testing": 25.0, "account_takeover": 6.0,
            "compromised_merchant": 15.0 * 2.0}[name]  # fmt: skip


def span_ms(name: str, ctx: Context) -> int:
    """How long after its start an episode's rows (nearly all) fall."""
    return {
        "stolen_card": 6 * HOUR_MS,
        "card_testing": HOUR_MS,
        "account_takeover": DAY_MS,
        "compromised_merchant": ctx.breach_window_ms + ctx.max_delay_ms + 6 * HOUR_MS,
    }[name]


def episode_rates(
    params: SimulationParams, counts: np.ndarray, hour_starts: np.ndarray, ctx: Context
) -> np.ndarray:
    """Expected episodes starting in each hour, per scenario: shape (hours, scenarios)."""
    rates = np.zeros((len(counts), len(SCENARIOS)))
    shares = params.mix_shares()
    for code, name in enumerate(SCENARIOS):
        share = shares[name]
        if share <= 0 or params.fraud_rate <= 0:
            continue
        eligible = hour_starts + HOUR_MS + span_ms(name, ctx) <= ctx.run_end_ms
        if not eligible.any():  # run too short for the whole span: start in the first hour
            eligible = np.zeros(len(counts), dtype=bool)
            eligible[0] = True
        total = counts.sum()
        in_reach = counts[eligible].sum()
        if in_reach == 0:
            continue
        per_row = params.fraud_rate * share / mean_fraud_rows(name) * total / in_reach
        rates[eligible, code] = counts[eligible] * per_row
    return rates


def label_delay_ms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Chargeback delay: 3 days + gamma(2, 10 days)."""
    return (3 * DAY_MS + rng.gamma(2.0, 10.0, n) * DAY_MS).astype(np.int64)


def _expand(rng: np.random.Generator, start: np.ndarray, sizes: np.ndarray, gap_ms: float):
    """Per-row episode index and event time: ``sizes`` rows per episode, exponential gaps."""
    episode = np.repeat(np.arange(len(sizes)), sizes)
    gaps = rng.exponential(gap_ms, len(episode))
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    gaps[first[sizes > 0]] = 0.0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[first[sizes > 0]], sizes[sizes > 0])
    rank = np.arange(len(episode)) - np.repeat(first, sizes)
    return episode, start[episode] + elapsed.astype(np.int64), rank


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
        label_at_ms=t_ms.astype(np.int64) + label_delay_ms(rng, n),
    )


def _log_uniform_cents(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return np.rint(np.exp(rng.uniform(np.log(low * 100), np.log(high * 100), n))).astype(np.int64)


def _pick(rng: np.random.Generator, tickets: np.ndarray, n: int) -> np.ndarray:
    return tickets[rng.integers(0, len(tickets), n)]


def _fraud_device(rng: np.random.Generator, pop: Population, n: int) -> np.ndarray:
    return pop.n_legit_devices + rng.integers(0, pop.n_fraud_devices, n)


def stolen_card(rng: np.random.Generator, pop: Population, start: np.ndarray, ctx: Context) -> Rows:
    """Scenario 1: high amounts on a new device, in a quick spree."""
    k = len(start)
    card = _pick(rng, pop.card_tickets, k)
    device = _fraud_device(rng, pop, k)
    channel = np.where(rng.random(k) < 0.8, CH["ecommerce"], CH["mobile"])
    foreign = rng.integers(0, MAJOR_CURRENCIES, k)
    currency = np.where(rng.random(k) < 0.6, pop.card_home[card], foreign)
    sizes = 2 + rng.poisson(3.0, k)
    ep, t_ms, _ = _expand(rng, start, sizes, 8 * MINUTE_MS)
    n = len(ep)
    merchant = _pick(rng, pop.fraud_merchant_tickets, n)
    amount = _log_uniform_cents(rng, 300, 2_500, n)
    return _fraud_rows(rng, CODE["stolen_card"], t_ms, card[ep], merchant, channel[ep],
                       device[ep], currency[ep], amount)  # fmt: skip


def card_testing(
    rng: np.random.Generator, pop: Population, start: np.ndarray, ctx: Context
) -> Rows:
    """Scenario 2: one device, many cards, tiny amounts, seconds apart."""
    k = len(start)
    device = _fraud_device(rng, pop, k)
    merchant = _pick(rng, pop.online_merchant_tickets, k)
    currency = rng.integers(0, 3, k)
    sizes = 10 + rng.poisson(15.0, k)
    ep, t_ms, _ = _expand(rng, start, sizes, 20_000)
    n = len(ep)
    card = rng.integers(0, pop.n_cards, n)  # a list of stolen numbers, not the busiest cards
    amount = rng.integers(1, 201, n)
    channel = np.full(n, CH["ecommerce"])
    return _fraud_rows(rng, CODE["card_testing"], t_ms, card, merchant[ep], channel,
                       device[ep], currency[ep], amount)  # fmt: skip


def account_takeover(
    rng: np.random.Generator, pop: Population, start: np.ndarray, ctx: Context
) -> Rows:
    """Scenario 3: a known card on a new device and an unusual channel, amounts rising."""
    k = len(start)
    card = _pick(rng, pop.card_tickets, k)
    device = _fraud_device(rng, pop, k)
    usual = pop.card_channel[card]
    channel = np.where(usual == CH["ecommerce"], CH["mobile"], CH["ecommerce"])
    base = np.exp(pop.card_mu[card]) * rng.uniform(1.0, 2.0, k)
    growth = rng.uniform(1.3, 1.8, k)
    sizes = 3 + rng.poisson(3.0, k)
    ep, t_ms, rank = _expand(rng, start, sizes, 45 * MINUTE_MS)
    n = len(ep)
    merchant = _pick(rng, pop.fraud_merchant_tickets, n)
    amount = np.clip(np.rint(base[ep] * growth[ep] ** rank), 100, 50_000_000)
    return _fraud_rows(rng, CODE["account_takeover"], t_ms, card[ep], merchant, channel[ep],
                       device[ep], pop.card_home[card][ep], amount)  # fmt: skip


def compromised_merchant(
    rng: np.random.Generator, pop: Population, start: np.ndarray, ctx: Context
) -> Rows:
    """Scenario 4: genuine visits to a breached merchant, then frauds elsewhere, later."""
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
    )
    first = visit_t + rng.uniform(2 * HOUR_MS, ctx.max_delay_ms, v).astype(np.int64)
    sizes = 1 + rng.poisson(1.0, v)
    victim, t_ms, _ = _expand(rng, first, sizes, 30 * MINUTE_MS)
    n = len(victim)
    merchant = _pick(rng, pop.fraud_merchant_tickets, n)
    elsewhere = breached[ep][victim]
    merchant = np.where(
        merchant == elsewhere, (merchant + 1) % len(pop.merchant_category), merchant
    )
    channel = np.where(rng.random(n) < 0.7, CH["ecommerce"], CH["moto"])
    device = np.where(
        (channel == CH["ecommerce"]) & (rng.random(n) < 0.5), _fraud_device(rng, pop, n), -1
    )
    foreign = rng.integers(0, MAJOR_CURRENCIES, n)
    currency = np.where(rng.random(n) < 0.5, foreign, pop.card_home[card][victim])
    amount = _log_uniform_cents(rng, 100, 1_500, n)
    frauds = _fraud_rows(rng, CODE["compromised_merchant"], t_ms, card[victim], merchant,
                         channel, device, currency, amount)  # fmt: skip
    return Rows.concat([visits, frauds])


GENERATORS: dict[str, Callable[[np.random.Generator, Population, np.ndarray, Context], Rows]] = {
    "stolen_card": stolen_card,
    "card_testing": card_testing,
    "account_takeover": account_takeover,
    "compromised_merchant": compromised_merchant,
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
