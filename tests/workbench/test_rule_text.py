"""The workbench's rule text: blocks round-trip, and engine errors land on the typed line."""

from __future__ import annotations

import pytest

from engine.policy import DEFAULT_POLICY, Policy
from engine.rules import RuleError
from engine.service import Engine
from workbench import charts, rule_text


@pytest.fixture(scope="module")
def eng(tmp_path_factory):
    with Engine.open(tmp_path_factory.mktemp("rt") / "r.duckdb", seed=3, card_key="") as e:
        yield e


def located(eng: Engine, text: str) -> rule_text.TextError:
    blocks = rule_text.parse(text)
    with pytest.raises(RuleError) as caught:
        eng.draft_policy(rule_text.rules(blocks))
    return rule_text.locate(caught.value, blocks)


def test_rendered_rules_parse_back_to_the_same_policy(eng):
    policy = Policy.from_knobs(score_threshold=0.5, velocity_limit=4)
    blocks = rule_text.parse(rule_text.render(policy.rules))
    assert eng.draft_policy(rule_text.rules(blocks)).rules == policy.rules
    assert "flags_risk: false" in rule_text.render(DEFAULT_POLICY.rules)


def test_an_error_on_a_continued_condition_line_keeps_its_column(eng):
    text = "name: a\naction: block\nwhen: :amount: > 5\n  and :nope: < 1\n"
    assert located(eng, text) == rule_text.TextError(
        "unknown attribute :nope:", 4, 7, "rules[0].when"
    )


def test_an_error_on_the_first_condition_line_counts_the_when_prefix(eng):
    error = located(eng, "# a comment\nname: a\naction: block\nwhen:   :amount: > 5 and :x < 1")
    assert (error.line, error.column) == (4, 26)


def test_action_and_missing_fields_point_at_their_rule(eng):
    error = located(
        eng, "name: a\naction: block\nwhen: :amount: > 5\n\nname: b\naction: blok\nwhen: true"
    )
    assert (error.line, error.column, error.field) == (6, 9, "rules[1].action")
    error = located(eng, "name: a\naction: block\nwhen: :amount: > 5\n\nname: b\nwhen: true")
    assert (error.line, error.field) == (5, "rules[1].action")


@pytest.mark.parametrize(
    ("text", "line"),
    [("", 1), ("name: a\nname: b", 2), ("  stray", 1), ("name: a\naction: block\nstray", 3)],
)
def test_text_that_is_not_rule_blocks_is_refused_at_its_line(text, line):
    with pytest.raises(rule_text.RuleTextError) as caught:
        rule_text.parse(text)
    assert caught.value.error.line == line


def test_rule_figures_and_overlap_come_from_the_backtest(eng):
    from engine.simulation.params import SimulationParams

    eng.simulate(SimulationParams(rows=3000, seed=3, days=3, fraud_rate=0.05))
    result = eng.backtest(Policy.from_knobs(score_threshold=0.5, velocity_limit=3))
    table = charts.rule_table(result)
    assert list(table["rule"]) == [r.name for r in result.rules]
    assert list(table["unique fraud"]) == [r.unique_fraud for r in result.rules]
    heat = charts.overlap_heatmap(result).data[0]
    n = len([r for r in result.rules if r.action != "allow"])
    assert len(heat.z) == n and heat.z[0][0] is None
    cell = result.overlap[0]
    names = [r.name for r in result.rules if r.action != "allow"]
    i, j = names.index(cell.a), names.index(cell.b)
    assert heat.z[i][j] == heat.z[j][i] == cell.fraud_both
