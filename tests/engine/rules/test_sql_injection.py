"""No text of a rule reaches SQL: values are bound parameters, so hostile strings in literals,
tuples and list items are matched as plain data and the SQL text does not depend on them."""

from __future__ import annotations

import pytest
from rules_db import database, numpy_matches, row, sql_matches

from engine.rules import ListSpec, compile_policy

PAYLOADS = [
    "'; DROP TABLE transactions; --",
    "' OR '1'='1",
    "it's",
    "back\\slash\\' --",
    'double "quotes"',
    "ünïcødé ☃ 𝄞 \u202e",
    "$1",
    "$rule_0",
    "?",
    "%s %(x)s {0}",
    "line\nbreak",
    "x'); SELECT 1; --",
]


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def policy_for(payload: str) -> object:
    return compile_policy(
        [
            {"name": "eq", "action": "block", "when": f":merchant: = {quoted(payload)}"},
            {"name": "tuple", "action": "block", "when": f":merchant: in ({quoted(payload)}, 'x')"},
            {"name": "list", "action": "block", "when": ":device_id: in @hostile-list.v2"},
            {"name": "ne", "action": "review", "when": f":device_id: != {quoted(payload)}"},
        ],
        {"hostile-list.v2": ListSpec("device", [payload, "other"])},
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_strings_are_data(payload: str) -> None:
    policy = policy_for(payload)
    rows = [row(merchant=payload, device_id=payload), row(merchant="m1", device_id="d1")]
    con = database(rows)
    by_sql = sql_matches(con, policy)
    assert by_sql.tolist() == [[True, False], [True, False], [True, False], [False, True]]
    assert numpy_matches(policy, rows).tolist() == by_sql.tolist()
    assert con.execute("SELECT count(*) FROM transactions").fetchone() == (2,)


def test_the_sql_text_does_not_depend_on_the_values() -> None:
    plans = [policy_for(payload).sql(prefix="p_") for payload in PAYLOADS]
    texts = {"\n".join(plan.rules + plan.words) for plan in plans}
    assert len(texts) == 1
    text = texts.pop()
    assert "DROP" not in text and "hostile" not in text and "''" not in text
    for plan, payload in zip(plans, PAYLOADS, strict=True):
        assert plan.params["p_0"] == payload
        assert plan.params["p_list_0"] == [payload, "other"]


def test_numbers_reach_sql_as_parameters_or_integers_the_compiler_wrote() -> None:
    policy = compile_policy(
        [
            {"name": "exact", "action": "block", "when": ":amount: > 500.005"},
            {"name": "float", "action": "block", "when": ":random: * 3 < 0.3"},
        ]
    )
    plan = policy.sql(prefix="p_")
    assert plan.rules[0] == "coalesce((amount > 500.00), FALSE)"  # from 50000 hundredths
    assert "0.3" not in plan.rules[1] and plan.params == {"p_0": 3.0, "p_1": 0.3}


def test_the_parameter_prefix_must_be_an_identifier() -> None:
    policy = compile_policy([{"name": "r", "action": "block", "when": ":merchant: = 'a'"}])
    with pytest.raises(ValueError, match="identifier"):
        policy.sql(prefix="x; DROP")
