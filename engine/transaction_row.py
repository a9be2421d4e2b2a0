"""The one definition of a ``transactions`` row: every column, its stored type, and who sets it.

The schema's migrations create these columns (``tests/engine/test_transaction_row.py`` checks the
migrated table against this list, name by name and type by type); the live writer and bulk
generation build exactly the columns this list says they set (checked by the same test); lookups
and the run content hash read the columns from here. Adding a column is
one entry here, a migration, and the code that computes its value.
"""

from __future__ import annotations

from dataclasses import dataclass

LIVE, BULK = "live", "bulk"  # the two paths that write rows


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its stored SQL type, which paths set it, and how the run hash reads it."""

    name: str
    sql_type: str  # as information_schema reports it for the current schema
    set_by: frozenset[str]
    doc: str
    hash_sql: str | None  # its select item in the run content hash; None: excluded


def _col(name: str, sql_type: str, set_by: str, doc: str, hash_sql: str | None = "") -> Column:
    paths = frozenset({LIVE, BULK} if set_by == "both" else {set_by})
    return Column(name, sql_type, paths, doc, name if hash_sql == "" else hash_sql)


COLUMNS: tuple[Column, ...] = (
    _col("id", "UUID", "both", "time-ordered id (UUIDv7 layout): zone maps prune lookups", None),
    _col("run_id", "INTEGER", BULK, "NULL for live traffic, else the simulation run", None),
    _col("created_at", "TIMESTAMP", "both", "UTC; simulated event time for simulation rows",
         "epoch_ms(created_at) AS created_at"),
    _col("card_hash", "UUID", "both", "keyed HMAC-SHA256 of the card number (128 bits)"),
    _col("card_bin", "INTEGER", "both", "first six digits, read back zero-padded"),
    _col("card_last4", "SMALLINT", "both", "last four digits, read back zero-padded"),
    _col("card_length", "TINYINT", "both", "digits in the card number"),
    _col("amount", "DECIMAL(18,2)", "both", "exact amount in the payment's currency",
         "CAST(amount * 100 AS BIGINT) AS amount_cents"),
    _col("currency", "currency_code", "both", "ISO 4217 code"),
    _col("merchant", "VARCHAR", "both", "merchant name"),
    _col("channel", "payment_channel", "both", "how the card was presented"),
    _col("device_id", "VARCHAR", "both", "device fingerprint; NULL when none was sent"),
    _col("status", "payment_status", "both", "'Approved' | 'Declined'"),
    _col("reason_code", "reason_code", "both", "the kind of rule that decided (engine/decision)"),
    _col("risk_flag", "BOOLEAN", "both", "some rule flagged the payment (flag_rule >= 0)"),
    _col("rule_index", "SMALLINT", "both", "the deciding rule's index in the policy; -1: none"),
    _col("action", "rule_action", "both", "the deciding rule's action (allow/challenge/block/...)"),
    _col("flag_rule", "SMALLINT", "both", "the index of the rule that flagged it; -1: none"),
    _col("score", "DOUBLE", "both", "risk score in [0, 1]"),
    _col("spending_velocity", "DOUBLE", "both", "feature in [0, 1]"),
    _col("device_trust_score", "DOUBLE", "both", "feature in [0, 1]"),
    _col("ip_risk_score", "DOUBLE", "both", "feature in [0, 1]"),
    _col("velocity_count", "INTEGER", "both", "the card's earlier payments in the trailing hour"),
    _col("device_seen_count", "INTEGER", "both", "earlier payments of this card on this device"),
    _col("device_other_cards", "INTEGER", "both", "other cards seen on this device"),
    # history attributes (engine/features.py defines them; engine/history.py in SQL)
    _col("amount_in_gbp", "DECIMAL(18,2)", "both", "amount in GBP (engine/fx.py); NULL: no rate",
         "CAST(amount_in_gbp * 100 AS BIGINT) AS amount_in_gbp_pence"),
    _col("payments_per_card_24h", "INTEGER", "both", "the card's earlier payments in 24 h"),
    _col("amount_per_card_24h", "DECIMAL(18,2)", "both", "their amount_in_gbp, summed (GBP)",
         "CAST(amount_per_card_24h * 100 AS BIGINT) AS amount_per_card_24h_pence"),
    _col("payments_per_device_1h", "INTEGER", "both",
         "earlier payments on this device in 1 h; NULL: no device"),
    _col("cards_per_device_24h", "INTEGER", "both",
         "distinct cards on this device in 24 h before; NULL: no device"),
    _col("devices_per_card_7d", "INTEGER", "both", "distinct devices of the card in 7 days before"),
    _col("card_age_days", "INTEGER", "both", "whole days since the card's first payment"),
    _col("draw", "DOUBLE", "both", "the uniform number the randomized rules used"),
    _col("policy_version", "INTEGER", "both", "the policy version that decided"),
    _col("latency_ms", "DOUBLE", BULK,
         "live: written back after the commit; simulated: the modelled network latency"),
    _col("is_fraud", "BOOLEAN", BULK, "ground truth; NULL for live traffic"),
    _col("label_available_at", "TIMESTAMP", BULK,
         "when the row's dispute arrives; NULL: never (declined, or nobody disputed it)",
         "epoch_ms(label_available_at) AS label_available_at"),
    # v13: the world (engine/issuers.py, engine/merchant_categories.py, engine/geo.py)
    _col("merchant_category", "SMALLINT", "both", "ISO 18245 MCC (4 digits); NULL: not sent"),
    _col("merchant_country", "VARCHAR", "both", "ISO 3166-1 alpha-2; NULL: not sent"),
    _col("card_country", "VARCHAR", "both", "the BIN's issuing country; NULL: BIN not listed"),
    _col("ip_address", "VARCHAR", "both", "the payer's IP address as sent; NULL: none"),
    _col("ip_country", "VARCHAR", "both", "the IP's country (GeoIP); NULL: none or unknown"),
    # v14: observed disputes (engine/simulation/outcomes.py)
    _col("dispute_reason", "dispute_reason", BULK, "what the row's dispute was filed as"),
    # v15: the challenge action (engine/challenge.py)
    _col("challenge_draw", "DOUBLE", "both",
         "the second uniform number: decides a challenge's outcome"),
    # v16: the shadow policy's decision of a live payment (engine/experiments.py); NULL: none
    _col("shadow_version", "INTEGER", LIVE, "the policy version that shadowed it"),
    _col("shadow_action", "TINYINT", LIVE, "the shadow's action (engine.rules.Action code)"),
    _col("shadow_rule_index", "SMALLINT", LIVE, "the shadow's deciding rule; -1: none"),
    _col("shadow_flag_rule", "SMALLINT", LIVE, "the shadow's flagging rule; -1: none"),
    _col("shadow_score", "DOUBLE", LIVE, "the shadow policy's risk score"),
    # v17: fraud_scenario re-added with the counterfeit scenario (engine/schema.py)
    _col("fraud_scenario", "fraud_scenario", BULK,
         "the scenario that made the row (friendly_fraud: a genuine payment); NULL: none"),
)  # fmt: skip

NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)


def written_by(path: str) -> tuple[str, ...]:
    """The columns ``path`` (:data:`LIVE` or :data:`BULK`) sets when it appends rows."""
    return tuple(c.name for c in COLUMNS if path in c.set_by)


def content_hash_sql() -> str:
    """A run's deterministic columns in event (= id) order; ``id`` and ``run_id`` excluded."""
    select = ", ".join(c.hash_sql for c in COLUMNS if c.hash_sql)
    return f"SELECT {select} FROM transactions WHERE run_id = ? ORDER BY id"
