"""Authorization latency of simulated payments, in milliseconds.

A payment's authorization travels merchant → acquirer → card network → issuer and back. The
model adds one random delay per hop:

* **network** round trip, log-normal: median 35 ms for card-present channels (pos, contactless:
  terminal lines), 20 ms for card-not-present ones (ecommerce, mobile, moto), σ = 0.35;
* **acquirer and network switch** processing, gamma(shape 4, scale 2 ms): about 8 ms;
* **issuer** authorization, log-normal: median 45 ms, σ = 0.45;
* a **heavy tail**: with probability 2 % the issuer is slow or the message is retried, adding a
  Pareto(α = 1.6) delay with scale 120 ms;
* a **timeout** at 2,000 ms: the network then answers with stand-in processing on the issuer's
  behalf, which takes another gamma(shape 2, scale 5 ms), so no latency exceeds about 2.1 s.

Every draw comes from the generator passed in, in a fixed order, so latencies are reproducible.
"""

from __future__ import annotations

import numpy as np

CARD_PRESENT_NETWORK_MS = 35.0
CARD_NOT_PRESENT_NETWORK_MS = 20.0
NETWORK_SIGMA = 0.35
ACQUIRER_SHAPE, ACQUIRER_SCALE_MS = 4.0, 2.0
ISSUER_MEDIAN_MS, ISSUER_SIGMA = 45.0, 0.45
TAIL_PROBABILITY, TAIL_ALPHA, TAIL_SCALE_MS = 0.02, 1.6, 120.0
TIMEOUT_MS = 2_000.0
STAND_IN_SHAPE, STAND_IN_SCALE_MS = 2.0, 5.0


def authorization_latency(rng: np.random.Generator, card_present: np.ndarray) -> np.ndarray:
    """Latency in ms (rounded to µs) for payments whose ``card_present`` flags are given."""
    n = len(card_present)
    median = np.where(card_present, CARD_PRESENT_NETWORK_MS, CARD_NOT_PRESENT_NETWORK_MS)
    network = median * np.exp(NETWORK_SIGMA * rng.standard_normal(n))
    acquirer = rng.gamma(ACQUIRER_SHAPE, ACQUIRER_SCALE_MS, n)
    issuer = ISSUER_MEDIAN_MS * np.exp(ISSUER_SIGMA * rng.standard_normal(n))
    tail = np.where(
        rng.random(n) < TAIL_PROBABILITY, TAIL_SCALE_MS * (rng.pareto(TAIL_ALPHA, n) + 1.0), 0.0
    )
    total = network + acquirer + issuer + tail
    stand_in = TIMEOUT_MS + rng.gamma(STAND_IN_SHAPE, STAND_IN_SCALE_MS, n)
    return np.round(np.where(total > TIMEOUT_MS, stand_in, total), 3)
