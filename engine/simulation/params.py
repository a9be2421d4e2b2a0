"""What a simulation run is (:class:`SimulationParams`) and what it did (:class:`RunRecord`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from engine.costs import CostBreakdown
from engine.models import UtcDateTime

SCENARIOS: tuple[str, ...] = (
    "stolen_card",
    "card_testing",
    "account_takeover",
    "compromised_merchant",
    "counterfeit",
)
"""The fraud scenarios: their rows are fraud (``is_fraud``), mixed as ``scenario_mix`` says."""
FRIENDLY_FRAUD = "friendly_fraud"
LABELLED_SCENARIOS: tuple[str, ...] = (*SCENARIOS, FRIENDLY_FRAUD)
"""Every scenario a row can be labelled with (``fraud_scenario``): the fraud scenarios, then
friendly fraud, a genuine payment its own cardholder later disputes (not fraud: ``is_fraud`` is
false), made at ``friendly_fraud_rate``."""
Difficulty = Literal["easy", "realistic", "hard"]
MAX_CARDS = 2_000_000
MAX_MERCHANTS = 1_000_000
MAX_DEVICES = 10_000_000
DEFAULT_START = datetime(2026, 1, 1)  # naive UTC, like every stored timestamp
RunStatus = Literal["running", "completed", "failed", "interrupted"]
# Money in a run summary: stored as exact decimal strings, Decimal in Python, numbers in JSON
# (the one JSON type of money in the API, as ``engine.models.Money``).
SUMMARY_MONEY_KEYS = ("amount", "fraud_amount", "fraud_loss")


@dataclass(frozen=True, slots=True)
class Knobs:
    """How hard a run's world is: the difficulty knobs, resolved (see :data:`PRESETS`)."""

    overlap: float  # share of fraud episodes that mimic the card's own behaviour
    missed_disputes: float  # share of fraud rows nobody ever disputes
    false_disputes: float  # share of genuine rows disputed as fraud anyway
    drift: float  # 0: the mix and behaviour hold all run; 1: they move fully by the end
    friendly_fraud_rate: float  # share of rows that are friendly fraud
    adaptation: float  # share of card-testing and stolen-card attackers that adapt to declines


PRESETS: dict[str, Knobs] = {
    # today's world: every fraud row disputed, nothing else; fraud looks like its scenario
    "easy": Knobs(overlap=0.0, missed_disputes=0.0, false_disputes=0.0, drift=0.0,
                  friendly_fraud_rate=0.0, adaptation=0.0),
    "realistic": Knobs(overlap=0.35, missed_disputes=0.15, false_disputes=0.0003, drift=0.5,
                       friendly_fraud_rate=0.002, adaptation=0.5),
    "hard": Knobs(overlap=0.6, missed_disputes=0.35, false_disputes=0.001, drift=1.0,
                  friendly_fraud_rate=0.004, adaptation=1.0),
}  # fmt: skip
"""The difficulty presets (README "Difficulty"); explicit knobs override the preset's."""
KNOB_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Knobs))


def _share(description: str, high: float = 1.0) -> Any:
    return Field(None, ge=0.0, le=high, allow_inf_nan=False, description=description)


def _count(description: str, high: int) -> Any:
    return Field(None, ge=1, le=high, description=description)


MIN_SPLIT_ROWS = 50_000  # runs up to this size are written in one chunk: too small to gain
ROW_GROUP_ROWS = 122_880
"""DuckDB's row group (its storage default): an append of whole row groups is written straight
to the file at commit, while a partial one goes to the WAL and is rewritten by the next
checkpoint; chunks of whole row groups leave the checkpoint only the run's last rows."""


class SimulationParams(BaseModel):
    """Parameters of a run. Everything except ``chunk_rows`` determines the rows: the same
    parameters (and card key) give identical rows whatever the chunk size."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int = Field(ge=1, le=2_000_000_000, description="Number of payments to generate.")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of every random process.")
    days: int = Field(30, ge=1, le=3650, description="Simulated days the payments span.")
    fraud_rate: float = Field(
        0.01, ge=0.0, le=0.5, allow_inf_nan=False, description="Expected share of fraud rows."
    )
    scenario_mix: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(SCENARIOS, 1.0),
        description="Relative weight of each fraud scenario's rows (names: "
        + ", ".join(SCENARIOS)
        + ").",
    )
    start: datetime = Field(DEFAULT_START, description="Simulated start time (naive UTC).")
    difficulty: Difficulty = Field(
        "realistic",
        description="Preset of the difficulty knobs: easy, realistic or hard (README "
        "'Difficulty'); a knob given explicitly overrides the preset's value.",
    )
    overlap: float | None = _share(
        "Share of fraud episodes that mimic the card's own behaviour: its usual device and "
        "channel, amounts from its own profile, a slower pace. Default: the difficulty's."
    )
    missed_disputes: float | None = _share(
        "Share of fraud rows never disputed (they stay unlabelled). Default: the difficulty's."
    )
    false_disputes: float | None = _share(
        "Share of genuine rows disputed as fraud anyway. Default: the difficulty's.", 0.05
    )
    drift: float | None = _share(
        "How far the scenario mix and the fraudsters' behaviour move by the end of the run "
        "(0: not at all, 1: fully). Default: the difficulty's."
    )
    friendly_fraud_rate: float | None = _share(
        "Expected share of rows that are friendly fraud (genuine payments their cardholder "
        "disputes). Default: the difficulty's.",
        0.1,
    )
    adaptation: float | None = _share(
        "Share of card-testing and stolen-card attackers that watch their own declines and "
        "adapt (amounts just under the threshold that declined them, a slower pace, fresh "
        "devices). Default: the difficulty's."
    )
    cards: int | None = _count(
        "Cards in the population. Default: about 1.5 payments per card and day.", MAX_CARDS
    )
    merchants: int | None = _count(
        "Merchants. Default: one per 5 cards, at least 200 and at most 20,000.", MAX_MERCHANTS
    )
    devices: int | None = _count(
        "Customers' devices (fraudsters' are extra). Default: 0.8 per card.", MAX_DEVICES
    )
    chunk_rows: int = Field(
        ROW_GROUP_ROWS,
        ge=1,
        le=20_000_000,
        description="Rows per write transaction at most (not content), rounded down to whole "
        f"DuckDB row groups ({ROW_GROUP_ROWS:,} rows) when at least one; a run of at most one "
        "row group is written in two halves, so that the second is decided while the first is "
        "written.",
    )

    @property
    def write_chunk_rows(self) -> int:
        """The rows each write transaction takes: ``chunk_rows`` in whole row groups
        (:data:`ROW_GROUP_ROWS`), or for a run of at most one row group half the run (at
        least :data:`MIN_SPLIT_ROWS`). The next chunk is decided while this one is written, so
        more chunks overlap more of the run; whole row groups spare each commit's WAL and the
        checkpoint (benchmarks/README, "Chunks of whole DuckDB row groups")."""
        chunk = self.chunk_rows
        if chunk >= ROW_GROUP_ROWS:
            chunk -= chunk % ROW_GROUP_ROWS
        if self.rows <= ROW_GROUP_ROWS:
            chunk = min(chunk, max(-(-self.rows // 2), MIN_SPLIT_ROWS))
        return chunk

    @field_validator("scenario_mix")
    @classmethod
    def _known_scenarios(cls, mix: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(mix) - set(SCENARIOS))
        if unknown:
            raise ValueError(f"may only name the scenarios {', '.join(SCENARIOS)}")
        if any(not (0.0 <= weight < float("inf")) for weight in mix.values()):
            raise ValueError("must hold finite weights of at least 0")
        if mix and sum(mix.values()) <= 0:
            raise ValueError("must give at least one scenario a positive weight")
        return {name: float(mix.get(name, 0.0)) for name in SCENARIOS}

    @field_validator("start")
    @classmethod
    def _naive_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is not None:
            from datetime import UTC

            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def knobs(self) -> Knobs:
        """The difficulty knobs of this run: the preset's, overridden by those given."""
        preset = PRESETS[self.difficulty]
        return Knobs(
            *(
                getattr(preset, name) if getattr(self, name) is None else getattr(self, name)
                for name in KNOB_NAMES
            )
        )

    def mix_shares(self) -> dict[str, float]:
        """Scenario weights normalized to sum to 1 (all zero when no weight is positive)."""
        total = sum(self.scenario_mix.values())
        return {k: (v / total if total > 0 else 0.0) for k, v in self.scenario_mix.items()}


class RunRecord(BaseModel):
    """A simulation run as recorded in the ``runs`` table."""

    id: int
    status: RunStatus
    created_at: UtcDateTime
    finished_at: UtcDateTime | None
    seed: int
    params: dict[str, Any]
    policy_version: int
    code_version: str
    rows_planned: int
    rows_written: int
    progress: float = Field(description="rows_written / rows_planned, in [0, 1].")
    timings: dict[str, float]
    summary: dict[str, Any] = Field(
        description="Counts so far: rows, approved, approval_rate, fraud_rows, fraud_caught, "
        "fraud_caught_rate, false_declines, fraud_amount, fraud_loss, per-scenario counts "
        "(friendly_fraud among them: genuine payments, not in fraud_rows); the amounts add the "
        "payments' own currencies. costs: the same ground truth priced by the default cost "
        "model in GBP (fraud loss, chargeback fees, false-decline cost, review cost, total, "
        "with the counts they come from; every review-marked payment worked); unpriced: rows "
        "in a currency without a reference rate (counted, not priced)."
    )
    error: str | None

    @field_validator("summary")
    @classmethod
    def _money_is_decimal(cls, summary: dict[str, Any]) -> dict[str, Any]:
        money = {key: Decimal(str(summary[key])) for key in SUMMARY_MONEY_KEYS if key in summary}
        if "costs" in summary:  # stored as JSON numbers: read back through their text
            money["costs"] = CostBreakdown.model_validate(
                {k: str(v) if isinstance(v, float) else v for k, v in summary["costs"].items()}
            )
        return {**summary, **money}

    @field_serializer("summary", when_used="json")
    def _money_as_numbers(self, summary: dict[str, Any]) -> dict[str, Any]:
        money: dict[str, Any] = {
            key: float(summary[key]) for key in SUMMARY_MONEY_KEYS if key in summary
        }
        if isinstance(summary.get("costs"), CostBreakdown):
            money["costs"] = summary["costs"].model_dump(mode="json")
        return {**summary, **money}
