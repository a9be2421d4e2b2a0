"""Results the dashboard reuses while the data they were computed from has not changed.

Streamlit reruns a page's whole script on every interaction, and a page opened again (from the
sidebar, in a second tab, by a second analyst) asks again. A result is reused only while the
data it reads is unchanged (:func:`engine.analytics.data_version`: a backtest over one completed
run stays valid while live payments flow), so new rows or a new active policy always give a fresh
result.
"""

from __future__ import annotations

from functools import lru_cache

from engine import analytics
from engine.backtest import BacktestResult
from engine.compare import Comparison
from engine.costs import CostModel
from engine.filters import RowFilter
from engine.policy import Policy
from engine.service import Engine


def backtest(
    eng: Engine, candidate: Policy, filters: RowFilter, costs: CostModel | None = None
) -> BacktestResult:
    """``eng.backtest(candidate, filters, costs)``, reused while the data and the active policy
    are unchanged (the version is read before computing, so a write racing the query makes the
    next call recompute rather than keep a stale result)."""
    version = analytics.data_version(eng.store, filters)
    return _backtest(eng, version, eng.active_policy(), candidate, filters, costs or CostModel())


@lru_cache(maxsize=16)
def _backtest(
    eng: Engine,
    version: object,
    active: Policy,
    candidate: Policy,
    filters: RowFilter,
    costs: CostModel,
) -> BacktestResult:
    # version and active are part of the key only: the engine reads both itself
    return eng.backtest(candidate, filters, costs)


def compare(eng: Engine, a: Policy, b: Policy, filters: RowFilter, costs: CostModel) -> Comparison:
    """``eng.compare(a, b, filters, costs)``, reused while the data is unchanged."""
    return _compare(eng, analytics.data_version(eng.store, filters), a, b, filters, costs)


@lru_cache(maxsize=16)
def _compare(
    eng: Engine, version: object, a: Policy, b: Policy, filters: RowFilter, costs: CostModel
) -> Comparison:
    return eng.compare(a, b, filters, costs)
