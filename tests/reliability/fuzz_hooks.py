"""Schemathesis hooks for the live-server run (``make fuzz``, via ``SCHEMATHESIS_HOOKS``).

JSON Schema cannot state these documented rules: a backtest's or ``GET /stats``'s time range must
not be empty (``since < until``), a run id must name a run that exists, a simulation may not ask
for more rows than the server's configured cap (``PTSIM_MAX_SIMULATION_ROWS``), a scenario
mix needs one positive weight, free text and keys may not hold a card number (engine/pan.py), a
date-time must have a UTC equivalent in the years 1-9999, ``latest`` is at most 10,000 years,
and a list's name and items follow its kind's rules (engine/lists.py).
Positive cases
breaking them are dropped here; the in-process run (tests/reliability/test_fuzz.py) sends them
and requires the documented 400 instead.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import schemathesis
from pydantic import ValidationError

from engine.errors import InvalidRequestError
from engine.filters import RowFilter
from engine.lists import check_name, checked_note, prepare_items
from engine.pan import contains_pan
from engine.rules import RuleError, compile_policy


def breaks_a_documented_rule(
    case: Any, max_rows: int, runs: set[int] | None = None, policies: set[int] | None = None
) -> bool:
    """A positive case the schema allows but a documented rule refuses with 400. ``runs`` and
    ``policies``: the simulation runs and policy versions that exist (None: unknown, so any id
    counts as naming none)."""
    if _holds_a_card_number(case) or _breaks_a_list_rule(case):  # any case: the answer is 400
        return True
    if _breaks_the_rule_language(case):
        return True
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return False
    if case.path == "/stats":
        query = case.query if isinstance(case.query, dict) else {}
        source = str(query.get("source", "all"))
        if source.isdigit() and (runs is None or int(source) not in runs):
            return True  # a run id that names no run
        return _out_of_range(query) or _inverted(query.get("since"), query.get("until"))
    body = case.body if isinstance(case.body, dict) else {}
    if case.path == "/simulations":
        mix = body.get("scenario_mix")
        if isinstance(mix, dict) and mix and all(weight == 0 for weight in mix.values()):
            return True  # at least one scenario weight must be positive
        rows = body.get("rows")
        return isinstance(rows, int | float) and rows > max_rows
    if case.path == "/compare" and _breaks_a_compare_rule(body, policies):
        return True
    weights = ("weight_device", "weight_ip", "weight_amount", "weight_velocity")
    for candidate in _policy_drafts(case):
        if all(candidate.get(w, 1) == 0 for w in weights):
            return True  # at least one score weight must be positive
    filters = body.get("filters")
    if not isinstance(filters, dict):
        return False
    run = filters.get("run")
    if isinstance(run, int) and not isinstance(run, bool) and (runs is None or run not in runs):
        return True  # a run id that names no run
    return _out_of_range(filters) or _inverted(filters.get("since"), filters.get("until"))


def _policy_drafts(case: Any) -> list[dict[str, Any]]:
    """The draft policies a request body holds: POST /policies itself, /backtest's candidate,
    /compare's a and b when they are drafts."""
    if case.method.upper() != "POST":
        return []
    body = case.body if isinstance(case.body, dict) else {}
    holders = {
        "/policies": [body],
        "/backtest": [body.get("candidate")],
        "/compare": [body.get("a"), body.get("b")],
    }.get(case.path, [])
    return [holder for holder in holders if isinstance(holder, dict)]


def _breaks_a_compare_rule(body: dict[str, Any], policies: set[int] | None) -> bool:
    """A policy version that does not exist, or labels_as_of given twice with two values or
    without a UTC time in the years 1-9999."""
    for ref in (body.get("a"), body.get("b")):
        named = isinstance(ref, int | float) and not isinstance(ref, bool) and ref == int(ref)
        if named and (policies is None or int(ref) not in policies):
            return True
    top = body.get("labels_as_of")
    filters = body.get("filters") if isinstance(body.get("filters"), dict) else {}
    inner = filters.get("labels_as_of")
    if isinstance(top, str) and _out_of_range({"since": top}):
        return True
    if isinstance(top, str) and isinstance(inner, str):
        try:
            return _utc(datetime.fromisoformat(top)) != _utc(datetime.fromisoformat(inner))
        except (ValueError, OverflowError):
            return False
    return False


def _breaks_the_rule_language(case: Any) -> bool:
    """Rules the compiler refuses (syntax, attributes, lists, types, duplicate names: the schema
    says only "a string"), or score weights that are all zero, in any draft of the request."""
    return any(_refused_draft(holder) for holder in _policy_drafts(case))


def _refused_draft(holder: dict[str, Any]) -> bool:
    if "rules" not in holder:
        return False
    weights = holder.get("score_weights")
    if isinstance(weights, dict) and all(
        weights.get(w, 1) == 0 for w in ("device", "ip", "amount", "velocity")
    ):
        return True
    rules = holder["rules"]
    texts = [holder.get("note")] + [
        r.get(part)
        for r in (rules if isinstance(rules, list) else [])
        if isinstance(r, dict)
        for part in ("name", "when")
    ]
    if any(isinstance(text, str) and contains_pan(text) for text in texts):
        return True
    try:
        compile_policy(rules, {})
    except RuleError:
        return True
    return False


def _holds_a_card_number(case: Any) -> bool:
    """An Idempotency-Key, merchant or device id holding a card number is refused (400)."""
    headers = dict(case.headers or {})  # a mapping, not always a dict
    body = case.body if isinstance(case.body, dict) else {}
    keys = [value for name, value in headers.items() if name.lower() == "idempotency-key"]
    texts = [*keys, body.get("merchant"), body.get("device_id")]
    return any(isinstance(text, str) and contains_pan(text) for text in texts)


def _breaks_a_list_rule(case: Any) -> bool:
    """A list name, note or item the engine refuses (the schema says only "strings")."""
    if not case.path.startswith("/lists/"):
        return False
    body = case.body if isinstance(case.body, dict) else {}
    try:
        check_name(str((case.path_parameters or {}).get("name", "")))
        if case.method.upper() == "PUT" and isinstance(body.get("items"), list):
            prepare_items(str(body.get("kind")), body["items"], b"fuzz-card-key-0123456789")
            checked_note(body.get("note") if isinstance(body.get("note"), str) else None)
    except InvalidRequestError:
        return True
    return False


def _out_of_range(fields: dict[str, Any]) -> bool:
    """A since/until with no UTC time in the years 1-9999, or a latest over 10,000 years."""
    for name in ("since", "until", "labels_as_of"):
        try:
            _utc(datetime.fromisoformat(fields[name]))
        except OverflowError:
            return True
        except (KeyError, TypeError, ValueError):
            pass
    latest = fields.get("latest")
    if isinstance(latest, str):
        try:
            return RowFilter(latest=latest).latest is None
        except ValidationError as exc:
            return "10,000 years" in str(exc)
    return False


def _inverted(since: Any, until: Any) -> bool:
    """Whether both bounds are given and the range [since, until) is empty."""
    if not since or not until:
        return False
    try:
        return _utc(datetime.fromisoformat(since)) >= _utc(datetime.fromisoformat(until))
    except (TypeError, ValueError, OverflowError):
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
