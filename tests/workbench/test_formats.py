"""Number formats of the dashboard: compact tile values, exact tooltips, neutral zero deltas."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from workbench import formats

# A tile holds about six characters at 1024 px (the values the issue saw truncated included).
TILE_CHARS = 6


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (999, "999"),
        (1_000, "1K"),
        (1_234, "1.23K"),
        (20_000, "20K"),
        (116_805.29, "117K"),
        (999_999, "1M"),
        (1_040_000, "1.04M"),
        (3_503_201, "3.5M"),
        (12_345_678, "12.3M"),
        (2_000_000_000, "2B"),
        (-7_502.8, "-7.5K"),
        (12.5, "12.5"),
    ],
)
def test_compact_keeps_three_significant_digits(value, text):
    assert formats.compact(value) == text


@pytest.mark.parametrize(
    ("value", "text", "tooltip"),
    [
        (20_000, "20,000", None),
        (99_999, "99,999", None),
        (100_000, "100K", "Exactly 100,000."),
        (1_000_000, "1M", "Exactly 1,000,000."),
        (3_503_201, "3.5M", "Exactly 3,503,201."),
    ],
)
def test_counts_are_exact_below_100k_and_compact_with_the_exact_value_above(value, text, tooltip):
    assert formats.count(value) == text
    assert formats.exact_count(value) == tooltip
    assert len(text) <= TILE_CHARS


@pytest.mark.parametrize(
    ("share", "text"),
    [
        (1.0, "100%"),
        (0.0, "0%"),
        (0.8952, "89.5%"),
        (0.99996, ">99.9%"),
        (0.00001, "<0.1%"),
        (None, "–"),
        (float("nan"), "–"),
    ],
)
def test_percent_never_claims_all_or_none_it_did_not_see(share, text):
    assert formats.percent(share) == text
    assert len(text) <= TILE_CHARS


def test_exact_percent_has_two_decimals():
    assert formats.exact_percent(0.895234) == "89.52%"
    assert formats.exact_percent(None) is None


@pytest.mark.parametrize(
    ("amount", "text", "tooltip"),
    [
        (Decimal("103.40"), "103.40", "103.40"),
        (Decimal("116805.29"), "117K", "116,805.29"),
        (Decimal("1040000.00"), "1.04M", "1,040,000.00"),
    ],
)
def test_money_is_compact_on_the_tile_and_exact_in_the_tooltip(amount, text, tooltip):
    assert formats.money(amount) == text
    assert formats.exact_money(amount) == tooltip
    assert len(text) <= TILE_CHARS


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.234, "1.23 ms"), (86.41, "86.4 ms"), (153.2, "153 ms"), (1234.0, "1.23K ms"), (None, "–")],
)
def test_milliseconds_have_three_significant_digits(value, text):
    assert formats.milliseconds(value) == text


def test_an_unchanged_metric_has_a_zero_delta_not_a_signed_one():
    # st.metric draws the number 0 grey without an arrow; "+0.00 pp" would be a green/red arrow
    assert formats.delta_pp(0.8952, 0.8952) == 0
    assert formats.delta_pp(0.895201, 0.8952) == 0  # rounds to no change
    assert formats.delta_pp(0.7938, 0.8952) == "-10.14 pp"
    assert formats.delta_pp(0.2192, 0.1484) == "+7.08 pp"
    assert formats.delta_pp(None, 0.5) is None
    assert formats.delta_count(4028, 4028) == 0
    assert formats.delta_count(4028, 2031) == "+1,997"
    assert formats.delta_money(Decimal("5.00"), Decimal("5.00")) == 0
    assert formats.delta_money(Decimal("116805.29"), Decimal("124308.09")) == "-7.5K"
    assert formats.delta_money(Decimal("12.30"), Decimal("0")) == "+12.30"


@pytest.mark.parametrize(
    ("width", "text"),
    [
        (timedelta(days=7), "7 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=6), "6 hours"),
        (timedelta(minutes=15), "15 minutes"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(seconds=10), "10 seconds"),
        (timedelta(days=30), "30 days"),
        (timedelta(seconds=1.5), "1.5 seconds"),
    ],
)
def test_spans_read_like_people_say_them(width, text):
    assert formats.span(width) == text
