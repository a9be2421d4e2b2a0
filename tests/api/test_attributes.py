"""GET /attributes serves the rule language's catalogue, as the engine defines it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from engine.rules import CATALOGUE
from engine.service import Engine

ISSUE_ATTRIBUTES = {
    "amount", "amount_in_gbp", "currency", "merchant", "channel", "device_id", "has_device",
    "card_bin", "card", "spending_velocity", "device_trust_score", "ip_risk_score",
    "risk_score", "payments_per_card_1h", "payments_per_card_24h", "amount_per_card_24h",
    "payments_per_device_1h", "cards_per_device_24h", "devices_per_card_7d", "is_new_device",
    "card_age_days", "hour_of_day", "day_of_week", "random",
}  # fmt: skip


def test_the_catalogue_is_served_with_every_attribute_the_issue_names(tmp_path) -> None:
    engine = Engine.open(tmp_path / "a.duckdb", backup_interval_s=0)
    with TestClient(create_app(engine)) as client:
        answer = client.get("/attributes")
    assert answer.status_code == 200
    served = answer.json()
    assert [a["name"] for a in served] == list(CATALOGUE)
    assert {a["name"] for a in served} >= ISSUE_ATTRIBUTES
    for attribute in served:
        assert set(attribute) == {"name", "type", "kind", "definition", "example"}
        assert attribute["definition"] and f":{attribute['name']}:" in attribute["example"]
    schema = client.app.openapi()["paths"]["/attributes"]["get"]
    assert schema["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
