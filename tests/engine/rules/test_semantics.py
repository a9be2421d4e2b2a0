"""What rules mean (docs/rules.md), each case evaluated by numpy and by DuckDB SQL over a real
table with the stored column types: both must give the expected matches and decisions."""

from __future__ import annotations

import uuid
from decimal import Decimal

import numpy as np
import pytest
from knob_reference import decide
from rules_db import database, inputs, numpy_matches, row, sql_matches

from engine.decision import Reason
from engine.policy import Knobs
from engine.rules import Action, ListSpec, compile_policy, hour_and_weekday

LISTS = {
    "devices": ListSpec("device", ["d1", "d9"]),
    "bins": ListSpec("bin", ["412345", "012345"]),
    "cards": ListSpec("card", [uuid.UUID(bytes=bytes(range(16))), b"\xff" * 16]),
    "words": ListSpec("text", ["m1", "012345", "GBP"]),
}


def matches(when: str, rows: list[dict]) -> list[bool]:
    """One rule's matches on ``rows``, requiring numpy and SQL to agree."""
    policy = compile_policy([{"name": "r", "action": "block", "when": when}], LISTS)
    by_numpy = numpy_matches(policy, rows)
    by_sql = sql_matches(database(rows), policy)
    assert by_numpy.tolist() == by_sql.tolist(), when
    return by_numpy[0].tolist()


NO_DEVICE = {"device_id": None, "payments_per_device_1h": None, "cards_per_device_24h": None}


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (":device_id: = 'd1'", False),
        (":device_id: != 'd1'", False),
        ("not (:device_id: = 'd1')", True),
        (":device_id: in @devices", False),
        (":device_id: not in @devices", False),
        ("not (:device_id: in @devices)", True),
        (":device_id: in ('d1', 'd2')", False),
        (":device_id: not in ('d1', 'd2')", False),
        (":payments_per_device_1h: >= 0", False),
        (":payments_per_device_1h: < 0", False),
        (":payments_per_device_1h: + 1 > 0", False),
        (":cards_per_device_24h: in (0, 1)", False),
        (":cards_per_device_24h: not in (0, 1)", False),
        (":has_device:", False),
        ("not :has_device:", True),
        (":is_new_device:", False),
        (":device_id: = 'd1' or true", True),
        (":device_id: = 'd1' and true", False),
    ],
)
def test_a_comparison_with_a_missing_value_is_false_and_not_and_or_are_two_valued(
    when: str, expected: bool
) -> None:
    assert matches(when, [row(**NO_DEVICE)]) == [expected]


def test_an_amount_without_a_gbp_rate_is_missing() -> None:
    rows = [row(amount_in_gbp=None, currency="XAF"), row(amount_in_gbp=Decimal("600.00"))]
    assert matches(":amount_in_gbp: > 500", rows) == [False, True]
    assert matches(":amount_in_gbp: <= 500", rows) == [False, False]
    assert matches("not (:amount_in_gbp: > 500)", rows) == [True, False]
    assert matches(":amount_in_gbp: * 2 > 0", rows) == [False, True]


def test_a_division_by_zero_is_missing() -> None:
    rows = [row(velocity_count=0), row(velocity_count=2, amount=Decimal("10.00"))]
    assert matches(":amount: / :payments_per_card_1h: >= 5", rows) == [False, True]
    assert matches(":amount: / :payments_per_card_1h: < 5", rows) == [False, False]
    assert matches("not (:amount: / :payments_per_card_1h: >= 5)", rows) == [True, False]
    assert matches(":amount: / (:random: - 0.5) > 0", [row(draw=0.5)]) == [False]


def test_an_overflowing_result_is_missing() -> None:
    huge = "9" * 300
    rows = [row(amount=Decimal("10.00"))]
    assert matches(f":amount: * {huge} * {huge} > 0", rows) == [False]  # inf
    assert matches(f":amount: * {huge} * {huge} - :amount: * {huge} * {huge} = 0", rows) == [
        False
    ]  # inf - inf is NaN
    assert matches(f"not (:amount: * {huge} * {huge} > 0)", rows) == [True]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (":amount: > 500.005", [False, True, False]),
        (":amount: >= 500.005", [False, True, False]),
        (":amount: < 500.005", [True, False, True]),
        (":amount: <= 500.005", [True, False, True]),
        (":amount: = 500.005", [False, False, False]),
        (":amount: != 500.005", [True, True, True]),
        (":amount: = 500", [True, False, False]),
        (":amount: != 500.00", [False, True, True]),
        ("500.005 < :amount:", [False, True, False]),
        (":amount: > -0.001", [True, True, True]),
        (":amount: in (500, 500.005, 0.1)", [True, False, True]),
        (":amount: not in (500, 500.005)", [False, True, True]),
        (":amount: > " + "9" * 40, [False, False, False]),
        (":amount: < " + "9" * 40, [True, True, True]),
        (":amount: > -" + "9" * 40, [True, True, True]),
        (":payments_per_card_1h: > 2.5", [False, True, False]),
        (":payments_per_card_1h: = 3.0", [False, True, False]),
        (":amount: > :payments_per_card_1h: * 100", [True, True, True]),
        (":amount: > :amount_per_card_24h:", [False, True, False]),
        (":amount: >= :amount_per_card_24h:", [True, True, False]),
        (":amount_per_card_24h: > :payments_per_card_1h:", [True, True, True]),
    ],
)
def test_bare_money_and_integer_attributes_compare_exactly(when: str, expected: list[bool]) -> None:
    rows = [
        row(amount=Decimal("500.00"), velocity_count=2, amount_per_card_24h=Decimal("500.00")),
        row(amount=Decimal("500.01"), velocity_count=3, amount_per_card_24h=Decimal("500.00")),
        row(amount=Decimal("0.10"), velocity_count=0, amount_per_card_24h=Decimal("0.11")),
    ]
    assert matches(when, rows) == expected


def test_arithmetic_is_float64() -> None:
    rows = [row(amount=Decimal("0.10")), row(amount=Decimal("0.30"))]
    # 0.1 + 0.2 is not 0.3 in float64, in numpy as in DuckDB.
    assert matches(":amount: + 0.2 = 0.3", rows) == [False, False]
    assert matches(":amount: + 0.2 > 0.3", rows) == [True, True]
    assert matches(":amount: * 3 = 0.9", rows) == [False, False]  # 0.8999999999999999
    assert matches(":amount: * 2 = 0.6", rows) == [False, True]
    assert matches("-:amount: < -0.2", rows) == [False, True]


def test_random_compares_as_a_double() -> None:
    rows = [row(draw=0.3), row(draw=np.nextafter(0.3, 0.0)), row(draw=0.30000000000000004)]
    assert matches(":random: < 0.30", rows) == [False, True, False]
    assert matches(":random: = 0.3", rows) == [True, False, False]


def test_bins_are_six_digit_text_stored_as_integers() -> None:
    rows = [row(card_bin=12345), row(card_bin=412345), row(card_bin=999999)]
    assert matches(":card_bin: = '012345'", rows) == [True, False, False]
    assert matches(":card_bin: = '12345'", rows) == [False, False, False]
    assert matches(":card_bin: != '12345'", rows) == [True, True, True]
    assert matches(":card_bin: in @bins", rows) == [True, True, False]
    assert matches(":card_bin: in @words", rows) == [True, False, False]
    assert matches(":card_bin: not in ('412345', 'x')", rows) == [True, False, True]
    assert matches(":card_bin: = :merchant:", [row(card_bin=12345, merchant="012345")]) == [True]


def test_card_lists_hold_fingerprints_as_uuids_or_bytes() -> None:
    rows = [row(card_hash=bytes(range(16))), row(card_hash=b"\xff" * 16), row(card_hash=b"\0" * 16)]
    assert matches(":card: in @cards", rows) == [True, True, False]
    assert matches(":card: not in @cards", rows) == [False, False, True]


def test_text_compares_exactly_and_enums_compare_as_text() -> None:
    rows = [row(channel="ecommerce", currency="GBP"), row(channel="pos", currency="EUR")]
    assert matches(":channel: = 'ecommerce'", rows) == [True, False]
    assert matches(":currency: in ('EUR', 'USD')", rows) == [False, True]
    assert matches(":currency: in @words", rows) == [True, False]
    assert matches(":merchant: = 'M1'", [row(merchant="m1")]) == [False]
    assert matches(":merchant: = :device_id:", [row(merchant="x", device_id="x")]) == [True]


def test_keywords_are_case_insensitive() -> None:
    rows = [row(amount=Decimal("600.00"), channel="ecommerce")]
    assert matches(":amount: > 500 AND NOT :channel: In ('pos') Or FALSE", rows) == [True]
    assert matches("TRUE and :amount: not IN (600)", rows) == [False]


def test_hour_and_weekday_follow_utc_event_time_as_duckdb_does() -> None:
    # 2026-01-01 was a Thursday; 2026-01-04 23:59:59.999 a Sunday; 1969-12-31 a Wednesday.
    times = [1_767_225_600_000, 1_767_571_199_999, 1_767_225_600_000 + 13 * 3_600_000, -1]
    hour, weekday = hour_and_weekday(np.array(times))
    assert hour.tolist() == [0, 23, 13, 23]
    assert weekday.tolist() == [4, 7, 4, 3]
    rows = [row(created_at=ms) for ms in times]
    assert matches(":hour_of_day: = 23", rows) == [False, True, False, True]
    assert matches(":day_of_week: >= 6 or :hour_of_day: < 1", rows) == [True, True, False, False]


def test_allow_then_block_then_review_whatever_the_order_written() -> None:
    policy = compile_policy(
        [
            {"name": "review big", "action": "review", "when": ":amount: > 100"},
            {"name": "block huge", "action": "block", "when": ":amount: > 1000"},
            {"name": "allow vip", "action": "allow", "when": ":merchant: = 'vip'"},
            {"name": "block huge again", "action": "block", "when": ":amount: > 999"},
        ]
    )
    rows = [
        row(amount=Decimal("5000"), merchant="vip"),  # allow wins over block
        row(amount=Decimal("5000")),  # the first block rule in order decides
        row(amount=Decimal("500")),  # only review
        row(amount=Decimal("5")),  # nothing
    ]
    values, missing = inputs(rows)
    outcome = policy.decide(values, missing)
    assert outcome.rule_index.tolist() == [2, 1, 0, -1]
    assert outcome.rule_index.dtype == np.int16
    assert outcome.action.tolist() == [Action.ALLOW, Action.BLOCK, Action.REVIEW, Action.NONE]
    assert outcome.approved.tolist() == [True, False, True, True]
    assert outcome.review.tolist() == [False, False, True, False]
    by_sql = policy.decide_matches(sql_matches(database(rows), policy))
    assert by_sql.rule_index.tolist() == outcome.rule_index.tolist()


def test_the_default_policy_as_rules_decides_as_the_heuristic() -> None:
    policy = compile_policy(
        [
            {
                "name": "High amount flagged by risk heuristic.",
                "action": "block",
                "when": ":amount: > 500 and :random: < 0.30",
            },
            {
                "name": "Randomized decline to simulate fraud checks.",
                "action": "block",
                "when": ":amount: <= 500 and :random: < 0.10",
            },
        ]
    )
    rng = np.random.default_rng(7)
    cents = rng.choice([50_000, 50_001, 49_999, 100, 1_000_000], size=2_000)
    draw = rng.choice([0.1, 0.3, np.nextafter(0.1, 0), np.nextafter(0.3, 0), 0.5], size=2_000)
    zeros = np.zeros(2_000)
    heuristic = decide(cents, zeros, zeros, zeros, zeros.astype(int), draw, Knobs())
    outcome = policy.decide({"amount": cents, "random": draw})
    expected = np.select(
        [heuristic.reason == Reason.HIGH_AMOUNT, heuristic.reason == Reason.RANDOM_DECLINE],
        [0, 1],
        default=-1,
    )
    assert outcome.rule_index.tolist() == expected.tolist()
    assert outcome.approved.tolist() == heuristic.approved.tolist()


def test_a_rule_reading_no_attribute_needs_the_row_count() -> None:
    policy = compile_policy([{"name": "all", "action": "review", "when": "true"}])
    assert policy.matches({}, n_rows=3).tolist() == [[True, True, True]]
    with pytest.raises(ValueError, match="n_rows"):
        policy.matches({})


def test_inputs_are_checked_for_presence_length_and_kind() -> None:
    policy = compile_policy([{"name": "r", "action": "block", "when": ":amount: > 5"}])
    with pytest.raises(KeyError, match="amount"):
        policy.matches({"random": np.zeros(2)})
    with pytest.raises(TypeError, match="amount must hold integers"):
        policy.matches({"amount": np.array([5.0])})
    two = compile_policy([{"name": "r", "action": "block", "when": ":amount: > :card_age_days:"}])
    with pytest.raises(ValueError, match="different lengths"):
        two.matches({"amount": np.zeros(2, dtype=np.int64), "card_age_days": np.zeros(3, int)})
