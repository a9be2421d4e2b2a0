"""The promise of one compiler, three paths: random rules over random rows give the same matches
and the same decisions from the numpy evaluator on small groups (live), on one chunk (bulk) and
from the DuckDB SQL over a real table with the stored column types, NULLs included (backtest).

The generated rules use every operator, lists of each kind, literal tuples, arithmetic (with
division by zero and overflow), nested not/and/or and attributes that can be missing; values are
drawn from small pools that collide with the literals, so boundaries are hit often. Every action
is generated, challenge included: the challenge outcome (engine/challenge.py) of each row, from
its stored challenge_draw, channel and ground truth (NULL for live rows), must be the same in
numpy and in SQL, and so must the decision it settles.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rules_db import database, inputs, row, sql_matches

from engine.challenge import PASSED, ChallengeModel
from engine.rules import Action, Coded, ListSpec, action_from_words_sql, compile_policy

MONEY = ["amount", "amount_in_gbp", "amount_per_card_24h"]
INTEGERS = [
    "payments_per_card_1h", "payments_per_card_24h", "payments_per_device_1h",
    "cards_per_device_24h", "devices_per_card_7d", "card_age_days", "hour_of_day", "day_of_week",
]  # fmt: skip
DOUBLES = ["spending_velocity", "device_trust_score", "ip_risk_score", "risk_score", "random"]
HOSTILE = "'; DROP TABLE transactions; --"
TEXT_VALUES = {
    "merchant": ["m1", "m2", "", "it's", "ü☃", HOSTILE, "012345"],
    "device_id": ["d1", "d2", "m1", "$1", "?"],
    "currency": ["GBP", "EUR", "XAF", "USD"],
    "channel": ["pos", "ecommerce", "moto"],
    "card_bin": ["412345", "012345", "999999", "12345", "abcdef"],
}
CARDS = [bytes(range(16)), b"\xff" * 16, b"\x00" * 15 + b"\x01"]
LISTS = {
    "cards": ListSpec("card", [CARDS[0], uuid.UUID(bytes=CARDS[1])]),
    "bins": ListSpec("bin", ["412345", "012345"]),
    "devices": ListSpec("device", ["d1", "$1", "'"]),
    "merchants": ListSpec("merchant", ["m2", HOSTILE, "ü☃"]),
    "currencies": ListSpec("currency", ["EUR", "XAF"]),
    "words": ListSpec("text", ["m1", "d2", "GBP", "pos", "999999", "12345"]),
    "empty": ListSpec("text", []),
}
LIST_OF = {
    "card": ["cards"],
    "card_bin": ["bins", "words", "empty"],
    "device_id": ["devices", "words"],
    "merchant": ["merchants", "words"],
    "currency": ["currencies", "words"],
    "channel": ["words"],
}
NUMBER_LITERALS = [
    "0", "1", "2", "3", "5", "23", "0.1", "0.2", "0.3", ".5", "1.5", "5.005", "500", "500.00",
    "500.01", "499.995", "1000000", "-1", "-0.5", "99999999999999999999999",
]  # fmt: skip
COMPARISONS = ["=", "!=", "<", "<=", ">", ">="]


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


number_literal = st.one_of(
    st.sampled_from(NUMBER_LITERALS),
    st.decimals(min_value=-1000, max_value=1000, places=3).map(str),
)
number_atom = st.one_of(
    st.sampled_from(MONEY + INTEGERS + DOUBLES).map(lambda a: f":{a}:"), number_literal
)
number = st.recursive(
    number_atom,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from("+-*/"), inner).map(lambda x: f"({x[0]} {x[1]} {x[2]})"),
        st.tuples(inner, st.sampled_from("+-*/"), inner).map(lambda x: f"{x[0]} {x[1]} {x[2]}"),
        inner.map(lambda x: f"-({x})"),
    ),
    max_leaves=4,
)


@st.composite
def text_comparison(draw: st.DrawFn) -> str:
    attribute = draw(st.sampled_from(list(TEXT_VALUES)))
    other = draw(
        st.one_of(
            st.sampled_from(TEXT_VALUES[attribute]).map(quoted),
            st.sampled_from(["merchant", "device_id", "card_bin"]).map(lambda a: f":{a}:"),
        )
    )
    if attribute in ("currency", "channel") and draw(st.booleans()):
        other = f":{attribute}:"
    return f":{attribute}: {draw(st.sampled_from(['=', '!=']))} {other}"


@st.composite
def membership(draw: st.DrawFn) -> str:
    negation = draw(st.sampled_from(["in", "not in", "NOT IN"]))
    choice = draw(st.sampled_from(["number", "text", "list"]))
    if choice == "number":
        items = draw(st.lists(number_literal, min_size=1, max_size=3))
        return f"{draw(number)} {negation} ({', '.join(items)})"
    if choice == "text":
        attribute = draw(st.sampled_from(list(TEXT_VALUES)))
        items = draw(st.lists(st.sampled_from(TEXT_VALUES[attribute]), min_size=1, max_size=3))
        return f":{attribute}: {negation} ({', '.join(map(quoted, items))})"
    attribute = draw(st.sampled_from(list(LIST_OF)))
    return f":{attribute}: {negation} @{draw(st.sampled_from(LIST_OF[attribute]))}"


bool_atom = st.sampled_from([":has_device:", ":is_new_device:", "true", "FALSE"])
condition_atom = st.one_of(
    st.tuples(number, st.sampled_from(COMPARISONS), number).map(" ".join),
    text_comparison(),
    membership(),
    bool_atom,
    st.tuples(bool_atom, st.sampled_from(["=", "!="]), bool_atom).map(" ".join),
)
condition = st.recursive(
    condition_atom,
    lambda inner: st.one_of(
        inner.map(lambda c: f"not ({c})"),
        st.tuples(inner, st.sampled_from(["and", "or", "AND", "Or"]), inner).map(" ".join),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda x: f"({x[0]}) {x[1]} ({x[2]})"
        ),
    ),
    max_leaves=5,
)
policy_rules = st.lists(
    st.tuples(st.sampled_from(["allow", "challenge", "block", "review"]), condition),
    min_size=1,
    max_size=4,
).map(
    lambda rules: [{"name": f"rule {i}", "action": a, "when": w} for i, (a, w) in enumerate(rules)]
)

money = st.one_of(
    st.sampled_from(["0", "0.01", "0.10", "0.30", "1.00", "5.00", "5.01", "500.00", "500.01"]),
    st.decimals(min_value=0, max_value=1_000_000, places=2).map(str),
).map(Decimal)
double = st.one_of(
    st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.30000000000000004, 0.5, 1.0]),
    st.floats(min_value=0.0, max_value=1.0),
)
count = st.one_of(st.sampled_from([0, 1, 2, 3, 5, 23]), st.integers(0, 40))


@st.composite
def stored_row(draw: st.DrawFn) -> dict:
    device = draw(st.one_of(st.none(), st.sampled_from(TEXT_VALUES["device_id"])))
    gbp = draw(st.one_of(st.none(), money))
    return row(
        created_at=draw(st.integers(1_767_225_600_000, 1_767_225_600_000 + 14 * 86_400_000)),
        card_hash=draw(st.sampled_from(CARDS)),
        card_bin=draw(st.sampled_from([412345, 12345, 999999, 100000])),
        amount=draw(money),
        amount_in_gbp=gbp,
        currency="XAF" if gbp is None else draw(st.sampled_from(["GBP", "EUR", "USD"])),
        merchant=draw(st.sampled_from(TEXT_VALUES["merchant"])),
        channel=draw(st.sampled_from(TEXT_VALUES["channel"])),
        device_id=device,
        spending_velocity=draw(double),
        device_trust_score=draw(double),
        ip_risk_score=draw(double),
        score=draw(double),
        velocity_count=draw(count),
        device_seen_count=draw(count),
        payments_per_card_24h=draw(count),
        amount_per_card_24h=draw(money),
        payments_per_device_1h=None if device is None else draw(count),
        cards_per_device_24h=None if device is None else draw(count),
        devices_per_card_7d=draw(count),
        card_age_days=draw(count),
        draw=draw(double),
        challenge_draw=draw(double),
        is_fraud=draw(st.sampled_from([None, False, True])),
    )


rate = st.one_of(st.sampled_from([0.0, 0.05, 0.3, 0.5, 0.85, 1.0]), st.floats(0.0, 1.0))
challenge_models = st.builds(
    ChallengeModel, ecommerce_pass_rate=rate, other_pass_rate=rate, fraud_pass_rate=rate
)


def coded(values: dict[str, np.ndarray]) -> dict[str, object]:
    """Text and card columns as codes into labels (as bulk chunks carry them), with a label no
    row uses."""
    result: dict[str, object] = dict(values)
    for name in ("merchant", "device_id", "currency", "channel", "card_bin", "card"):
        column = values[name]
        spare = {"card": b"\x07" * 16, "card_bin": 777777}.get(name, "unused")
        labels = sorted({v for v in column.tolist() if v is not None} | {spare})
        index = {label: i for i, label in enumerate(labels)}
        codes = np.array([index.get(v, -1) for v in column.tolist()], dtype=np.int32)
        result[name] = Coded(codes, np.array(labels, dtype=column.dtype))
    return result


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=policy_rules,
    rows=st.lists(stored_row(), min_size=1, max_size=12),
    cut=st.integers(0, 12),
    dictionary_encoded=st.booleans(),
    model=challenge_models,
)
def test_numpy_groups_numpy_chunks_and_sql_agree(
    rules: list[dict], rows: list[dict], cut: int, dictionary_encoded: bool, model: ChallengeModel
) -> None:
    policy = compile_policy(rules, LISTS)
    values, missing = inputs(rows)

    chunk_values = coded(values) if dictionary_encoded else values
    chunk = policy.matches(chunk_values, missing, n_rows=len(rows))  # the bulk path: one chunk
    cut = min(cut, len(rows))
    groups = [  # the live path: the same rows in two groups
        policy.matches(
            {k: v[part] for k, v in values.items()},
            {k: v[part] for k, v in missing.items()},
            n_rows=len(range(len(rows))[part]),
        )
        for part in (slice(0, cut), slice(cut, None))
    ]
    con = database(rows)
    by_sql = sql_matches(con, policy)  # the backtest: SQL over stored rows

    assert np.concatenate(groups, axis=1).tolist() == chunk.tolist()
    assert by_sql.tolist() == chunk.tolist(), [r["when"] for r in rules]
    truth = np.array([r["is_fraud"] is True for r in rows])
    ecommerce = np.array([r["channel"] == "ecommerce" for r in rows])
    outcomes = model.outcomes(np.array([r["challenge_draw"] for r in rows]), ecommerce, truth)
    sql_outcomes, sql_codes = _sql_challenge(con, policy, model)
    assert sql_outcomes.tolist() == outcomes.tolist()
    passed, sql_passed = outcomes == PASSED, sql_outcomes == PASSED
    decided = policy.decide_matches(chunk, passed)
    from_sql = policy.decide_matches(by_sql, sql_passed)
    for field in ("rule_index", "action", "approved", "review"):
        assert getattr(decided, field).tolist() == getattr(from_sql, field).tolist()
    # the comparisons' SQL decision: the action, a challenge's as CHALLENGE + its outcome
    challenged = decided.action == Action.CHALLENGE
    assert sql_codes.tolist() == np.where(challenged, Action.CHALLENGE + outcomes,
                                          decided.action).tolist()  # fmt: skip
    assert not (decided.approved & challenged & ~passed).any()


def _sql_challenge(con, policy, model: ChallengeModel) -> tuple[np.ndarray, np.ndarray]:
    """Each row's challenge outcome and its decision code (action_from_words_sql with the
    outcome folded in) as DuckDB computes them over the stored rows."""
    plan = policy.sql(risk_score_sql="score")
    words = [f"{w} AS w{i}" for i, w in enumerate(plan.words)]
    code = action_from_words_sql(
        [f"w{i}" for i in range(len(words))], policy.actions, f"{int(Action.CHALLENGE)} + o"
    )
    rows = con.execute(
        f"SELECT o, {code} FROM (SELECT id, {', '.join(words)}, {model.outcome_sql()} AS o "
        "FROM transactions) ORDER BY id",
        plan.params,
    ).fetchall()
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
