"""The dashboard's result cache: reused while the data is unchanged, fresh after any write."""

from __future__ import annotations

from engine.costs import CostModel
from engine.filters import RowFilter
from engine.policy import Policy
from workbench import cache

CANDIDATE = Policy.from_knobs(score_threshold=0.5)


def count_backtests(engine, monkeypatch) -> list[int]:
    calls: list[int] = []
    real = type(engine).backtest

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(engine), "backtest", counted)
    return calls


def test_backtest_is_reused_until_a_payment_changes_the_data(seeded, monkeypatch):
    calls = count_backtests(seeded, monkeypatch)
    first = cache.backtest(seeded, CANDIDATE, RowFilter())
    assert cache.backtest(seeded, CANDIDATE, RowFilter()) is first
    assert len(calls) == 1
    seeded.authorize({"card_number": "4111111111111111", "amount": "12.00", "merchant": "Shop"})
    fresh = cache.backtest(seeded, CANDIDATE, RowFilter())
    assert len(calls) == 2 and fresh.candidate.rows == first.candidate.rows + 1


def test_backtest_differs_per_candidate_filter_and_active_policy(seeded, monkeypatch):
    calls = count_backtests(seeded, monkeypatch)
    cache.backtest(seeded, CANDIDATE, RowFilter())
    cache.backtest(seeded, Policy.from_knobs(score_threshold=0.6), RowFilter())
    cache.backtest(seeded, CANDIDATE, RowFilter(run=1))
    assert len(calls) == 3
    seeded.activate_policy(Policy.from_knobs(velocity_limit=5), "test")
    after = cache.backtest(seeded, CANDIDATE, RowFilter())
    assert len(calls) == 4 and after.active_policy.knobs.velocity_limit == 5


def test_backtest_is_reused_per_cost_model(seeded, monkeypatch):
    calls = count_backtests(seeded, monkeypatch)
    default = cache.backtest(seeded, CANDIDATE, RowFilter())
    assert cache.backtest(seeded, CANDIDATE, RowFilter(), CostModel()) is default
    eur = cache.backtest(seeded, CANDIDATE, RowFilter(), CostModel(currency="EUR"))
    assert len(calls) == 2 and eur.cost_model.currency == "EUR"
    assert cache.backtest(seeded, CANDIDATE, RowFilter(), CostModel(currency="EUR")) is eur
