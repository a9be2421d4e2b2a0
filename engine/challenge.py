"""The challenge model: what happens when a rule asks for a 3-D Secure step-up.

A ``challenge`` rule sends the payer to a step-up (a 3-D Secure challenge online, a PIN or
biometric prompt elsewhere). Whether they pass is decided by the payment's second stored uniform
draw, ``challenge_draw``, against a pass probability that depends on who is paying and how:

- a genuine cardholder passes with ``ecommerce_pass_rate`` on the ``ecommerce`` channel and
  ``other_pass_rate`` on every other channel, and otherwise **abandons** (a lost sale);
- a fraudster (the row's ground truth ``is_fraud``) passes with ``fraud_pass_rate`` and
  otherwise **fails**.

Live traffic has no ground truth: its payers are taken as genuine (a live challenge is passed or
abandoned, never failed). The model is part of a policy (a validated value stored with each
version), so a stored decision is re-derived from its row and its policy version. The numpy
(:meth:`ChallengeModel.outcomes`) and SQL (:meth:`ChallengeModel.outcome_sql`) forms compare the
same doubles, so the live path, bulk runs and backtests agree row by row. Defaults and their
sources: README, "The challenge model".
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

PASSED, ABANDONED, FAILED = 0, 1, 2
"""Challenge outcome codes (:meth:`ChallengeModel.outcomes`)."""
OUTCOME_NAMES = ("passed", "abandoned", "failed")

Rate = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]


class ChallengeModel(BaseModel):
    """Pass probabilities of a step-up challenge (fractions in [0, 1])."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ecommerce_pass_rate: Rate = Field(
        0.85,
        description="A genuine cardholder passes a 3-D Secure challenge on the ecommerce "
        "channel with this probability (else abandons: a lost sale).",
    )
    other_pass_rate: Rate = Field(
        0.95,
        description="A genuine cardholder passes a step-up on any other channel (PIN or "
        "biometric prompt) with this probability (else abandons).",
    )
    fraud_pass_rate: Rate = Field(
        0.05, description="A fraudster passes a challenge with this probability (else fails)."
    )

    def outcomes(
        self, draw: np.ndarray, ecommerce: np.ndarray, is_fraud: np.ndarray | None = None
    ) -> np.ndarray:
        """Each row's outcome code (int8: PASSED, ABANDONED or FAILED) from its
        ``challenge_draw``, whether it is an ecommerce payment and its ground truth (None: no
        ground truth, every payer genuine): passed when ``draw < rate``."""
        draw = np.asarray(draw, dtype=np.float64)
        genuine_rate = np.where(ecommerce, self.ecommerce_pass_rate, self.other_pass_rate)
        if is_fraud is None:
            return np.where(draw < genuine_rate, PASSED, ABANDONED).astype(np.int8)
        rate = np.where(is_fraud, self.fraud_pass_rate, genuine_rate)
        failed = np.where(is_fraud, FAILED, ABANDONED)
        return np.where(draw < rate, PASSED, failed).astype(np.int8)

    def outcome_sql(self) -> str:
        """:meth:`outcomes` as a DuckDB INTEGER expression over a ``transactions`` row (live
        rows have ``is_fraud`` NULL: genuine). Rates are exact double literals (validated
        numbers, never text)."""

        def lit(value: float) -> str:
            return f"{float(value)!r}::DOUBLE"

        fraud = "coalesce(is_fraud, FALSE)"
        rate = (
            f"CASE WHEN {fraud} THEN {lit(self.fraud_pass_rate)} "
            f"WHEN channel = 'ecommerce' THEN {lit(self.ecommerce_pass_rate)} "
            f"ELSE {lit(self.other_pass_rate)} END"
        )
        return (
            f"(CASE WHEN challenge_draw < {rate} THEN {PASSED} "
            f"WHEN {fraud} THEN {FAILED} ELSE {ABANDONED} END)"
        )
