"""Constants and helpers shared by test modules (import them with ``from support import ...``:
a module named ``conftest`` would be ambiguous, as several folders have one)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Debian's chromium, driven by Playwright's executable_path (it never downloads a browser)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
README = Path(__file__).resolve().parent.parent / "README.md"
ADMIN_TOKEN = "test-admin-token"
UI_ADMIN_TOKEN = "ui-admin-token"  # the dashboard tests' shared engine
SEED = 7

# Full test card numbers (Luhn-valid test PANs and the README's example card). Tests that drive
# payments with these scan the database, logs and responses for them afterwards.
TEST_CARDS: list[str] = [
    "4000001234567890",  # the README example
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "6011111111111117",
    "4242424242424242",
]


@dataclass(frozen=True)
class CurlExample:
    """One ``curl`` command of the README's API reference, parsed."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    answer: Any = None  # the JSON block the README shows right after the command, if any


def readme_curl_examples() -> list[CurlExample]:
    """Every ``curl`` command in the README's bash blocks, in document order, each with the
    JSON answer shown in the block that follows it (when the next block is a JSON block)."""
    blocks = re.findall(r"```(bash|json)\n(.*?)```", README.read_text(), flags=re.DOTALL)
    examples = []
    for i, (kind, block) in enumerate(blocks):
        if kind != "bash":
            continue
        following = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
        answer = json.loads(following[1]) if following[0] == "json" else None
        start = block.find("curl ")
        if start < 0:
            continue
        # Each curl block holds one command; its JSON body may span lines inside the quotes.
        words = shlex.split(block[start:].replace("\\\n", " "), posix=True)
        method, headers, body, url = "GET", {}, None, ""
        it = iter(words[1:])
        for word in it:
            if word == "-X":
                method = next(it)
            elif word == "-H":
                name, _, value = next(it).partition(":")
                headers[name.strip()] = value.strip()
            elif word == "-d":
                body = json.loads(next(it))
            elif word.startswith("http"):
                url = word
        path = re.sub(r"^https?://[^/]+", "", url)
        examples.append(CurlExample(method, path, headers, body, answer))
    return examples


# The README's example request, read from the README itself so the document and the tests agree.
README_PAYMENT: dict[str, Any] = next(
    e.body for e in readme_curl_examples() if e.path == "/payment" and e.body
)


def luhn_card(i: int) -> str:
    """The ``i``-th Luhn-valid test card number of the 411111 BIN (distinct cards for tests that
    need many)."""
    body = f"411111{i:09d}"
    total = 0
    for position, digit in enumerate(int(d) for d in reversed(body)):
        doubled = digit * 2 if position % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return body + str((10 - total % 10) % 10)


def payment_body(card: str = TEST_CARDS[1], amount: float | str = 42.50, **extra: Any) -> dict:
    """A valid POST /payment body; override any field with keyword arguments."""
    body: dict[str, Any] = {
        "card_number": card,
        "amount": amount,
        "currency": "GBP",
        "merchant": "Test Merchant",
        "channel": "ecommerce",
        "device_id": "test-device",
    }
    body.update(extra)
    return body


def read_frame(store: Any, sql: str, params: Any = None) -> Any:
    """One read of ``store`` as a pandas DataFrame (through the store's own read snapshot)."""
    with store.read() as tx:
        return tx.frame(sql, params)


def read_numpy(store: Any, sql: str, params: Any = None) -> dict[str, Any]:
    """One read of ``store`` as numpy columns by name."""
    with store.read() as tx:
        return tx.numpy(sql, params)


def database_at_schema(path: Path, version: int) -> Any:
    """A new DuckDB file at ``path`` migrated to schema ``version`` only, as an older build
    left it; returns the open connection (the caller fills it, then closes it)."""
    import duckdb

    from engine.schema import MIGRATIONS

    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER)")
    for number, sql in enumerate(MIGRATIONS[:version], start=1):
        con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?)", [number])
    return con


# Columns later migrations added (v13 and on): a test that copies today's rows into an older
# file leaves them out. v13: the world's; v14: the observed dispute's reason; v15: the
# challenge draw; v16: the shadow's.
LATER_COLUMNS = (
    "merchant_category", "merchant_country", "card_country", "ip_address", "ip_country",
    "dispute_reason", "challenge_draw", "shadow_version", "shadow_action", "shadow_rule_index",
    "shadow_flag_rule", "shadow_score",
)  # fmt: skip
