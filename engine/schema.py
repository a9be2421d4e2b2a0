"""The database schema and its migrations. ``schema_version`` records what a file has.

A migration is appended, never edited: opening an older file applies the missing steps in one
transaction, so users never have to delete their data after an upgrade.
"""

from __future__ import annotations

import re

from engine.history import attributes_sql

# audit_log holds events about transactions and policies. A payment's decision entry is read from
# its transactions row (written by the same commit); v7 removes those earlier builds stored here.
V1_TABLES = """
CREATE TABLE transactions (
    id UUID NOT NULL,                 -- time-ordered (UUIDv7 layout): zone maps prune lookups
    run_id INTEGER,                   -- NULL for live traffic, else the simulation run
    created_at TIMESTAMP NOT NULL,    -- UTC; simulated event time for simulation rows
    card_hash VARCHAR NOT NULL,       -- HMAC-SHA256 (128 bits, hex) of the card number
    card_bin VARCHAR NOT NULL,
    card_last4 VARCHAR NOT NULL,
    card_length TINYINT NOT NULL,
    amount DECIMAL(18, 2) NOT NULL,
    currency VARCHAR NOT NULL,
    merchant VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,
    device_id VARCHAR,
    status VARCHAR NOT NULL,          -- 'Approved' | 'Declined'
    reason_code VARCHAR NOT NULL,
    risk_flag BOOLEAN NOT NULL,
    score DOUBLE NOT NULL,
    spending_velocity DOUBLE NOT NULL,
    device_trust_score DOUBLE NOT NULL,
    ip_risk_score DOUBLE NOT NULL,
    velocity_count INTEGER NOT NULL,
    device_seen_count INTEGER NOT NULL,
    device_other_cards INTEGER NOT NULL,
    draw DOUBLE NOT NULL,             -- the uniform number the randomized rules used
    policy_version INTEGER NOT NULL,
    latency_ms DOUBLE,                -- NULL only between commit and latency write-back
    is_fraud BOOLEAN,                 -- ground truth; NULL for live traffic
    fraud_scenario VARCHAR,
    label_available_at TIMESTAMP      -- when a chargeback would reveal the fraud
);
CREATE TABLE audit_log (
    transaction_id UUID,
    created_at TIMESTAMP NOT NULL,
    event VARCHAR NOT NULL,
    policy_version INTEGER,
    payload VARCHAR NOT NULL          -- JSON; never holds a full card number
);
CREATE TABLE policies (
    version INTEGER PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    knobs VARCHAR NOT NULL,
    note VARCHAR NOT NULL
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,          -- running | completed | failed | interrupted
    seed BIGINT NOT NULL,
    params VARCHAR NOT NULL,          -- JSON
    policy_version INTEGER NOT NULL,
    code_version VARCHAR NOT NULL,
    rows_planned BIGINT NOT NULL,
    rows_written BIGINT NOT NULL,
    finished_at TIMESTAMP,
    timings VARCHAR,                  -- JSON
    summary VARCHAR,                  -- JSON
    error VARCHAR
);
"""

# v2: running totals and a latency histogram per source (run id), kept in the same transaction as
# the rows, so GET /stats reads a few hundred rows instead of scanning millions. Rows of source 0
# (live traffic, in files written before live totals moved into memory) are deleted by v7.
V2_ROLLUPS = """
CREATE TABLE stats_rollup (
    source INTEGER PRIMARY KEY,
    total BIGINT NOT NULL,
    approved BIGINT NOT NULL,
    declined BIGINT NOT NULL,
    amount_sum DECIMAL(38, 2) NOT NULL
);
CREATE TABLE latency_histogram (
    source INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (source, bucket)
);
"""

# v3: Idempotency-Key records (Stripe semantics), written in the same transaction as the payment
# they produced, so a replay after a crash finds exactly what the first answer promised.
V3_IDEMPOTENCY = """
CREATE TABLE idempotency_keys (
    key VARCHAR PRIMARY KEY,
    request_hash VARCHAR NOT NULL,    -- SHA-256 of the canonical request (card as fingerprint)
    transaction_id UUID NOT NULL,
    created_at TIMESTAMP NOT NULL
);
"""

# v4: Idempotency-Key records of POST /simulations (key → run).
V4_SIMULATION_KEYS = """
CREATE TABLE simulation_keys (
    key VARCHAR PRIMARY KEY,
    request_hash VARCHAR NOT NULL,
    run_id INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL
);
"""

# v5: card fingerprints as 16-byte UUIDs instead of 32-character hex text: the same HMAC bits,
# a third cheaper to append in bulk (a 5M-row append went from 1.33M to 1.82M rows/s).
V5_CARD_HASH_UUID = """
ALTER TABLE transactions ALTER card_hash SET DATA TYPE UUID USING CAST(card_hash AS UUID);
"""

# v6: the table rebuilt for cheaper bulk appends (10M simulated rows: ~15% less DuckDB CPU):
# - the closed vocabularies as ENUMs (one byte per row instead of a string): status, reason
#   code, channel, currency and fraud scenario. Labels are in alphabetical order, so ORDER BY,
#   min and max sort as they did for strings. They are frozen here; tests/engine/test_store.py
#   checks them against the code, so a new reason or currency needs a migration that widens its
#   type;
# - BIN and last four digits as numbers instead of digit strings (read back zero-padded);
# - each column's compression pinned to the method DuckDB picks for it anyway (storage_info of a
#   10M-row run): DuckDB then skips trying every other method on each segment. Same file size.
V6_REBUILD = """
CREATE TYPE payment_status AS ENUM ('Approved', 'Declined');
CREATE TYPE reason_code AS ENUM (
    'APPROVED', 'HIGH_AMOUNT', 'RANDOM_DECLINE', 'SCORE_THRESHOLD', 'VELOCITY_LIMIT'
);
CREATE TYPE payment_channel AS ENUM ('contactless', 'ecommerce', 'mobile', 'moto', 'pos');
CREATE TYPE fraud_scenario AS ENUM (
    'account_takeover', 'card_testing', 'compromised_merchant', 'stolen_card'
);
CREATE TYPE currency_code AS ENUM (
    'AED', 'AFN', 'ALL', 'AMD', 'ANG', 'AOA', 'ARS', 'AUD', 'AWG', 'AZN', 'BAM', 'BBD', 'BDT',
    'BGN', 'BHD', 'BIF', 'BMD', 'BND', 'BOB', 'BRL', 'BSD', 'BTN', 'BWP', 'BYN', 'BZD', 'CAD',
    'CDF', 'CHF', 'CLP', 'CNY', 'COP', 'CRC', 'CUP', 'CVE', 'CZK', 'DJF', 'DKK', 'DOP', 'DZD',
    'EGP', 'ERN', 'ETB', 'EUR', 'FJD', 'FKP', 'GBP', 'GEL', 'GHS', 'GIP', 'GMD', 'GNF', 'GTQ',
    'GYD', 'HKD', 'HNL', 'HTG', 'HUF', 'IDR', 'ILS', 'INR', 'IQD', 'IRR', 'ISK', 'JMD', 'JOD',
    'JPY', 'KES', 'KGS', 'KHR', 'KMF', 'KPW', 'KRW', 'KWD', 'KYD', 'KZT', 'LAK', 'LBP', 'LKR',
    'LRD', 'LSL', 'LYD', 'MAD', 'MDL', 'MGA', 'MKD', 'MMK', 'MNT', 'MOP', 'MRU', 'MUR', 'MVR',
    'MWK', 'MXN', 'MYR', 'MZN', 'NAD', 'NGN', 'NIO', 'NOK', 'NPR', 'NZD', 'OMR', 'PAB', 'PEN',
    'PGK', 'PHP', 'PKR', 'PLN', 'PYG', 'QAR', 'RON', 'RSD', 'RUB', 'RWF', 'SAR', 'SBD', 'SCR',
    'SDG', 'SEK', 'SGD', 'SHP', 'SLE', 'SOS', 'SRD', 'SSP', 'STN', 'SVC', 'SYP', 'SZL', 'THB',
    'TJS', 'TMT', 'TND', 'TOP', 'TRY', 'TTD', 'TWD', 'TZS', 'UAH', 'UGX', 'USD', 'UYU', 'UZS',
    'VES', 'VND', 'VUV', 'WST', 'XAF', 'XCD', 'XCG', 'XOF', 'XPF', 'YER', 'ZAR', 'ZMW', 'ZWG'
);
CREATE TABLE transactions_v6 (  -- the columns of V1_TABLES (documented there), retyped
    id UUID NOT NULL USING COMPRESSION bitpacking,
    run_id INTEGER,
    created_at TIMESTAMP NOT NULL USING COMPRESSION bitpacking,
    card_hash UUID NOT NULL USING COMPRESSION uncompressed,  -- random bits: nothing to gain
    card_bin INTEGER NOT NULL USING COMPRESSION bitpacking,  -- read back zero-padded (6)
    card_last4 SMALLINT NOT NULL USING COMPRESSION bitpacking,  -- ... and (4)
    card_length TINYINT NOT NULL,
    amount DECIMAL(18, 2) NOT NULL USING COMPRESSION bitpacking,
    currency currency_code NOT NULL USING COMPRESSION bitpacking,
    merchant VARCHAR NOT NULL USING COMPRESSION dict_fsst,
    channel payment_channel NOT NULL USING COMPRESSION bitpacking,
    device_id VARCHAR USING COMPRESSION dict_fsst,
    status payment_status NOT NULL USING COMPRESSION bitpacking,
    reason_code reason_code NOT NULL USING COMPRESSION bitpacking,
    risk_flag BOOLEAN NOT NULL USING COMPRESSION roaring,
    score DOUBLE NOT NULL USING COMPRESSION alprd,
    spending_velocity DOUBLE NOT NULL USING COMPRESSION alp,
    device_trust_score DOUBLE NOT NULL USING COMPRESSION alp,
    ip_risk_score DOUBLE NOT NULL USING COMPRESSION alp,
    velocity_count INTEGER NOT NULL USING COMPRESSION bitpacking,
    device_seen_count INTEGER NOT NULL USING COMPRESSION bitpacking,
    device_other_cards INTEGER NOT NULL USING COMPRESSION bitpacking,
    draw DOUBLE NOT NULL USING COMPRESSION alprd,
    policy_version INTEGER NOT NULL,
    latency_ms DOUBLE USING COMPRESSION alp,
    is_fraud BOOLEAN USING COMPRESSION roaring,
    fraud_scenario fraud_scenario USING COMPRESSION rle,  -- NULL except on fraud rows
    label_available_at TIMESTAMP USING COMPRESSION rle
);
INSERT INTO transactions_v6 BY NAME SELECT * FROM transactions ORDER BY id;
DROP TABLE transactions;
ALTER TABLE transactions_v6 RENAME TO transactions;
"""
# v7: retire what older builds left behind, so reads no longer test for it on every query:
# - live traffic's rollup rows (source 0): live totals live in memory and are rebuilt from the rows;
# - 'payment.decided' audit entries: a payment's decision entry is read from its row.
V7_RETIRE_LEGACY = """
DELETE FROM stats_rollup WHERE source = 0;
DELETE FROM latency_histogram WHERE source = 0;
DELETE FROM audit_log WHERE event = 'payment.decided';
"""
# v8: run ids from a persisted counter that a reset never clears: ``max(id) + 1`` handed a reset's
# deleted ids to new runs, so a stale run's rows merged with a new run of the same id. The counter
# starts past every id any table still names (rows a racing reset left behind included).
V8_RUN_ID_COUNTER = """
CREATE TABLE run_id_counter (last_id INTEGER NOT NULL);
INSERT INTO run_id_counter SELECT greatest(
    (SELECT coalesce(max(id), 0) FROM runs),
    (SELECT coalesce(max(run_id), 0) FROM transactions),
    (SELECT coalesce(max(source), 0) FROM stats_rollup),
    (SELECT coalesce(max(run_id), 0) FROM simulation_keys)
);
"""
# v9: named lists for rules (``@name``), one immutable snapshot per version (engine/lists.py). A
# policy version pins (name, version) pairs, so old versions stay readable until pruned. Card
# lists keep only fingerprints, as UUIDs like transactions.card_hash (semi-joined without a cast);
# every other kind keeps normalised text. No index on the items: 1,000,000 rows append in one
# Arrow insert, and a version's rows are contiguous, so zone maps find them.
V9_LISTS = """
CREATE TABLE list_versions (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    kind VARCHAR NOT NULL,            -- card | bin | device | merchant | currency | text
    created_at TIMESTAMP NOT NULL,
    item_count INTEGER NOT NULL,
    content_hash VARCHAR NOT NULL,    -- SHA-256 of the kind and the sorted, normalised items
    note VARCHAR NOT NULL,
    pruned_at TIMESTAMP,              -- when its items were deleted (never for the newest)
    PRIMARY KEY (name, version)
);
CREATE TABLE list_items (             -- items of bin, device, merchant, currency, text lists
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    item VARCHAR NOT NULL
);
CREATE TABLE list_cards (             -- items of card lists: HMAC fingerprints only
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    card_hash UUID NOT NULL
);
"""
# v10: the history attributes of issue 12 (engine/features.py defines them), stored in every row;
# the table is rebuilt with them (as v6: pinned compression, NOT NULL where always known) and
# existing rows are back-filled per stream with the window functions of engine/history.py.
V10_HISTORY_ATTRIBUTES = f"""
CREATE TABLE transactions_v10 (  -- the columns of V6_REBUILD, with the history attributes
    id UUID NOT NULL USING COMPRESSION bitpacking,
    run_id INTEGER,
    created_at TIMESTAMP NOT NULL USING COMPRESSION bitpacking,
    card_hash UUID NOT NULL USING COMPRESSION uncompressed,
    card_bin INTEGER NOT NULL USING COMPRESSION bitpacking,
    card_last4 SMALLINT NOT NULL USING COMPRESSION bitpacking,
    card_length TINYINT NOT NULL,
    amount DECIMAL(18, 2) NOT NULL USING COMPRESSION bitpacking,
    currency currency_code NOT NULL USING COMPRESSION bitpacking,
    merchant VARCHAR NOT NULL USING COMPRESSION dict_fsst,
    channel payment_channel NOT NULL USING COMPRESSION bitpacking,
    device_id VARCHAR USING COMPRESSION dict_fsst,
    status payment_status NOT NULL USING COMPRESSION bitpacking,
    reason_code reason_code NOT NULL USING COMPRESSION bitpacking,
    risk_flag BOOLEAN NOT NULL USING COMPRESSION roaring,
    score DOUBLE NOT NULL USING COMPRESSION alprd,
    spending_velocity DOUBLE NOT NULL USING COMPRESSION alp,
    device_trust_score DOUBLE NOT NULL USING COMPRESSION alp,
    ip_risk_score DOUBLE NOT NULL USING COMPRESSION alp,
    velocity_count INTEGER NOT NULL USING COMPRESSION bitpacking,
    device_seen_count INTEGER NOT NULL USING COMPRESSION bitpacking,
    device_other_cards INTEGER NOT NULL USING COMPRESSION bitpacking,
    amount_in_gbp DECIMAL(18, 2) USING COMPRESSION bitpacking,  -- NULL: no reference rate
    payments_per_card_24h INTEGER NOT NULL USING COMPRESSION bitpacking,
    amount_per_card_24h DECIMAL(18, 2) NOT NULL USING COMPRESSION bitpacking,
    payments_per_device_1h INTEGER USING COMPRESSION bitpacking,  -- NULL: no device id
    cards_per_device_24h INTEGER USING COMPRESSION bitpacking,  -- NULL: no device id
    devices_per_card_7d INTEGER NOT NULL USING COMPRESSION bitpacking,
    card_age_days INTEGER NOT NULL USING COMPRESSION bitpacking,
    draw DOUBLE NOT NULL USING COMPRESSION alprd,
    policy_version INTEGER NOT NULL,
    latency_ms DOUBLE USING COMPRESSION alp,
    is_fraud BOOLEAN USING COMPRESSION roaring,
    fraud_scenario fraud_scenario USING COMPRESSION rle,
    label_available_at TIMESTAMP USING COMPRESSION rle
);
INSERT INTO transactions_v10 BY NAME
SELECT t.*, a.* EXCLUDE (id, velocity_count)
FROM transactions t JOIN ({attributes_sql()}) a USING (id)
ORDER BY id;
DROP TABLE transactions;
ALTER TABLE transactions_v10 RENAME TO transactions;
"""
# v11: policies as rules (issue 12). Each row records which rule decided (its index in the
# policy version's rules, -1 for none), the rule's action, and which rule flagged it; reason_code
# gains the codes of rule kinds. Rows of earlier builds were decided by the knob rules that
# Policy.from_knobs writes in a fixed order (score threshold and velocity limit when set, high
# amount, randomized decline), so their rule indices follow from their reason code and their
# policy's knobs. The table is rebuilt (as v6 and v10) so the enum keeps its name and the new
# columns their pinned compression. A policy stored from now on holds its definition (rules,
# score weights, list pins) as JSON; knobs stay for the policies made from them. Activation is
# its own record: a stored policy is a draft until activated, and the newest activation rules.
_V11_COLUMNS = V10_HISTORY_ATTRIBUTES.split("CREATE TABLE transactions_v10 (")[1].split(");")[0]
_V11_COLUMNS = _V11_COLUMNS.split("\n", 1)[1].replace(
    "    risk_flag BOOLEAN NOT NULL USING COMPRESSION roaring,\n",
    "    risk_flag BOOLEAN NOT NULL USING COMPRESSION roaring,\n"
    "    rule_index SMALLINT NOT NULL USING COMPRESSION bitpacking,  -- -1: no rule matched\n"
    "    action rule_action NOT NULL USING COMPRESSION bitpacking,\n"
    "    flag_rule SMALLINT NOT NULL USING COMPRESSION bitpacking,  -- -1: no rule flagged\n",
)
_KNOB_RULES = """(SELECT version,
        CAST(json_extract_string(knobs, '$.score_threshold') IS NOT NULL AS SMALLINT) AS s,
        CAST(json_extract_string(knobs, '$.velocity_limit') IS NOT NULL AS SMALLINT) AS v
    FROM policies)"""
V11_RULES = f"""
ALTER TABLE transactions ADD COLUMN reason_text VARCHAR;  -- the enum is redefined below
UPDATE transactions SET reason_text = CAST(reason_code AS VARCHAR);
ALTER TABLE transactions DROP COLUMN reason_code;
DROP TYPE reason_code;
CREATE TYPE reason_code AS ENUM (
    'ALLOWED_BY_RULE', 'APPROVED', 'BLOCKED_BY_RULE', 'HIGH_AMOUNT', 'RANDOM_DECLINE',
    'REVIEW_BY_RULE', 'SCORE_THRESHOLD', 'VELOCITY_LIMIT'
);
CREATE TYPE rule_action AS ENUM ('allow', 'block', 'none', 'review');
CREATE TABLE transactions_v11 (  -- the columns of V10_HISTORY_ATTRIBUTES and the rule columns
{_V11_COLUMNS});
INSERT INTO transactions_v11 BY NAME
SELECT t.* EXCLUDE (reason_text), t.reason_text AS reason_code,
    CAST(CASE t.reason_text
        WHEN 'SCORE_THRESHOLD' THEN 0
        WHEN 'VELOCITY_LIMIT' THEN coalesce(k.s, 0)
        WHEN 'HIGH_AMOUNT' THEN coalesce(k.s + k.v, 0)
        WHEN 'RANDOM_DECLINE' THEN coalesce(k.s + k.v, 0) + 1
        ELSE -1 END AS SMALLINT) AS rule_index,
    CASE WHEN t.status = 'Declined' THEN 'block' ELSE 'none' END AS action,
    CAST(CASE
        WHEN NOT t.risk_flag THEN -1
        WHEN t.reason_text = 'SCORE_THRESHOLD' THEN 0
        WHEN t.reason_text = 'VELOCITY_LIMIT' THEN coalesce(k.s, 0)
        ELSE coalesce(k.s + k.v, 0) END AS SMALLINT) AS flag_rule  -- else: the high amount
FROM transactions t LEFT JOIN {_KNOB_RULES} k ON k.version = t.policy_version
ORDER BY t.id;
DROP TABLE transactions;
ALTER TABLE transactions_v11 RENAME TO transactions;
ALTER TABLE policies ADD COLUMN definition VARCHAR;  -- JSON (Policy.definition); NULL: knobs
ALTER TABLE policies ALTER knobs DROP NOT NULL;
CREATE TABLE policy_activations (
    version INTEGER NOT NULL,
    activated_at TIMESTAMP NOT NULL,
    note VARCHAR NOT NULL
);
INSERT INTO policy_activations SELECT version, created_at, note FROM policies ORDER BY version;
"""
# v12: disputes (issue 13): chargebacks and other disputes reported about a payment, live or
# simulated. One row per (transaction, reason): a repeated report of the same reason is the same
# dispute. ``reported_at`` is when the dispute was reported (given by the caller, at the latest
# now), ``recorded_at`` when this server stored it; backtests read the fraud ones as labels.
V12_DISPUTES = """
CREATE TABLE disputes (
    transaction_id UUID NOT NULL,
    reason VARCHAR NOT NULL,          -- engine/disputes.py DISPUTE_REASONS
    reported_at TIMESTAMP NOT NULL,   -- UTC
    recorded_at TIMESTAMP NOT NULL,   -- UTC
    PRIMARY KEY (transaction_id, reason)
);
"""
# v13: the simulated world (issue 13): where a payment happens. Added columns, not a rebuild: old
# rows read NULL (nothing was sent or known). merchant_category is the ISO 18245 MCC as a number
# (read back as four digits), the countries ISO 3166-1 alpha-2, ip_address the text as sent.
V13_WORLD_COLUMNS = """
ALTER TABLE transactions ADD COLUMN merchant_category SMALLINT;
ALTER TABLE transactions ADD COLUMN merchant_country VARCHAR;
ALTER TABLE transactions ADD COLUMN card_country VARCHAR;
ALTER TABLE transactions ADD COLUMN ip_address VARCHAR;
ALTER TABLE transactions ADD COLUMN ip_country VARCHAR;
"""
# v14: observed disputes (issue 13). The ground truth of a simulated row (``is_fraud``,
# ``fraud_scenario``) stays; what its owner observes is its dispute: ``label_available_at`` (when
# the dispute arrives; NULL: none ever does) and the new ``dispute_reason`` (what it was filed
# as, engine/models.py DisputeReason). Rows of earlier builds had a chargeback for every fraud row
# and nothing else, so their disputes were all filed as fraud. ``fraud_scenario`` gains
# 'friendly_fraud' (a genuine payment its cardholder disputes): DuckDB cannot add a value to an
# ENUM, so the column moves through text (a few hundredths of the rows are set) and the type is
# recreated under its name; no table rebuild.
V14_OBSERVED_DISPUTES = """
ALTER TABLE transactions ADD COLUMN scenario_text VARCHAR;
UPDATE transactions SET scenario_text = CAST(fraud_scenario AS VARCHAR)
WHERE fraud_scenario IS NOT NULL;
ALTER TABLE transactions DROP COLUMN fraud_scenario;
DROP TYPE fraud_scenario;
CREATE TYPE fraud_scenario AS ENUM (
    'account_takeover', 'card_testing', 'compromised_merchant', 'friendly_fraud', 'stolen_card'
);
ALTER TABLE transactions ADD COLUMN fraud_scenario fraud_scenario;
UPDATE transactions SET fraud_scenario = scenario_text WHERE scenario_text IS NOT NULL;
ALTER TABLE transactions DROP COLUMN scenario_text;
CREATE TYPE dispute_reason AS ENUM (
    'authorisation', 'fraud', 'friendly_fraud', 'not_as_described', 'not_received',
    'processing_error'
);
ALTER TABLE transactions ADD COLUMN dispute_reason dispute_reason;
UPDATE transactions SET dispute_reason = 'fraud' WHERE label_available_at IS NOT NULL;
"""
# v15: the challenge action (issue 14). ``challenge_draw`` is each payment's second stored uniform
# draw, deciding a challenge's outcome (engine/challenge.py) as ``draw`` decides the randomized
# rules. Rows of earlier builds get a deterministic value derived from their id: the top 53 bits
# of DuckDB's 64-bit hash of the id, as a double in [0, 1) (no earlier row was challenged, so it
# only matters for backtests of challenge rules over old rows, which then stay reproducible).
# reason_code gains the three challenge outcomes and rule_action 'challenge': DuckDB cannot add
# a value to an ENUM, so each column moves through a wider temporary type and back to the
# recreated type of the same name, in place (the column keeps its position; no table rebuild),
# before the UPDATE (DuckDB refuses to change a column type with outstanding updates). The draw
# column is added NOT NULL with a placeholder default that the UPDATE replaces and that is then
# dropped (SET NOT NULL after an UPDATE is refused for the same reason).
_V15_REASONS = """'ALLOWED_BY_RULE', 'APPROVED', 'BLOCKED_BY_RULE', 'CHALLENGE_ABANDONED',
    'CHALLENGE_FAILED', 'CHALLENGE_PASSED', 'HIGH_AMOUNT', 'RANDOM_DECLINE', 'REVIEW_BY_RULE',
    'SCORE_THRESHOLD', 'VELOCITY_LIMIT'"""
_V15_ACTIONS = "'allow', 'block', 'challenge', 'none', 'review'"
V15_CHALLENGE = f"""
CREATE TYPE reason_code_v15 AS ENUM ({_V15_REASONS});
ALTER TABLE transactions ALTER reason_code SET DATA TYPE reason_code_v15;
DROP TYPE reason_code;
CREATE TYPE reason_code AS ENUM ({_V15_REASONS});
ALTER TABLE transactions ALTER reason_code SET DATA TYPE reason_code;
DROP TYPE reason_code_v15;
CREATE TYPE rule_action_v15 AS ENUM ({_V15_ACTIONS});
ALTER TABLE transactions ALTER action SET DATA TYPE rule_action_v15;
DROP TYPE rule_action;
CREATE TYPE rule_action AS ENUM ({_V15_ACTIONS});
ALTER TABLE transactions ALTER action SET DATA TYPE rule_action;
DROP TYPE rule_action_v15;
ALTER TABLE transactions ADD COLUMN challenge_draw DOUBLE NOT NULL DEFAULT 0.0;
UPDATE transactions SET challenge_draw = (hash(id) >> 11)::DOUBLE / 9007199254740992.0;
ALTER TABLE transactions ALTER challenge_draw DROP DEFAULT;
"""
# v16 (shadow and routed policies, issue 14): a live payment also decided by a shadow policy
# keeps that decision on its own row (NULL when nothing shadowed): one INSERT per group on the
# live path, and the shadow comparison is one scan with no join. The shadow and routing in force
# are rows of ``policy_experiments`` (one per kind), restored at start-up and changed in the
# transaction of their audit entry.
V16_SHADOW = """
ALTER TABLE transactions ADD COLUMN shadow_version INTEGER;
ALTER TABLE transactions ADD COLUMN shadow_action TINYINT;
ALTER TABLE transactions ADD COLUMN shadow_rule_index SMALLINT;
ALTER TABLE transactions ADD COLUMN shadow_flag_rule SMALLINT;
ALTER TABLE transactions ADD COLUMN shadow_score DOUBLE;
CREATE TABLE policy_experiments (
    kind VARCHAR PRIMARY KEY,         -- 'shadow' | 'route'
    version INTEGER NOT NULL,         -- the shadow policy, or the challenger traffic is routed to
    share DOUBLE,                     -- route: the share of cards routed; NULL for shadow
    started_at TIMESTAMP NOT NULL     -- UTC
);
"""
# v17: scenarios of issue 13 beyond the first five. ``fraud_scenario`` gains
# 'counterfeit' (skimmed cards cloned and used card-present abroad); as in v14, DuckDB cannot add
# a value to an ENUM, so the column moves through text and the type is recreated under its name.
V17_SCENARIOS = """
ALTER TABLE transactions ADD COLUMN scenario_text VARCHAR;
UPDATE transactions SET scenario_text = CAST(fraud_scenario AS VARCHAR)
WHERE fraud_scenario IS NOT NULL;
ALTER TABLE transactions DROP COLUMN fraud_scenario;
DROP TYPE fraud_scenario;
CREATE TYPE fraud_scenario AS ENUM (
    'account_takeover', 'card_testing', 'compromised_merchant', 'counterfeit', 'friendly_fraud',
    'stolen_card'
);
ALTER TABLE transactions ADD COLUMN fraud_scenario fraud_scenario;
UPDATE transactions SET fraud_scenario = scenario_text WHERE scenario_text IS NOT NULL;
ALTER TABLE transactions DROP COLUMN scenario_text;
"""
MIGRATIONS: list[str] = [
    V1_TABLES,
    V2_ROLLUPS,
    V3_IDEMPOTENCY,
    V4_SIMULATION_KEYS,
    V5_CARD_HASH_UUID,
    V6_REBUILD,
    V7_RETIRE_LEGACY,
    V8_RUN_ID_COUNTER,
    V9_LISTS,
    V10_HISTORY_ATTRIBUTES,
    V11_RULES,
    V12_DISPUTES,
    V13_WORLD_COLUMNS,
    V14_OBSERVED_DISPUTES,
    V15_CHALLENGE,
    V16_SHADOW,
    V17_SCENARIOS,
]
SCHEMA_VERSION = len(MIGRATIONS)

_PINNED_COMPRESSION = re.compile(r" USING COMPRESSION \w+")
_FIRST_PINNABLE_STORAGE = (1, 3)  # DICT_FSST cannot be chosen explicitly in older file formats


def migration_sql(version: int, storage_version: str) -> str:
    """The SQL of migration ``version`` for a file in DuckDB storage format ``storage_version``
    (e.g. ``v1.2.0+``): files older than v1.3 get no pinned column compression (DuckDB then picks
    each segment's compression itself, as it always did), everything else is the same."""
    sql = MIGRATIONS[version - 1]
    numbers = tuple(int(part) for part in re.findall(r"\d+", storage_version)[:2])
    if numbers and numbers < _FIRST_PINNABLE_STORAGE:
        sql = _PINNED_COMPRESSION.sub("", sql)
    return sql
