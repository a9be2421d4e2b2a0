"""Row filters shared by the backtest and the dashboard analytics: which stored rows to read.

A filter becomes one parameterized SQL ``WHERE`` clause; values never enter the SQL text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from engine.currencies import ISO_4217
from engine.models import Channel

RunSelector = Literal["all", "live"] | int
# An ISO 4217 code; the schema lists them (lower case is accepted and normalized, as in payments).
CurrencyCode = Annotated[str, Field(json_schema_extra={"enum": sorted(ISO_4217)})]
_RUNS = ("all", "live")
# ``latest`` is subtracted from a stored timestamp in SQL; 10,000 years keeps the result inside
# DuckDB's timestamp range (pydantic alone takes up to 999,999,999 days, which overflows it).
MAX_LATEST = timedelta(days=3_652_500)
_RUN_RULE = "must be 'all', 'live' or a positive run id"


class RowFilter(BaseModel):
    """Which transactions to include.

    ``run``: ``"all"`` (default), ``"live"`` (live traffic only, ``run_id IS NULL``) or a
    simulation run id. ``since``/``until``: half-open ``[since, until)`` on ``created_at``
    (naive UTC; simulation rows carry simulated event time). ``latest``: only rows within this
    span before the newest row the other conditions select (a "last 24 hours" that works for
    simulated time too). ``channels``/``currencies``: keep only these values (empty = all); each
    must be a valid channel or ISO 4217 code (a valid value absent from the data selects no
    rows; whether a run id exists is checked by the engine, which knows the runs).
    ``labels_as_of`` selects no rows: it says which labels a backtest counts
    (:func:`engine.backtest.label_sql`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run: RunSelector = "all"
    since: datetime | None = None
    until: datetime | None = None
    latest: timedelta | None = Field(
        None, description="Only the rows within this span before the newest selected row."
    )
    labels_as_of: datetime | None = Field(
        None,
        description="Backtests only: count the labels known at this time, not every label "
        "stored (a simulated fraud row is fraud once its label_available_at has passed, else it "
        "looks legitimate; a live row is fraud once a fraud dispute was reported).",
    )
    channels: tuple[Channel, ...] = Field(default=(), max_length=20)
    currencies: tuple[CurrencyCode, ...] = Field(default=(), max_length=200)

    @field_validator("since", "until", "latest", "labels_as_of", mode="before")
    @classmethod
    def _no_bare_numbers(cls, value: Any) -> Any:
        # The schema says ISO 8601 strings; pydantic's lax mode would take numbers as seconds.
        if isinstance(value, int | float | Decimal):  # Decimal: bodies read with exact numbers
            raise ValueError("must be an ISO 8601 string (a date-time or a duration), not a number")
        return value

    @field_serializer("latest", when_used="json")
    def _rfc3339_duration(self, value: timedelta | None) -> str | None:
        # pydantic writes e.g. "P72Y173D", which RFC 3339 durations (the schema's "duration"
        # format) do not allow; whole seconds as "PT<n>S" are valid in both standards.
        if value is None:
            return None
        seconds = value.total_seconds()
        return f"PT{int(seconds)}S" if seconds == int(seconds) else f"PT{seconds}S"

    @field_validator("run", mode="before")
    @classmethod
    def _run_is_name_or_integer(cls, value: Any) -> Any:
        # The schema says "all" | "live" | integer; lax mode would take "5", 5.0 or true.
        if isinstance(value, bool | float) or (isinstance(value, str) and value not in _RUNS):
            raise ValueError(_RUN_RULE)
        return value

    @field_validator("run")
    @classmethod
    def _positive_run_id(cls, value: RunSelector) -> RunSelector:
        if isinstance(value, int) and value < 1:
            raise ValueError(_RUN_RULE)
        return value

    @field_validator("since", "until", "labels_as_of")
    @classmethod
    def _utc_in_range(cls, value: datetime | None) -> datetime | None:
        return utc_in_range(value)

    @field_validator("until")
    @classmethod
    def _after_since(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        since = info.data.get("since")
        if value is not None and since is not None and naive_utc(since) >= naive_utc(value):
            raise ValueError("must be later than 'since'")
        return value

    @field_validator("latest")
    @classmethod
    def _positive_span(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration")
        if value is not None and value > MAX_LATEST:
            raise ValueError("must be at most 3652500 days (10,000 years)")
        return value

    @field_validator("currencies")
    @classmethod
    def _known_currencies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        codes = tuple(code.upper() for code in value)
        if any(code not in ISO_4217 for code in codes):
            raise ValueError("must hold ISO 4217 currency codes such as GBP, EUR or USD")
        return codes

    def where(self) -> tuple[str, dict[str, Any]]:
        """``(sql, params)``: a ``WHERE`` clause (``"WHERE true"`` when unfiltered) with named
        parameters ``$f_*`` (DuckDB's ``$name`` style, so other named parameters can join)."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if self.run == "live":
            clauses.append("run_id IS NULL")
        elif isinstance(self.run, int):
            clauses.append("run_id = $f_run")
            params["f_run"] = self.run
        if self.since is not None:
            clauses.append("created_at >= $f_since")
            params["f_since"] = naive_utc(self.since)
        if self.until is not None:
            clauses.append("created_at < $f_until")
            params["f_until"] = naive_utc(self.until)
        for column, values in (("channel", self.channels), ("currency", self.currencies)):
            if values:
                names = [f"f_{column}{i}" for i in range(len(values))]
                clauses.append(f"{column} IN ({', '.join('$' + n for n in names)})")
                params.update(zip(names, values, strict=True))
        if self.latest is not None:
            inner = " AND ".join(clauses) if clauses else "true"
            clauses.append(
                f"created_at >= (SELECT max(created_at) FROM transactions WHERE {inner}) "
                "- $f_latest"
            )
            params["f_latest"] = self.latest
        return "WHERE " + (" AND ".join(clauses) if clauses else "true"), params

    def labels_as_of_utc(self) -> datetime | None:
        """``labels_as_of`` as a naive UTC timestamp (the form stored), or None."""
        return None if self.labels_as_of is None else naive_utc(self.labels_as_of)


def utc_in_range(value: datetime | None) -> datetime | None:
    """``value`` unchanged, or ``ValueError`` when it has no UTC equivalent between the years 1
    and 9999 (``0001-01-01T00:00:00+01:00`` is in year 0 in UTC): a field validator."""
    if value is not None and value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("must be a date-time between the years 1 and 9999 in UTC") from None
    return value


RFC3339_RULE = "must be an RFC 3339 date-time with a time zone, such as 2026-01-31T12:00:00Z"


def _date_time_text(value: Any) -> Any:
    # lax mode would read numbers as Unix seconds; the schema says a date-time string
    if not isinstance(value, str | datetime):
        raise ValueError(RFC3339_RULE)
    return value


def _aware_instant(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(RFC3339_RULE)  # a time without a zone names no instant
    return utc_in_range(value)


AwareDateTime = Annotated[
    datetime, BeforeValidator(_date_time_text), AfterValidator(_aware_instant)
]
"""An instant read from JSON: an RFC 3339 date-time string with a time zone, inside UTC's years
1 to 9999 (Python callers may pass an aware ``datetime``)."""


def naive_utc(value: datetime) -> datetime:
    """``value`` as a naive UTC timestamp (the form DuckDB stores); naive values are kept."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
