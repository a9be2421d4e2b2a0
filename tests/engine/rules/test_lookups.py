"""List lookups and dictionary-encoded inputs stay exact on every path they take."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from engine.rules import Coded, ListSpec, compile_policy
from engine.rules.numpy_eval import CardLookup


def card_rule(items: list) -> object:
    return compile_policy(
        [{"name": "stolen", "action": "block", "when": ":card: in @cards"}],
        {"cards": ListSpec("card", items)},
    )


@pytest.mark.parametrize("rows", [64, CardLookup.HASH_FROM_ROWS, 5_000])
def test_card_lists_match_exactly_on_small_groups_and_large_chunks(rows: int) -> None:
    rng = np.random.default_rng(rows)
    members = [rng.bytes(16) for _ in range(3_000)]
    zeros = b"abc" + b"\0" * 13  # trailing NULs: numpy's 'S16' strips them when reading
    members.append(zeros)
    pool = [*members[:50], *(rng.bytes(16) for _ in range(50)), zeros, zeros[:15] + b"\1"]
    cards = [pool[i] for i in rng.integers(0, len(pool), rows)]
    expected = [c in set(members) for c in cards]
    policy = card_rule([uuid.UUID(bytes=m) if i % 2 else m for i, m in enumerate(members)])
    found = policy.matches({"card": np.array(cards, dtype="S16")})[0]
    assert found.tolist() == expected
    assert any(expected) and not all(expected)


def test_card_lists_whose_first_halves_collide_stay_exact() -> None:
    first = b"\x01" * 8
    members = [first + b"\x02" * 8, first + b"\x03" * 8]
    lookup = CardLookup(np.array(members, dtype="S16"))
    assert lookup.index is None  # the hash path needs unique first halves
    rows = np.array([members[0], first + b"\x04" * 8, members[1]] * 1_000, dtype="S16")
    assert lookup(rows).tolist() == [True, False, True] * 1_000


def test_an_empty_list_matches_nothing() -> None:
    policy = compile_policy(
        [
            {"name": "c", "action": "block", "when": ":card: in @cards"},
            {"name": "m", "action": "block", "when": ":merchant: not in @merchants"},
        ],
        {"cards": ListSpec("card", []), "merchants": ListSpec("merchant", [])},
    )
    values = {"card": np.array([b"x" * 16] * 3, dtype="S16"), "merchant": np.array(["a"] * 3)}
    assert policy.matches(values).tolist() == [[False] * 3, [True] * 3]


def test_dictionary_encoded_text_is_tested_once_per_label_set_and_follows_new_labels() -> None:
    policy = compile_policy(
        [{"name": "m", "action": "block", "when": ":merchant: in ('m2', 'm3')"}]
    )
    labels = np.array(["m1", "m2", "m3"], dtype=object)
    codes = np.array([0, 1, 2, 1], dtype=np.int32)
    assert policy.matches({"merchant": Coded(codes, labels)})[0].tolist() == [0, 1, 1, 1]
    assert policy.matches({"merchant": Coded(codes[:2], labels)})[0].tolist() == [0, 1]
    other = np.array(["m3", "m1", "m2"], dtype=object)  # a new table: evaluated anew
    assert policy.matches({"merchant": Coded(codes, other)})[0].tolist() == [1, 0, 1, 0]


def test_codes_of_missing_values_are_ignored() -> None:
    policy = compile_policy([{"name": "d", "action": "block", "when": ":device_id: != 'd1'"}])
    labels = np.array(["d1", "d2"], dtype=object)
    values = {"device_id": Coded(np.array([0, 1, -1, 99]), labels)}
    missing = {"device_id": np.array([False, False, True, True])}
    assert policy.matches(values, missing)[0].tolist() == [False, True, False, False]


def test_coded_inputs_are_for_text_and_cards_with_labels_of_the_documented_dtype() -> None:
    policy = compile_policy(
        [{"name": "r", "action": "block", "when": ":card_bin: = '412345' or :amount: > 1"}]
    )
    codes = np.array([0])
    with pytest.raises(TypeError, match="amount is a number"):
        policy.matches({"card_bin": np.array([1]), "amount": Coded(codes, np.array([1]))})
    with pytest.raises(TypeError, match="labels of input card_bin"):
        policy.matches(
            {"card_bin": Coded(codes, np.array([412345], np.int32)), "amount": np.array([1])}
        )


def test_list_specs_know_their_kinds_and_size_limit() -> None:
    with pytest.raises(ValueError, match="unknown list kind 'cards'"):
        ListSpec("cards", [])
    with pytest.raises(ValueError, match="at most 1,000,000 items, not 1,000,001"):
        ListSpec("text", range(1_000_001))
    ListSpec("text", range(1_000_000))
