"""The attribute catalogue: every attribute issues 12 and 13 name, each defined, typed, readable
by both evaluators, with an example that compiles."""

from __future__ import annotations

import json
from pathlib import Path

from engine.rules import CATALOGUE, ListSpec, attributes_json, compile_policy

ISSUE_ATTRIBUTES = {
    "request": [
        "amount", "amount_in_gbp", "currency", "merchant", "channel", "device_id", "has_device",
        "card_bin", "card",
        # issue 13: the world
        "merchant_category", "merchant_country", "card_country", "ip_country", "is_cross_border",
    ],
    "feature": ["spending_velocity", "device_trust_score", "ip_risk_score", "risk_score"],
    "history": [
        "payments_per_card_1h", "payments_per_card_24h", "amount_per_card_24h",
        "payments_per_device_1h", "cards_per_device_24h", "devices_per_card_7d", "is_new_device",
        "card_age_days",
    ],
    "time": ["hour_of_day", "day_of_week"],
    "random": ["random"],
}  # fmt: skip
EXAMPLE_LISTS = {
    "risky_merchants": ListSpec("merchant", ["m"]),
    "blocked_devices": ListSpec("device", ["d"]),
    "risky_bins": ListSpec("bin", ["412345"]),
    "stolen_cards": ListSpec("card", [b"x" * 16]),
}


def test_the_catalogue_holds_every_attribute_of_the_issue_with_its_kind() -> None:
    by_kind: dict[str, list[str]] = {}
    for attribute in CATALOGUE.values():
        by_kind.setdefault(attribute.kind, []).append(attribute.name)
    assert by_kind == ISSUE_ATTRIBUTES


def test_get_attributes_serves_name_type_kind_definition_and_example() -> None:
    served = json.loads(json.dumps(attributes_json()))
    assert [a["name"] for a in served] == list(CATALOGUE)
    for attribute in served:
        assert set(attribute) == {"name", "type", "kind", "definition", "example"}
        assert attribute["type"] in ("number", "text", "bool", "card")
        assert len(attribute["definition"]) > 30
        assert f":{attribute['name']}:" in attribute["example"]


def test_every_example_compiles() -> None:
    rules = [{"name": a.name, "action": "review", "when": a.example} for a in CATALOGUE.values()]
    compile_policy(rules, EXAMPLE_LISTS)


def test_each_attribute_says_how_it_is_read() -> None:
    for attribute in CATALOGUE.values():
        assert attribute.dtype
        assert (attribute.sql is None) == (attribute.name == "risk_score")
        assert (attribute.form is not None) == (attribute.type == "number")
    nullable = {a.name for a in CATALOGUE.values() if a.nullable}
    assert nullable == {
        "amount_in_gbp",
        "amount_per_card_24h",
        "device_id",
        "payments_per_device_1h",
        "cards_per_device_24h",
        "merchant_category",
        "merchant_country",
        "card_country",
        "ip_country",
    }


def test_docs_rules_md_lists_every_attribute() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "rules.md").read_text()
    rows = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| `:")}
    assert rows == {f"`:{name}:`" for name in CATALOGUE}
