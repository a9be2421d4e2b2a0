"""A column-wise batch of simulated payments before features and decisions (numpy arrays)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from engine.simulation.params import FRIENDLY_FRAUD, LABELLED_SCENARIOS

NO_SCENARIO = -1  # scenario code of legitimate rows
NO_LABEL = -1  # label_at_ms of rows nobody disputes
NO_DISPUTE = -1  # dispute code of rows nobody disputes
FRIENDLY_CODE = LABELLED_SCENARIOS.index(FRIENDLY_FRAUD)  # a genuine payment: not fraud


@dataclass(frozen=True, slots=True)
class Rows:
    """Simulated payments. Codes are dense integers into the population's tables."""

    t_ms: np.ndarray  # int64 event time, ms since the epoch
    card: np.ndarray  # int64 card code
    merchant: np.ndarray  # int32 merchant code
    channel: np.ndarray  # int8 index into engine.features.CHANNELS
    device: np.ndarray  # int64 device code, -1 = no device id sent
    currency: np.ndarray  # int8 index into population.CURRENCIES
    amount_cents: np.ndarray  # int64
    draw: np.ndarray  # float64 uniform [0, 1): the decision's random number
    latency_ms: np.ndarray  # float64
    scenario: np.ndarray  # int8 index into LABELLED_SCENARIOS, -1 = no scenario
    label_at_ms: np.ndarray  # int64 when the row's dispute arrives if it is approved, -1 never
    dispute: np.ndarray  # int8 the dispute's reason (outcomes.DISPUTE_REASONS), -1 = none

    def __len__(self) -> int:
        return len(self.t_ms)

    @property
    def is_fraud(self) -> np.ndarray:
        """Ground truth per row (friendly fraud is a genuine payment: not fraud)."""
        return (self.scenario >= 0) & (self.scenario != FRIENDLY_CODE)

    def take(self, index: np.ndarray | slice) -> Rows:
        """The rows at ``index`` (an index array or a slice)."""
        return Rows(*(getattr(self, name)[index] for name in _FIELDS))

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        """All parts, in order."""
        if len(parts) == 1:
            return parts[0]
        return Rows(*(np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS))

    def merged_by_time(self, later: Rows) -> Rows:
        """Both batches (each in event order) as one in event order; on equal times, this
        batch's rows come first. The same rows and order as a stable sort of the concatenation,
        with one sequential copy per column instead of a concatenation and a gather."""
        if not len(later):
            return self
        at = np.searchsorted(self.t_ms, later.t_ms, side="right")
        return Rows(*(np.insert(getattr(self, name), at, getattr(later, name)) for name in _FIELDS))

    @staticmethod
    def empty() -> Rows:
        """No rows (with the right dtypes)."""
        return Rows(
            t_ms=np.empty(0, np.int64),
            card=np.empty(0, np.int64),
            merchant=np.empty(0, np.int32),
            channel=np.empty(0, np.int8),
            device=np.empty(0, np.int64),
            currency=np.empty(0, np.int8),
            amount_cents=np.empty(0, np.int64),
            draw=np.empty(0, np.float64),
            latency_ms=np.empty(0, np.float64),
            scenario=np.empty(0, np.int8),
            label_at_ms=np.empty(0, np.int64),
            dispute=np.empty(0, np.int8),
        )


_FIELDS = tuple(f.name for f in fields(Rows))  # per hour of a run: dataclasses.fields is slow
