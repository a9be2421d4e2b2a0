"""Authorization latency of simulated payments, in milliseconds.

A payment's authorization travels merchant → acquirer → card network → issuer and back. The
model adds one random delay per hop:

* **network** round trip, log-normal: median 35 ms for card-present channels (pos, contactless:
  terminal lines), 20 ms for card-not-present ones (ecommerce, mobile, moto), σ = 0.35;
* **acquirer and network switch** processing, log-normal: median 8 ms, σ = 0.5;
* **issuer** authorization, log-normal: median 45 ms, σ = 0.45;
* a **heavy tail**: with probability 2 % the issuer is slow or the message is retried, adding a
  Pareto(α = 1.6) delay with scale 120 ms;
* a **timeout** at 2,000 ms: the network then answers with stand-in processing on the issuer's
  behalf, which takes another 5–30 ms (uniform), so no latency exceeds 2,030 ms.

Every draw comes from the generator passed in, in a fixed order, so latencies are reproducible.
"""

from __future__ import annotations

import numpy as np

CARD_PRESENT_NETWORK_MS = 35.0
CARD_NOT_PRESENT_NETWORK_MS = 20.0
NETWORK_SIGMA = 0.35
ACQUIRER_MEDIAN_MS, ACQUIRER_SIGMA = 8.0, 0.5
ISSUER_MEDIAN_MS, ISSUER_SIGMA = 45.0, 0.45
TAIL_PROBABILITY, TAIL_ALPHA, TAIL_SCALE_MS = 0.02, 1.6, 120.0
TIMEOUT_MS = 2_000.0
STAND_IN_MIN_MS, STAND_IN_MAX_MS = 5.0, 30.0


def authorization_latency(rng: np.random.Generator, card_present: np.ndarray) -> np.ndarray:
    """Latency in ms (rounded to µs) for payments whose ``card_present`` flags are given."""
    total = untimed_latency(card_present, *latency_draws(rng, len(card_present)))
    out = timed_out(total)
    total[out] = stand_in(rng, len(out))
    return np.round(total, 3)


def latency_draws(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The draws of ``n`` latencies before the timeout: (normals of shape (3, n), indices of the
    slow payments, their Pareto tails). Split from the arithmetic so that a run can draw hour by
    hour (each hour has its own generator) and compute many hours at once."""
    z = rng.standard_normal((3, n))  # one call: network, acquirer, issuer
    slow = np.flatnonzero(rng.random(n) < TAIL_PROBABILITY)
    return z, slow, rng.pareto(TAIL_ALPHA, len(slow))


def untimed_latency(
    card_present: np.ndarray, z: np.ndarray, slow: np.ndarray, tail: np.ndarray
) -> np.ndarray:
    """Each payment's latency in ms before the timeout, from :func:`latency_draws`."""
    median = np.where(card_present, CARD_PRESENT_NETWORK_MS, CARD_NOT_PRESENT_NETWORK_MS)
    total = median * np.exp(NETWORK_SIGMA * z[0])
    total += ACQUIRER_MEDIAN_MS * np.exp(ACQUIRER_SIGMA * z[1])
    total += ISSUER_MEDIAN_MS * np.exp(ISSUER_SIGMA * z[2])
    total[slow] += TAIL_SCALE_MS * (tail + 1.0)
    return total


def timed_out(total: np.ndarray) -> np.ndarray:
    """Indices (ascending) of the latencies beyond the timeout."""
    return np.flatnonzero(total > TIMEOUT_MS)


def stand_in(rng: np.random.Generator, n: int) -> np.ndarray:
    """Latencies of ``n`` timed-out payments answered by stand-in processing (the last draw)."""
    return TIMEOUT_MS + rng.uniform(STAND_IN_MIN_MS, STAND_IN_MAX_MS, n)
