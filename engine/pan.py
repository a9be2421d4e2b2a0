"""Card numbers outside the card field: find them, refuse them or mask them (PCI DSS 3.3–3.5).

A client may paste a card number into any text it sends: a merchant name, a device id, an
``Idempotency-Key``, a ``Request-Id`` or a URL path. What the service stores, logs or echoes is
checked here. A *card-number-like* run is 13–19 digits, written together or in groups separated
by single spaces or dashes (``4111 1111 1111 1111``), in which any 13–19 consecutive digits
pass the Luhn check (so a number glued to other digits is found too); letters and other
characters end a run (``x4111111111111111y`` holds one). Text that is *refused* is held to that
test; text that is only *masked* (paths in logs and messages) has every run of 13 or more digits
masked, Luhn or not: masking too much there costs nothing.

The price of refusing: about one in ten random 13-digit runs passes Luhn, and longer runs more
often, so a merchant name or key holding a long run of digits may be refused; such text should
not hold one.
"""

from __future__ import annotations

import re

from engine.cards import luhn_valid

# Digit groups joined by single spaces or dashes; a cheap first test that most text fails.
_RUN = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_THIRTEEN_DIGITS = re.compile(r"[0-9](?:[ -]?[0-9]){12}")
_MIN, _MAX = 13, 19
PAN_RULE = "must not contain a card number"


def _digits_hold_pan(digits: str) -> bool:
    return any(
        luhn_valid(digits[start : start + length])
        for length in range(_MIN, _MAX + 1)
        for start in range(len(digits) - length + 1)
    )


def _long_runs(text: str) -> list[re.Match[str]]:
    """Every run of 13 or more digits (separators allowed) in ``text``."""
    if not _THIRTEEN_DIGITS.search(text):
        return []
    return [run for run in _RUN.finditer(text) if len(_digits(run)) >= _MIN]


def _digits(run: re.Match[str]) -> str:
    return run.group().replace(" ", "").replace("-", "")


def contains_pan(text: str) -> bool:
    """True when ``text`` holds a card-number-like run of digits."""
    return any(_digits_hold_pan(_digits(run)) for run in _long_runs(text))


def mask_pans(text: str) -> str:
    """``text`` with every run of 13 or more digits shown as its first six and last four digits
    (``411111…1111``, which PCI DSS allows to be displayed)."""
    for run in reversed(_long_runs(text)):
        digits = _digits(run)
        text = f"{text[: run.start()]}{digits[:6]}…{digits[-4:]}{text[run.end() :]}"
    return text


def refuse_pan(value: str | None) -> str | None:
    """``value`` unchanged, or ``ValueError`` when it holds a card number (a field validator:
    the error names the field and never repeats the value)."""
    if value is not None and contains_pan(value):
        raise ValueError(PAN_RULE)
    return value
