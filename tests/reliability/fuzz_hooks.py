"""Schemathesis hooks for the live-server run (``make fuzz``, via ``SCHEMATHESIS_HOOKS``).

JSON Schema cannot state these documented rules: a backtest's or ``GET /stats``'s time range must
not be empty (``since < until``), a run id must name a run that exists, a simulation may not ask
for more rows than the server's configured cap (``PTSIM_MAX_SIMULATION_ROWS``), and a scenario
mix needs one positive weight. Positive cases
breaking them are dropped here; the in-process run (tests/reliability/test_fuzz.py) sends them
and requires the documented 400 instead.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import schemathesis


def breaks_a_documented_rule(case: Any, max_rows: int, runs: set[int] | None = None) -> bool:
    """A positive case the schema allows but a documented rule refuses with 400. ``runs``: the
    simulation runs that exist (None: unknown, so any run id counts as naming none)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return False
    if case.path == "/stats":
        query = case.query if isinstance(case.query, dict) else {}
        source = str(query.get("source", "all"))
        if source.isdigit() and (runs is None or int(source) not in runs):
            return True  # a run id that names no run
        return _inverted(query.get("since"), query.get("until"))
    body = case.body if isinstance(case.body, dict) else {}
    if case.path == "/simulations":
        mix = body.get("scenario_mix")
        if isinstance(mix, dict) and mix and all(weight == 0 for weight in mix.values()):
            return True  # at least one scenario weight must be positive
        rows = body.get("rows")
        return isinstance(rows, int | float) and rows > max_rows
    weights = ("weight_device", "weight_ip", "weight_amount", "weight_velocity")
    candidate = body.get("candidate")
    if isinstance(candidate, dict) and all(candidate.get(w, 1) == 0 for w in weights):
        return True  # at least one score weight must be positive
    filters = body.get("filters")
    if not isinstance(filters, dict):
        return False
    run = filters.get("run")
    if isinstance(run, int) and not isinstance(run, bool) and (runs is None or run not in runs):
        return True  # a run id that names no run
    return _inverted(filters.get("since"), filters.get("until"))


def _inverted(since: Any, until: Any) -> bool:
    """Whether both bounds are given and the range [since, until) is empty."""
    if not since or not until:
        return False
    try:
        return _utc(datetime.fromisoformat(since)) >= _utc(datetime.fromisoformat(until))
    except (TypeError, ValueError):
        return False


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _drop_rule_breakers(context: Any, case: Any) -> bool:
    return not breaks_a_documented_rule(
        case, int(os.environ.get("PTSIM_MAX_SIMULATION_ROWS", "5000000"))
    )


# Registered only when the CLI loads this module; the in-process test imports the predicate alone.
if os.environ.get("SCHEMATHESIS_HOOKS") == __name__:
    schemathesis.hook("filter_case")(_drop_rule_breakers)
