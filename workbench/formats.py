"""How the workbench writes numbers for people: compact KPI values, exact tooltips, deltas, spans.

Pure functions (no streamlit, no plotly), shared by the dashboard pages, the chart builders and
the notebooks. A KPI tile holds at most about six characters at 1024 px, so tile values are
compact ("3.5M", "89.5%", "117K") and the exact value goes into the tile's tooltip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Literal

DASH = "–"  # what a tile shows for "no value"
# counts below this are written in full ("99,999"); from here on, three significant digits
EXACT_BELOW = 100_000
_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


@dataclass(frozen=True, slots=True)
class Tile:
    """One KPI tile: a compact ``value``, the exact value as ``help``, an optional ``delta``.

    ``delta_color`` follows ``st.metric``: ``"normal"`` when higher is better, ``"inverse"`` when
    lower is better (fraud loss, false declines); a zero ``delta`` (the number 0) is drawn grey.
    """

    label: str
    value: str
    help: str | None = None
    delta: str | int | None = None
    delta_color: Literal["normal", "inverse", "off"] = "normal"


def _significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, trailing zeros dropped (3.50 → "3.5")."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def compact(value: float | int | Decimal) -> str:
    """A number in at most ~5 characters: 1,234 → "1.23K", 1,040,000 → "1.04M", 3,503,201 →
    "3.5M"; below 1,000 it keeps up to two decimals."""
    number = float(value)
    size = abs(number)
    for scale, suffix in _SUFFIXES:
        if size >= scale:
            mantissa = number / scale
            text = _significant(mantissa)
            if abs(float(text)) >= 1000 and suffix != "T":  # 999.96K rounds up to the next unit
                return compact(math.copysign(1000 * scale, number))
            return text + suffix
    return f"{number:,.2f}".rstrip("0").rstrip(".") if number != int(number) else f"{number:,.0f}"


def count(value: int | None) -> str:
    """A count for a tile: in full below 100,000 ("20,001"), compact above ("3.5M")."""
    if value is None:
        return DASH
    return f"{value:,}" if abs(value) < EXACT_BELOW else compact(value)


def exact_count(value: int | None) -> str | None:
    """The tooltip of a count tile when the tile rounds it ("Exactly 3,503,201."), else None."""
    if value is None or abs(value) < EXACT_BELOW:
        return None
    return f"Exactly {value:,}."


def money(value: Decimal | float | None) -> str:
    """An amount for a tile: two decimals below 1,000 ("103.40"), compact above ("117K")."""
    if value is None:
        return DASH
    if abs(value) < 1000:
        return f"{float(value):,.2f}"
    return compact(value)


def exact_money(value: Decimal | float | None) -> str | None:
    """The exact amount with two decimals and separators ("116,805.29"), for a tooltip."""
    return None if value is None else f"{Decimal(str(value)):,.2f}"


def percent(share: float | None) -> str:
    """A share for a tile with one decimal: 0.8952 → "89.5%", exactly 1 → "100%"; a share that
    only rounds to 100% or 0% says so (">99.9%", "<0.1%") instead of claiming all or none."""
    if share is None or math.isnan(share):
        return DASH
    if share in (0, 1):
        return f"{share:.0%}"
    text = f"{share:.1%}"
    if text == "100.0%":
        return ">99.9%"
    if text == "0.0%":
        return "<0.1%"
    return text


def exact_percent(share: float | None) -> str | None:
    """A share to two decimals ("89.52%"), for a tooltip or a table cell."""
    return None if share is None or math.isnan(share) else f"{share:.2%}"


def milliseconds(value: float | None) -> str:
    """Milliseconds to three significant digits ("86.4 ms", "153 ms", "1.2K ms")."""
    if value is None or math.isnan(value):
        return DASH
    if value >= 1000:
        return f"{compact(value)} ms"
    decimals = 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:,.{decimals}f} ms"


def delta_pp(new: float | None, old: float | None) -> str | int | None:
    """The change between two shares in percentage points ("+7.08 pp", "-10.14 pp"); the number
    0 (drawn grey, no arrow) when it rounds to no change; None when either side is missing."""
    if new is None or old is None:
        return None
    change = round((new - old) * 100, 2)
    return 0 if change == 0 else f"{change:+.2f} pp"


def delta_count(new: int, old: int) -> str | int:
    """The change of a count ("+1,997"); 0 when unchanged."""
    change = new - old
    return 0 if change == 0 else f"{change:+,}"


def delta_money(new: Decimal | float, old: Decimal | float) -> str | int:
    """The change of an amount, compact above 1,000 ("-7.5K", "+12.30"); 0 when unchanged."""
    change = Decimal(str(new)) - Decimal(str(old))
    if change.quantize(Decimal("0.01")) == 0:
        return 0
    sign = "+" if change > 0 else "-"
    return sign + money(abs(change))


# no weeks: "7 days" reads like the time-range menus ("Latest 7 days"), "1 week" does not
_UNITS = (
    (timedelta(days=1), "day"),
    (timedelta(hours=1), "hour"),
    (timedelta(minutes=1), "minute"),
    (timedelta(seconds=1), "second"),
)


def span(width: timedelta) -> str:
    """A duration as people say it: "7 days", "6 hours", "15 minutes", "10 seconds", "1 day"
    (not "604800 s" or "P7D")."""
    if width <= timedelta(0):
        return "0 seconds"
    for unit, name in _UNITS:
        if width >= unit and width % unit == timedelta(0):
            n = width // unit
            return f"{n} {name}{'' if n == 1 else 's'}"
    seconds = width.total_seconds()
    return f"{_significant(seconds)} seconds"
