"""Card-number-like runs in free text: found with separators and glued to letters or digits,
masked to first six and last four, and refused by the field validator without echoing."""

from __future__ import annotations

import pytest

from engine.pan import PAN_RULE, contains_pan, mask_pans, refuse_pan


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "x4111111111111111y",  # touching letters
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "card: 378282246310005.",  # 15 digits (Amex)
        "k4111111111111111000",  # glued to other digits
        "6011111111111117 and more",
    ],
)
def test_card_numbers_are_found_and_masked(text: str) -> None:
    assert contains_pan(text)
    masked = mask_pans(text)
    assert not contains_pan(masked)
    digits = "".join(ch for ch in text if ch.isdigit())
    assert digits not in "".join(ch for ch in masked if ch.isdigit())
    assert "…" in masked


@pytest.mark.parametrize(
    "text", ["ios-demo-device", "Amazon", "order 2026-12-01 10:00", "411111111111", "4111  1111"]
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert not contains_pan(text)
    assert mask_pans(text) == text


def test_masking_keeps_the_text_around_the_number() -> None:
    assert mask_pans("/simulations/4111111111111111") == "/simulations/411111…1111"
    assert mask_pans("/x4111-1111-1111-1111y") == "/x411111…1111y"


def test_refuse_pan_names_the_rule_not_the_number() -> None:
    assert refuse_pan("Amazon") == "Amazon" and refuse_pan(None) is None
    with pytest.raises(ValueError) as info:
        refuse_pan("Shop 4111111111111111")
    assert str(info.value) == PAN_RULE and "4111" not in str(info.value)
