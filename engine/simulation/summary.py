"""Running ground-truth counts of a run: approvals, fraud caught, fraud loss, false declines,
and what the run's decisions cost under the default cost model (:mod:`engine.costs`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from engine.costs import Consequences, CostModel, cost_breakdown
from engine.decision import Reason
from engine.features import NO_GBP
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
    # what the costs are computed from (amounts in GBP pence, as engine.costs.Consequences)
    approved_fraud: int = 0  # fraud approved and not worked by review
    approved_fraud_pence: int = 0
    false_decline_pence: int = 0
    reviewed: int = 0
    challenged: int = 0
    abandoned: int = 0  # challenged genuine payers who abandoned: lost sales
    abandoned_pence: int = 0
    liability_shifted: int = 0  # fraud approved after a passed challenge: the issuer's loss
    friendly_fraud: int = 0  # friendly fraud approved: each comes back as a chargeback
    friendly_fraud_pence: int = 0
    unpriced: int = 0  # rows in a currency without a reference rate
    falsely_declined_cards: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))

    def add(
        self,
        approved: np.ndarray,
        scenario: np.ndarray,
        amount_cents: np.ndarray,
        *,
        reason: np.ndarray,
        gbp_pence: np.ndarray,
        card: np.ndarray,
    ) -> RunSummary:
        """Add a chunk's decisions (approved, and their :class:`~engine.decision.Reason` codes),
        labels (scenario codes, −1 none), amounts (own currency and GBP pence, ``NO_GBP``
        without a rate) and cards. Friendly fraud counts as legitimate (it is the cardholder's
        payment) and in its scenario. Costs count as :mod:`engine.compare` does: review has no
        capacity here (every review-marked payment is worked, and a worked fraud is stopped), a
        passed challenge shifts a fraud's liability, an abandoned one is a lost sale, not a
        false decline; approved friendly fraud is a chargeback (:mod:`engine.costs`)."""
        labelled = scenario >= 0
        fraud = labelled & (scenario != FRIENDLY_CODE)
        declined = ~approved
        abandoned = reason == Reason.CHALLENGE_ABANDONED
        self._add_costs(fraud, declined, reason, gbp_pence, card)
        friendly = approved & (scenario == FRIENDLY_CODE)
        self.friendly_fraud += int(np.count_nonzero(friendly))
        self.friendly_fraud_pence += int(
            np.where(gbp_pence == NO_GBP, 0, gbp_pence)[friendly].sum(dtype=np.int64)
        )
        self.rows += len(approved)
        self.approved += int(np.count_nonzero(approved))
        self.fraud_rows += int(np.count_nonzero(fraud))
        self.fraud_caught += int(np.count_nonzero(fraud & declined))
        self.false_declines += int(np.count_nonzero(~fraud & declined & ~abandoned))
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

    def _add_costs(
        self,
        fraud: np.ndarray,
        declined: np.ndarray,
        reason: np.ndarray,
        gbp_pence: np.ndarray,
        card: np.ndarray,
    ) -> None:
        priced = np.where(gbp_pence == NO_GBP, 0, gbp_pence)
        reviewed = reason == Reason.REVIEW_BY_RULE
        passed = reason == Reason.CHALLENGE_PASSED
        abandoned = reason == Reason.CHALLENGE_ABANDONED
        lost = fraud & ~declined & ~reviewed & ~passed
        false_declined = ~fraud & declined & ~abandoned
        self.approved_fraud += int(np.count_nonzero(lost))
        self.approved_fraud_pence += int(priced[lost].sum(dtype=np.int64))
        self.false_decline_pence += int(priced[false_declined].sum(dtype=np.int64))
        self.reviewed += int(np.count_nonzero(reviewed))
        self.challenged += int(np.count_nonzero(reason >= Reason.CHALLENGE_PASSED))
        self.abandoned += int(np.count_nonzero(abandoned))
        self.abandoned_pence += int(priced[abandoned].sum(dtype=np.int64))
        self.liability_shifted += int(np.count_nonzero(fraud & passed))
        self.unpriced += int(np.count_nonzero(gbp_pence == NO_GBP))
        cards = card[false_declined]
        if len(cards):
            needed = int(cards.max()) + 1
            if needed > len(self.falsely_declined_cards):
                grown = np.zeros(max(needed, 2 * len(self.falsely_declined_cards)), np.bool_)
                grown[: len(self.falsely_declined_cards)] = self.falsely_declined_cards
                self.falsely_declined_cards = grown
            self.falsely_declined_cards[cards] = True

    def absorb(self, other: RunSummary) -> None:
        """Add ``other``'s counts (another shard's: its cards are its own, so the falsely
        declined cards of both are their union)."""
        for name in RunSummary.__slots__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "falsely_declined_cards":
                size = max(len(mine), len(theirs))
                union = np.zeros(size, np.bool_)
                union[: len(mine)] |= mine
                union[: len(theirs)] |= theirs
                setattr(self, name, union)
            elif isinstance(mine, list):
                setattr(self, name, [a + b for a, b in zip(mine, theirs, strict=True)])
            else:
                setattr(self, name, mine + theirs)

    def consequences(self) -> Consequences:
        """What the run's decisions did so far, as the cost model counts it."""
        return Consequences(
            approved_fraud=self.approved_fraud,
            approved_fraud_pence=self.approved_fraud_pence,
            false_declines=self.false_declines,
            false_decline_pence=self.false_decline_pence,
            false_declined_cards=int(np.count_nonzero(self.falsely_declined_cards)),
            reviewed=self.reviewed,
            challenged=self.challenged,
            abandoned=self.abandoned,
            abandoned_pence=self.abandoned_pence,
            liability_shifted=self.liability_shifted,
            friendly_fraud=self.friendly_fraud,
            friendly_fraud_pence=self.friendly_fraud_pence,
        )

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
            # the same ground truth priced in one currency (the amounts above add currencies)
            "costs": cost_breakdown(self.consequences(), CostModel()).model_dump(mode="json"),
            "unpriced": self.unpriced,
            "scenarios": {
                name: {"rows": self.scenario_rows[i], "caught": self.scenario_caught[i]}
                for i, name in enumerate(LABELLED_SCENARIOS)
            },
        }
