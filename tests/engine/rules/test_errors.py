# ruff: noqa: E501  (the table of messages reads best one case per line)
"""Bad rules get one error type naming the rule, the part, the line and column of the offending
token and what is wrong in words."""

from __future__ import annotations

import numpy as np
import pytest

from engine.rules import ListSpec, RuleError, compile_policy
from engine.rules.parser import MAX_CONDITION_CHARS, parse_condition

LISTS = {
    "vips": ListSpec("merchant", ["m1"]),
    "bins": ListSpec("bin", ["412345"]),
    "cards": ListSpec("card", [b"x" * 16]),
    "words": ListSpec("text", ["a"]),
}
VALUE = "a value (an :attribute:, a number, a 'string', true or false)"


def error_of(when: str, lists: dict | None = None) -> RuleError:
    rules = [
        {"name": "fine", "action": "allow", "when": ":amount: < 1"},
        {"name": "bad", "action": "block", "when": when},
    ]
    with pytest.raises(RuleError) as caught:
        compile_policy(rules, LISTS if lists is None else lists)
    error = caught.value
    assert (error.rule, error.part, error.field) == (1, "when", "rules[1].when")
    return error


@pytest.mark.parametrize(
    ("when", "message", "line", "column"),
    [
        # names
        (":amout: > 5", "unknown attribute :amout: — did you mean :amount:?", 1, 1),
        (":Amount: > 5", "unknown attribute :Amount: — did you mean :amount:?", 1, 1),
        (":amount: > 5\n  and :merchnt: = 'x'", "unknown attribute :merchnt: — did you mean :merchant:?", 2, 7),
        (":zzz: > 5", "unknown attribute :zzz:", 1, 1),
        (":merchant: in @vip", "unknown list @vip — did you mean @vips?", 1, 15),
        (":merchant: in @nothing_like_it", "unknown list @nothing_like_it", 1, 15),
        # types
        (":channel: = 300", "cannot compare :channel: (text) with 300 (number)", 1, 13),
        ("300 = :channel:", "cannot compare 300 (number) with :channel: (text)", 1, 7),
        (":amount: = true", "cannot compare :amount: (number) with true (bool)", 1, 12),
        (":merchant: < 'a'", "< orders numbers, but :merchant: is text: use = or !=", 1, 1),
        (":has_device: > true", "> orders numbers, but :has_device: is true or false: use = or !=", 1, 1),
        (":amount:", "a condition must be true or false, but :amount: is a number: compare it, e.g. :amount: > 500", 1, 1),
        (":amount: + :channel: > 1", "arithmetic (+ - * /) needs numbers, but :channel: is text", 1, 12),
        ("-:channel: = 'pos'", "a minus sign needs a number, but :channel: is text", 1, 2),
        ("not :amount:", "not needs a condition, but :amount: is a number", 1, 5),
        (":amount: > 5 and 3", "and joins conditions, but 3 is a number", 1, 18),
        ("'x' or :amount: > 5", "or joins conditions, but 'x' is text", 1, 1),
        (":card: = 'x'", ":card: can only be used with in or not in a card list", 1, 1),
        (":card: in ('a')", "in (...) tests numbers or text, but :card: is a card: use a card list", 1, 1),
        (":has_device: in (true)", "in (...) tests numbers or text, but :has_device: is true or false", 1, 1),
        (":amount: in (1, 'b')", ":amount: (number) cannot be in a tuple holding 'b' (text)", 1, 17),
        (":merchant: in @bins", "a bin list cannot hold :merchant: (text): @bins holds :card_bin:", 1, 1),
        (":card_bin: in @vips", "a merchant list cannot hold :card_bin: (text): @vips holds :merchant:", 1, 1),
        (":amount: in @cards", "a card list cannot hold :amount: (number): @cards holds :card:", 1, 1),
        (":amount: in @words", "a text list cannot hold :amount: (number): @words holds :currency:, :merchant:, :channel:, :device_id:, :card_bin:, :merchant_category:, :merchant_country:, :card_country:, :ip_country:", 1, 1),
        (":channel: = 'ECOMMERCE'", "'ECOMMERCE' is not a known :channel: — did you mean 'ecommerce'?", 1, 13),
        (":currency: in ('GBP', 'eur')", "'eur' is not a known :currency: — did you mean 'EUR'?", 1, 23),
        (":currency: = 'XYZ'", "'XYZ' is not a known :currency:", 1, 14),
        # syntax
        ("", "the condition is empty: write one such as :amount: > 500", 1, 1),
        (":amount: >", f"the condition ends too early: expected {VALUE}", 1, 11),
        (":amount: >\n\n", f"the condition ends too early: expected {VALUE}", 1, 11),
        (":amount: > > 5", f"unexpected '>': expected {VALUE}", 1, 12),
        ("(:amount: > 5", "the condition ends too early: expected ')'", 1, 14),
        (":amount: > 5)", "unexpected ')': expected the end of the condition", 1, 13),
        (":amount: > 5 5", "unexpected '5': expected and, or, an arithmetic operator (+ - * /) or the end of the condition", 1, 14),
        (":amount: not 5", "unexpected '5': expected in", 1, 14),
        (":amount: in ()", f"unexpected ')': expected {VALUE}", 1, 14),
        (":amount: in (1 2)", "unexpected '2': expected ')' or ','", 1, 16),
        ("@vips", f"unexpected '@vips': expected {VALUE}", 1, 1),
        ("1 < :amount: < 5", "comparisons do not chain: join two with and, e.g. :amount: > 1 and :amount: < 5", 1, 14),
        (":amount: == 5", "write = to compare, not ==", 1, 11),
        (":amount: ; 5", "unexpected character ';'", 1, 10),
        ("'abc", "unexpected character \"'\": a 'string' is missing its closing quote", 1, 1),
        ('"abc"', "unexpected character '\"': strings are written in single quotes: 'text'", 1, 1),
        (":amount > 5", "unexpected character ':': an attribute is written between two colons, such as :amount:", 1, 1),
        (":amount: > 5 && true", "unexpected character '&': write and, not &&", 1, 14),
        (":amount: > 5 || true", "unexpected character '|': write or, not ||", 1, 14),
    ],
)  # fmt: skip
def test_condition_errors_say_what_and_where(
    when: str, message: str, line: int, column: int
) -> None:
    error = error_of(when)
    assert (error.message, error.line, error.column) == (message, line, column)
    assert str(error) == f"rules[1].when: {message} (line {line}, column {column})"


def test_nesting_deeper_than_32_is_refused_at_the_33rd_level() -> None:
    ok = "(" * 32 + ":amount: > 1" + ")" * 32
    compile_policy([{"name": "deep", "action": "block", "when": ok}])
    error = error_of("(" * 33 + ":amount: > 1" + ")" * 33)
    assert error.message.startswith("the condition nests deeper than 32 levels")
    assert (error.line, error.column) == (1, 33)
    assert error_of("not " * 33 + "true").column == 129
    assert error_of("- " * 33 + "1 > 0").column == 65


@pytest.mark.parametrize(
    "when",
    [
        "(" * 3_000,
        "(" * 1_990 + "true" + ")" * 1_990,
        "not " * 999 + "true",
        "-" * 3_000 + "1 > 0",
        ")" * 3_000,
    ],
)
def test_pathological_input_gets_an_error_not_a_recursion_error(when: str) -> None:
    assert error_of(when).message  # a RuleError, whatever it says


def test_long_wide_conditions_are_fine() -> None:
    sum_of_ones = " + ".join(["1"] * 900) + " > 0"  # 3,601 characters, one level deep
    conjunction = " and ".join([":amount: > 1"] * 230)  # 3,910 characters
    policy = compile_policy(
        [
            {"name": "sum", "action": "block", "when": sum_of_ones},
            {"name": "and", "action": "block", "when": conjunction},
        ]
    )
    assert policy.matches({"amount": np.array([0, 500])}).tolist() == [[True, True], [False, True]]
    assert len(policy.sql().rules) == 2


def test_a_condition_over_4000_characters_is_refused() -> None:
    compile_policy([{"name": "r", "action": "block", "when": "true" + " " * 3_996}])
    error = error_of("true" + " " * 3_997)
    assert error.message == (
        "the condition has 4,001 characters; at most 4,000 are allowed (put long sets of values "
        "in a list)"
    )
    assert (error.line, error.column) == (1, MAX_CONDITION_CHARS + 1)


def policy_error(rules: object) -> RuleError:
    with pytest.raises(RuleError) as caught:
        compile_policy(rules)  # type: ignore[arg-type]
    return caught.value


def rule(name: str = "r", action: str = "block", when: str = "true") -> dict[str, str]:
    return {"name": name, "action": action, "when": when}


def test_a_policy_has_1_to_200_rules() -> None:
    compile_policy([rule(f"r{i}") for i in range(200)])
    for rules in ([], [rule(f"r{i}") for i in range(201)]):
        error = policy_error(rules)
        assert error.message == f"a policy has 1 to 200 rules, not {len(rules)}"
        assert (error.field, error.line, error.column) == ("rules", None, None)
    assert policy_error("block everything").message.startswith("rules must be a list")


def test_rule_names_are_unique_ignoring_case() -> None:
    error = policy_error([rule("Big amounts"), rule("other"), rule("big AMOUNTS")])
    assert error.message == (
        "two rules are named 'big AMOUNTS' (rule 0 too); names must differ (ignoring case)"
    )
    assert error.field == "rules[2].name"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "a rule needs a name"),
        ("   ", "a rule needs a name"),
        ("x" * 201, "a rule name has at most 200 characters, not 201"),
        ("two\nlines", "a rule name cannot hold line breaks, tabs or other control characters"),
        ("tab\there", "a rule name cannot hold line breaks, tabs or other control characters"),
        (" padded", "a rule name cannot start or end with spaces"),
    ],
)
def test_rule_names_are_1_to_200_printable_characters(name: str, message: str) -> None:
    error = policy_error([rule(name)])
    assert (error.message, error.field) == (message, "rules[0].name")


def test_names_may_hold_any_printable_text() -> None:
    names = ["x" * 200, "High amount flagged by risk heuristic.", "Größe ≥ 500 €", "'; DROP --"]
    assert compile_policy([rule(n) for n in names]).names == tuple(names)


@pytest.mark.parametrize("action", ["Block", "decline", "", "allow "])
def test_the_action_is_allow_challenge_block_or_review(action: str) -> None:
    error = policy_error([rule(action=action)])
    assert error.message == f"the action must be allow, challenge, block or review, not {action!r}"
    assert error.field == "rules[0].action"


@pytest.mark.parametrize("missing", ["name", "action", "when"])
def test_every_part_of_a_rule_is_required_text(missing: str) -> None:
    incomplete = {k: v for k, v in rule().items() if k != missing}
    error = policy_error([incomplete])
    assert (error.message, error.field) == (
        f"the rule needs a {missing} (text)",
        f"rules[0].{missing}",
    )
    assert policy_error([{**rule(), missing: 5}]).field == f"rules[0].{missing}"
    assert policy_error(["not a rule"]).field == "rules[0]"


def test_parse_condition_is_usable_alone() -> None:
    with pytest.raises(RuleError) as caught:
        parse_condition(":amount: >")
    assert (caught.value.rule, caught.value.field) == (None, "rules")
