"""Disputes: stored once per (payment, reason) with an audit entry, refused when they cannot be
true, read by backtests as labels of live rows, and ``labels_as_of`` counting only the labels
known by then (checked against a row-by-row reference)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from knob_reference import decide_as_engine
from support import TEST_CARDS, database_at_schema
from synthetic_rows import START, insert_rows, random_columns

from engine.disputes import DisputeReport, record_dispute
from engine.errors import InvalidRequestError, NotFoundError
from engine.models import FRAUD_DISPUTE_REASONS
from engine.policy import DEFAULT_POLICY, Policy
from engine.schema import SCHEMA_VERSION
from engine.service import Engine

NOW = START + timedelta(days=400)  # "now" for the hand-made rows' disputes
REASONS = ["fraud", "friendly_fraud", "authorisation", "processing_error", "not_received"]


@pytest.fixture
def engine(tmp_path):
    with Engine.open(tmp_path / "disputes.duckdb", seed=7) as eng:
        yield eng


def stored_disputes(engine: Engine) -> list[tuple]:
    return engine.store.query(
        "SELECT transaction_id, reason, reported_at FROM disputes ORDER BY recorded_at, reason"
    )


def audit_events(engine: Engine, transaction_id: uuid.UUID) -> list[str]:
    return [entry.event for entry in engine.get_audit(transaction_id)]


def test_a_dispute_is_stored_once_per_reason_with_its_audit_entry(engine):
    paid = engine.authorize({"card_number": TEST_CARDS[1], "amount": "12.00", "merchant": "M"})
    first = engine.dispute(paid.transaction_id, {"reason": "not_received"})
    assert first.created and first.dispute.reason == "not_received"
    assert first.dispute.reported_at == first.dispute.recorded_at  # default: reported now
    again = engine.dispute(paid.transaction_id, {"reason": "not_received"})
    assert not again.created and again.dispute == first.dispute
    # a later report of the same reason with another time changes nothing either
    later = datetime.now(UTC)
    assert (
        engine.dispute(
            paid.transaction_id, {"reason": "not_received", "reported_at": later}
        ).dispute
        == first.dispute
    )
    assert len(stored_disputes(engine)) == 1
    # another reason for the same payment is a dispute of its own
    fraud = engine.dispute(paid.transaction_id, {"reason": "fraud"})
    assert fraud.created
    assert [r[1] for r in stored_disputes(engine)] == ["not_received", "fraud"]
    trail = engine.get_audit(paid.transaction_id)
    assert [e.event for e in trail] == [
        "payment.decided", "transaction.disputed", "transaction.disputed"
    ]  # fmt: skip
    assert [e.dispute.reason for e in trail[1:]] == ["not_received", "fraud"]
    assert all(e.transaction_id == paid.transaction_id for e in trail)
    assert trail[0].dispute is None and trail[1].request is None and trail[1].features == {}


def test_disputes_that_cannot_be_true_are_refused_and_store_nothing(engine):
    paid = engine.authorize({"card_number": TEST_CARDS[1], "amount": "12.00", "merchant": "M"})
    created = engine.get_transaction(paid.transaction_id).created_at.replace(tzinfo=UTC)
    for reported_at in (
        datetime.now(UTC) + timedelta(hours=1),
        created - timedelta(microseconds=1),
        created.replace(tzinfo=None),  # no time zone: no instant
    ):
        with pytest.raises(InvalidRequestError) as refused:
            engine.dispute(paid.transaction_id, {"reason": "fraud", "reported_at": reported_at})
        assert refused.value.field == "reported_at"
    with pytest.raises(NotFoundError):
        engine.dispute(uuid.UUID(int=1), {"reason": "fraud"})
    assert stored_disputes(engine) == []
    assert audit_events(engine, paid.transaction_id) == ["payment.decided"]
    # exactly at the payment's time is allowed (a dispute cannot precede the payment)
    assert engine.dispute(paid.transaction_id, {"reason": "fraud", "reported_at": created}).created


def test_a_simulated_payment_can_be_disputed_and_a_reset_deletes_disputes(engine):
    cols = random_columns(5, seed=3)
    insert_rows(engine.store, cols, run_id=1)
    (row,) = engine.store.query("SELECT id FROM transactions ORDER BY id LIMIT 1")
    report = DisputeReport(
        reason="friendly_fraud", reported_at=START.replace(tzinfo=UTC) + timedelta(days=20)
    )
    assert record_dispute(engine.store, row[0], report, now=NOW).created
    assert audit_events(engine, row[0]) == ["simulation.decided", "transaction.disputed"]
    engine.reset()
    assert stored_disputes(engine) == []


def test_a_v11_file_migrates_and_takes_disputes(tmp_path):
    with Engine.open(tmp_path / "new.duckdb", card_key="k") as eng:
        paid = eng.authorize({"card_number": TEST_CARDS[2], "amount": "40.00", "merchant": "M"})
    old = tmp_path / "old.duckdb"
    with database_at_schema(old, 11) as con:
        con.execute(f"ATTACH '{tmp_path / 'new.duckdb'}' AS new (READ_ONLY)")
        for table in ("transactions", "policies", "policy_activations"):
            old_columns = [name for (name,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_catalog = "
                "current_database() AND table_name = ? ORDER BY ordinal_position", [table]
            ).fetchall()]  # fmt: skip
            names = ", ".join(old_columns)  # later versions added columns
            con.execute(f"INSERT INTO {table} SELECT {names} FROM new.{table}")
    with Engine.open(old, card_key="k") as eng:
        assert eng.store.schema_version() == SCHEMA_VERSION >= 12
        assert eng.dispute(paid.transaction_id, {"reason": "fraud"}).created
        live = eng.backtest(DEFAULT_POLICY, run="live").active
        assert (live.rows, live.labelled, live.fraud) == (1, 1, 1)


# -- labels as a backtest counts them -------------------------------------------------------------


def _world(engine: Engine):
    """4,000 simulated rows (10% fraud, chargebacks 1-120 days later, a fifth never disputed, a
    tenth of the disputes filed as not received; 3% of genuine rows disputed as fraud anyway)
    and 1,000 live rows, 300 of them disputed (some twice), all with a fixed seed."""
    rng = np.random.default_rng(5)
    sim = random_columns(4000, seed=21, fraud_rate=0.10)
    created = [START + timedelta(minutes=int(m)) for m in sim["minutes"]]
    delay = rng.integers(1, 121, 4000)
    never = rng.random(4000) < 0.2
    falsely = rng.random(4000) < 0.03
    disputed = np.where(sim["is_fraud"], ~never, falsely)
    sim["label_at"] = np.array(
        [
            c + timedelta(days=int(d)) if yes else None
            for c, d, yes in zip(created, delay, disputed, strict=True)
        ],
        dtype=object,
    )
    not_received = rng.random(4000) < 0.1
    sim["dispute"] = np.where(
        disputed, np.where(not_received, "not_received", "fraud"), None
    ).astype(object)
    insert_rows(engine.store, sim, run_id=1)
    live = random_columns(1000, seed=22)
    del live["is_fraud"], live["scenario"]
    insert_rows(engine.store, live, run_id=None, first_index=10_001)
    ids = engine.store.query("SELECT id, created_at FROM transactions ORDER BY id")
    live_rows = ids[4000:]
    disputes: list[tuple[int, str, datetime]] = []
    for i in rng.choice(1000, 300, replace=False):
        for _ in range(rng.integers(1, 3)):
            reason = str(rng.choice(REASONS))
            reported = live_rows[i][1] + timedelta(days=int(rng.integers(0, 90)))
            outcome = record_dispute(
                engine.store,
                live_rows[i][0],
                DisputeReport(reason=reason, reported_at=reported.replace(tzinfo=UTC)),
                now=NOW,
            )
            if outcome.created:
                disputes.append((int(i), reason, reported))
    # fraud disputes on simulated rows change no label: their ground truth holds
    for i in range(0, 4000, 97):
        record_dispute(
            engine.store,
            ids[i][0],
            DisputeReport(reason="fraud", reported_at=ids[i][1].replace(tzinfo=UTC)),
            now=NOW,
        )
    return sim, live, disputes


def _reference(sim, live, disputes, policy: Policy, as_of: datetime | None) -> dict:
    """The metrics of ``policy`` computed row by row from the label definitions."""
    # simulated rows: the ground truth, or with a date the fraud disputes arrived by then
    sim_fraud = np.array(
        [
            bool(f)
            if as_of is None
            else (at is not None and at <= as_of and reason in FRAUD_DISPUTE_REASONS)
            for f, at, reason in zip(sim["is_fraud"], sim["label_at"], sim["dispute"], strict=True)
        ]
    )
    live_fraud = np.zeros(1000, dtype=bool)
    for i, reason, reported in disputes:
        if reason in FRAUD_DISPUTE_REASONS and (as_of is None or reported <= as_of):
            live_fraud[i] = True
    cols = {k: np.concatenate([sim[k], live[k]]) for k in ("cents", "sv", "dt", "ip", "vc", "draw")}
    d = decide_as_engine(
        policy, cols["cents"], cols["sv"], cols["dt"], cols["ip"], cols["vc"], cols["draw"]
    )
    fraud = np.concatenate([sim_fraud, live_fraud])
    labelled = np.concatenate([np.ones(4000, bool), live_fraud])
    legit = labelled & ~fraud
    declined = ~d.approved
    # live fraud, labelled by a dispute, has no scenario: the backtest lists it as "(none)"
    # (nor a genuine simulated row disputed as fraud)
    sim_scenarios = np.array(["(none)" if x is None else x for x in sim["scenario"]], object)
    scenarios = np.concatenate([sim_scenarios, np.full(1000, "(none)", dtype=object)])
    per_scenario = {
        str(s): (
            int((fraud & (scenarios == s)).sum()),
            int((fraud & declined & (scenarios == s)).sum()),
        )
        for s in set(scenarios[fraud])
    }
    return {
        "labelled": int(labelled.sum()),
        "fraud": int(fraud.sum()),
        "fraud_caught": int((fraud & declined).sum()),
        "false_declines": int((legit & declined).sum()),
        "fraud_loss": Decimal(int(cols["cents"][fraud & d.approved].sum())).scaleb(-2),
        "false_decline_amount": Decimal(int(cols["cents"][legit & declined].sum())).scaleb(-2),
        "precision": (fraud & declined).sum() / (labelled & declined).sum(),
        "scenarios": per_scenario,
        "fraud_decided": [
            int((fraud & (d.rule_index == i)).sum()) for i in range(len(policy.rules))
        ],
        "false_positives": [
            int((legit & (d.rule_index == i)).sum()) for i in range(len(policy.rules))
        ],
    }


def test_labels_as_of_match_a_row_by_row_reference(engine):
    sim, live, disputes = _world(engine)
    candidate = Policy.from_knobs(
        score_threshold=0.62, velocity_limit=9, amount_threshold=Decimal("300")
    )
    fraud_known = []
    for days in (None, 0, 3, 30, 60, 150):
        as_of = None if days is None else START + timedelta(days=days)
        result = engine.backtest(
            candidate, labels_as_of=None if as_of is None else as_of.replace(tzinfo=UTC)
        )
        for side, policy in ((result.candidate, candidate), (result.active, DEFAULT_POLICY)):
            ref = _reference(sim, live, disputes, policy, as_of)
            assert side.rows == 5000
            for name in ("labelled", "fraud", "fraud_caught", "false_declines", "fraud_loss"):
                assert getattr(side, name) == ref[name], (name, days)
            assert side.false_decline_amount == ref["false_decline_amount"]
            assert side.precision == pytest.approx(ref["precision"])
        ref = _reference(sim, live, disputes, candidate, as_of)
        scenarios = {s.scenario: (s.fraud, s.caught_candidate) for s in result.scenarios}
        assert scenarios == ref["scenarios"], days
        assert [r.fraud_decided for r in result.rules] == ref["fraud_decided"]
        assert [r.false_positives for r in result.rules] == ref["false_positives"]
        fraud_known.append(result.active.fraud)
    # the earlier the date, the fewer frauds are known; none before the first payment; and even
    # once every dispute is in, missed and false disputes keep the labels off the ground truth
    everything, *by_date = fraud_known
    assert by_date == sorted(by_date) and by_date[0] == 0 < by_date[-1] != everything


def test_live_rows_are_labelled_by_fraud_disputes_only(engine):
    _, _, disputes = _world(engine)
    live = engine.backtest(DEFAULT_POLICY, run="live").active
    fraud_disputed = {i for i, reason, _ in disputes if reason in FRAUD_DISPUTE_REASONS}
    assert live.labelled == live.fraud == len(fraud_disputed) > 0
    assert live.false_declines == 0  # no live row is known to be legitimate
    # the simulated rows keep their ground truth, disputed or not
    assert engine.backtest(DEFAULT_POLICY, run=1).active.fraud == int(
        random_columns(4000, seed=21, fraud_rate=0.10)["is_fraud"].sum()
    )


def test_labels_as_of_is_a_validated_date_time():
    from engine.filters import RowFilter

    for bad in (5, "yesterday", "0001-01-01T00:00:00+01:00"):
        with pytest.raises(ValueError, match="labels_as_of"):
            RowFilter(labels_as_of=bad)
    assert RowFilter(labels_as_of="2026-02-01T00:00:00+01:00").labels_as_of_utc() == datetime(
        2026, 1, 31, 23, 0
    )
