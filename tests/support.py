"""Constants and helpers shared by test modules (import them with ``from support import ...``:
a module named ``conftest`` would be ambiguous, as several folders have one)."""

from __future__ import annotations

from typing import Any

ADMIN_TOKEN = "test-admin-token"
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

README_PAYMENT: dict[str, Any] = {
    "card_number": "4000001234567890",
    "amount": 150.75,
    "currency": "GBP",
    "merchant": "Amazon",
    "channel": "ecommerce",
    "device_id": "ios-demo-device",
}


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
