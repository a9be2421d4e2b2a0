"""Observed disputes: which simulated payments are disputed, why, and when the dispute arrives.

Ground truth (``is_fraud``, ``fraud_scenario``) says what a payment *was*; the observed dispute
says what the payment's owner *learns*, and when: the label an analyst really has.

* **Friendly fraud** (``friendly_fraud_rate``): a genuine card-not-present payment chosen at
  random (:func:`mark_friendly_fraud`), labelled ``friendly_fraud``; its ground truth stays "not
  fraud" (the cardholder made it).
* **Who disputes.** A fraud row is disputed by its cardholder unless the dispute is missed
  (``missed_disputes``: nobody noticed, the card was simply replaced, the amount was too small to
  bother). A friendly-fraud row is disputed always: that is what makes it friendly fraud. A
  genuine row is disputed as fraud with probability ``false_disputes`` (a cardholder who does not
  recognise the merchant's name on the statement). See :class:`~.params.Knobs`.
* **Why.** Third-party fraud and false claims are filed as ``fraud`` (not authorised by the
  cardholder). Friendly fraudsters file ``fraud`` (70%) or ``not_received``
  (30%): card schemes' consumer-dispute reasons, which a fraud label does
  not count (:func:`engine.backtest.label_sql` counts ``fraud`` and ``friendly_fraud``).
* **When.** Both large card schemes let a cardholder dispute a card payment as fraud for 120 days
  from its processing date (Visa's fraud dispute conditions 10.x and Mastercard's "no cardholder
  authorization" chargeback). Most disputes follow the cardholder's monthly statement and the
  issuer's handling, so the delay is 2 days (settlement) + log-normal with a median of 40 days
  and σ 0.45: a quarter within 32 days, 58% between 30 and 60 days, 90% within 73 days, a tail
  to 120. A dispute that would come after the 120 days never comes (0.8%: the window closed).
* **Only approved payments** can be disputed: nothing was charged on a declined one, so its
  observed dispute is empty when stored (:func:`engine.simulation.table.transactions_table`),
  while its ground truth stays.

The draws depend only on the run's parameters: each block of whole simulated hours draws from
its own generator (keyed by its first hour), the rows in event order, so chunking cannot change
an outcome; and they are drawn for every row whatever its decision, so a backtest that would
approve a declined row knows what its dispute would have been (the draws are common random
numbers, like the decisions').
"""

from __future__ import annotations

import dataclasses
from typing import get_args

import numpy as np

from engine.models import DisputeReason
from engine.simulation.params import Knobs
from engine.simulation.rows import FRIENDLY_CODE, NO_DISPUTE, NO_LABEL, Rows

DAY_MS = 86_400_000
DISPUTE_REASONS: tuple[str, ...] = get_args(DisputeReason)
"""Dispute reason codes of :attr:`Rows.dispute` (the API's reasons, in their order)."""
FRAUD_CODE = DISPUTE_REASONS.index("fraud")
NOT_RECEIVED_CODE = DISPUTE_REASONS.index("not_received")
FRIENDLY_NOT_RECEIVED_SHARE = 0.3  # friendly fraudsters claiming the goods never came
DISPUTE_WINDOW_MS = 120 * DAY_MS
SETTLEMENT_MS = 2 * DAY_MS
MEDIAN_DELAY_DAYS = 40.0
DELAY_SIGMA = 0.45


def dispute_delay_ms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Time from a payment to its dispute: settlement + log-normal (median 40 days, σ 0.45)."""
    days = rng.lognormal(np.log(MEDIAN_DELAY_DAYS), DELAY_SIGMA, n)
    return SETTLEMENT_MS + (days * DAY_MS).astype(np.int64)


def mark_friendly_fraud(rng: np.random.Generator, rows: Rows, rate: float) -> Rows:
    """``rows`` with some genuine card-not-present payments (a device id sent: the card's own
    device, channel and amount) labelled friendly fraud: ``rate`` of all rows in expectation."""
    if rate <= 0:
        return rows
    eligible = (rows.scenario < 0) & (rows.device >= 0)
    share = min(rate * len(rows) / max(int(np.count_nonzero(eligible)), 1), 1.0)
    chosen = eligible & (rng.random(len(rows)) < share)
    scenario = np.where(chosen, np.int8(FRIENDLY_CODE), rows.scenario).astype(np.int8)
    return dataclasses.replace(rows, scenario=scenario)


def observe_disputes(rng: np.random.Generator, rows: Rows, knobs: Knobs) -> Rows:
    """``rows`` with their observed disputes set (``label_at_ms``, ``dispute``), as they would
    come if every row were approved."""
    n = len(rows)
    u = rng.random(n)
    friendly = rows.scenario == FRIENDLY_CODE
    disputed = np.where(
        rows.is_fraud, u >= knobs.missed_disputes, friendly | (u < knobs.false_disputes)
    )
    at = np.flatnonzero(disputed)
    delay = dispute_delay_ms(rng, len(at))
    not_received = friendly[at] & (rng.random(len(at)) < FRIENDLY_NOT_RECEIVED_SHARE)
    in_window = delay <= DISPUTE_WINDOW_MS
    at, delay, not_received = at[in_window], delay[in_window], not_received[in_window]
    label_at = np.full(n, NO_LABEL, dtype=np.int64)
    label_at[at] = rows.t_ms[at] + delay
    dispute = np.full(n, NO_DISPUTE, dtype=np.int8)
    dispute[at] = np.where(not_received, NOT_RECEIVED_CODE, FRAUD_CODE)
    return dataclasses.replace(rows, label_at_ms=label_at, dispute=dispute)
