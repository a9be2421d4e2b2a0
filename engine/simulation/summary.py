"""Running ground-truth counts of a run: approvals, fraud caught, fraud loss, false declines."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from engine.simulation.params import LABELLED_SCENARIOS
from engine.simulation.rows import FRIENDLY_CODE


@dataclass(slots=True)
class RunSummary:
    """Totals over the chunks written so far (integers; money in cents)."""

    rows: int = 0
    approved: int = 0
    fraud_rows: int = 0
    fraud_caught: int = 0  # fraud rows declined
    false_declines: int = 0  # legitimate rows declined
    amount_cents: int = 0
    fraud_amount_cents: int = 0
    fraud_loss_cents: int = 0  # fraud rows approved
    scenario_rows: list[int] = field(default_factory=lambda: [0] * len(LABELLED_SCENARIOS))
    scenario_caught: list[int] = field(default_factory=lambda: [0] * len(LABELLED_SCENARIOS))

    def add(
        self, approved: np.ndarray, scenario: np.ndarray, amount_cents: np.ndarray
    ) -> RunSummary:
        """Add a chunk's decisions, labels (scenario codes, −1 none) and amounts. Friendly
        fraud counts as legitimate (it is the cardholder's payment) and in its scenario."""
        labelled = scenario >= 0
        fraud = labelled & (scenario != FRIENDLY_CODE)
        declined = ~approved
        self.rows += len(approved)
        self.approved += int(np.count_nonzero(approved))
        self.fraud_rows += int(np.count_nonzero(fraud))
        self.fraud_caught += int(np.count_nonzero(fraud & declined))
        self.false_declines += int(np.count_nonzero(~fraud & declined))
        self.amount_cents += int(amount_cents.sum(dtype=np.int64))
        self.fraud_amount_cents += int(amount_cents[fraud].sum(dtype=np.int64))
        self.fraud_loss_cents += int(amount_cents[fraud & approved].sum(dtype=np.int64))
        width = len(LABELLED_SCENARIOS)
        rows = np.bincount(scenario[labelled].astype(np.int64), minlength=width)
        caught = np.bincount(scenario[labelled & declined].astype(np.int64), minlength=width)
        for i in range(width):
            self.scenario_rows[i] += int(rows[i])
            self.scenario_caught[i] += int(caught[i])
        return self

    def as_dict(self) -> dict[str, Any]:
        """The summary as stored (JSON-ready; money as exact decimal strings, which
        :class:`~engine.simulation.params.RunRecord` reads back as Decimal)."""

        def money(cents: int) -> str:
            return str(Decimal(cents).scaleb(-2))

        def ratio(a: int, b: int) -> float:
            return round(a / b, 6) if b else 0.0

        return {
            "rows": self.rows,
            "approved": self.approved,
            "declined": self.rows - self.approved,
            "approval_rate": ratio(self.approved, self.rows),
            "fraud_rows": self.fraud_rows,
            "fraud_rate": ratio(self.fraud_rows, self.rows),
            "fraud_caught": self.fraud_caught,
            "fraud_caught_rate": ratio(self.fraud_caught, self.fraud_rows),
            "false_declines": self.false_declines,
            "false_decline_rate": ratio(self.false_declines, self.rows - self.fraud_rows),
            "amount": money(self.amount_cents),
            "fraud_amount": money(self.fraud_amount_cents),
            "fraud_loss": money(self.fraud_loss_cents),
            "scenarios": {
                name: {"rows": self.scenario_rows[i], "caught": self.scenario_caught[i]}
                for i, name in enumerate(LABELLED_SCENARIOS)
            },
        }
