"""History attributes: one definition (engine/features.py), four computations that agree.

A random stream built to hit every edge (same-millisecond ties, payments without a device,
currencies without a reference rate, cards and devices coming back exactly at, just inside and
just outside each window, chunks cut at awkward places) goes through a brute-force reading of
the definitions, the live path's FeatureState one payment at a time, the bulk path's
HistoryTracker in chunks, and the SQL back-fill over a real DuckDB file: identical values for
every column. Then the same for a generated run's stored rows, the v10 migration of an older file,
and live payments through the API.
"""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from support import LATER_COLUMNS, database_at_schema, payment_body, read_frame

from engine import features
from engine.features import (
    DAY_MS,
    HOUR_MS,
    NO_DEVICE,
    NO_GBP,
    WEEK_MS,
    FeatureState,
    HistoryCounts,
    HistoryTracker,
)
from engine.history import attributes_sql
from engine.service import Engine
from engine.simulation.params import SCENARIOS

# the stored columns in HistoryCounts terms (amount in pence); velocity_count is the 1 h count
FIELDS = (
    "velocity_count",
    "payments_per_card_24h",
    "amount_per_card_24h",
    "payments_per_device_1h",
    "cards_per_device_24h",
    "devices_per_card_7d",
    "card_age_days",
)
ALL_FIELDS = (
    "velocity_count", "device_seen_count", "device_other_cards", "foreign_currency",
    "payments_per_card_24h", "amount_per_card_24h", "payments_per_device_1h",
    "cards_per_device_24h", "devices_per_card_7d", "card_age_days",
)  # fmt: skip
EDGES = np.array([HOUR_MS, DAY_MS, WEEK_MS])


def edge_stream(seed: int, n: int = 1_200):
    """(card, device, currency, t_ms, gbp_pence) with every edge the definitions name."""
    rng = np.random.default_rng(seed)
    card = rng.integers(0, 30, n)
    device = np.where(rng.random(n) < 0.25, -1, rng.integers(0, 20, n))
    currency = rng.integers(0, 3, n)
    kind = rng.random(n)
    # gaps: ties (0), small, and window lengths exactly / ±1 ms (a card back at the edge)
    edge = EDGES[rng.integers(0, 3, n)] + rng.integers(-1, 2, n)
    gaps = np.select(
        [kind < 0.25, kind < 0.35],
        [0, edge],
        default=rng.exponential(2 * HOUR_MS, n).astype(np.int64),
    )
    t_ms = 1_767_225_600_000 + np.cumsum(gaps)
    # some payments land exactly one window after an earlier one of the same card
    for i in np.flatnonzero(rng.random(n) < 0.05):
        j = int(rng.integers(0, i + 1))
        later = np.flatnonzero(t_ms == t_ms[j] + EDGES[rng.integers(0, 3)])
        if len(later):
            card[later[0]] = card[j]
    pence = np.where(rng.random(n) < 0.15, NO_GBP, rng.integers(1, 50_000, n))
    return card, device, currency, t_ms, pence


def brute_force(card, device, currency, t_ms, pence) -> np.ndarray:
    """The definitions read literally (quadratic: for small streams)."""
    n = len(card)
    out = np.zeros((n, 10), dtype=np.int64)
    for i in range(n):
        earlier = np.arange(i)

        def window(span: int, mine: np.ndarray, _i: int = i, _e: np.ndarray = earlier):
            return _e[(t_ms[_e] > t_ms[_i] - span) & mine]

        same_card = card[earlier] == card[i]
        same_device = (device[earlier] == device[i]) & (device[i] >= 0)
        day = window(DAY_MS, same_card)
        first = earlier[same_card][:1]
        out[i] = (
            len(window(HOUR_MS, same_card)),
            int((same_card & same_device).sum()),
            len(set(card[earlier[same_device]]) - {card[i]}),
            int(len(first) > 0 and currency[first[0]] != currency[i]),
            len(day),
            int(np.maximum(pence[day], 0).sum()),
            len(window(HOUR_MS, same_device)) if device[i] >= 0 else NO_DEVICE,
            len(set(card[window(DAY_MS, same_device)])) if device[i] >= 0 else NO_DEVICE,
            len(set(device[window(WEEK_MS, same_card & (device[earlier] >= 0))])),
            (t_ms[i] - t_ms[first[0]]) // DAY_MS if len(first) else 0,
        )
    return out


def as_matrix(counts: HistoryCounts) -> np.ndarray:
    return np.column_stack([np.asarray(getattr(counts, f), dtype=np.int64) for f in ALL_FIELDS])


def live_path(card, device, currency, t_ms, pence) -> np.ndarray:
    state = FeatureState()
    out = np.empty((len(card), 10), dtype=np.int64)
    for i in range(len(card)):
        args = (
            f"card-{card[i]}",
            None if device[i] < 0 else f"dev-{device[i]}",
            f"CUR{currency[i]}",
            int(t_ms[i]),
        )
        out[i] = state.counts(*args)
        state.observe(*args, int(pence[i]))
    return out


def bulk_path(stream, cuts) -> np.ndarray:
    tracker = HistoryTracker()
    n = len(stream[0])
    bounds = np.r_[0, np.asarray(cuts, dtype=np.int64), n]
    parts = [
        as_matrix(tracker.update(*(column[a:b] for column in stream)))
        for a, b in itertools.pairwise(bounds)
    ]
    return np.vstack(parts)


def awkward_cuts(stream, seed: int) -> np.ndarray:
    """Chunk boundaries inside same-millisecond ties, chunks of one row, and random cuts."""
    t_ms = stream[3]
    n = len(t_ms)
    rng = np.random.default_rng(seed)
    ties = np.flatnonzero(t_ms[1:] == t_ms[:-1]) + 1
    cuts = {1, 2, n - 1, *rng.choice(ties, 10).tolist(), *rng.integers(1, n, 15).tolist()}
    return np.array(sorted(cuts))


def sql_path(tmp_path: Path, card, device, currency, t_ms, pence) -> np.ndarray:
    """The back-fill query over a real DuckDB file holding the stream as stored rows (GBP at
    rate 1 or a currency without a rate, so amount_in_gbp is the stream's pence)."""
    n = len(card)
    rows = pa.table(  # noqa: F841  (read by name from the SQL below)
        {
            "id": pa.array([uuid.UUID(int=i + 1).bytes for i in range(n)], pa.binary(16)),
            "card": [f"card-{c}" for c in card],
            "device_id": pa.array([None if d < 0 else f"dev-{d}" for d in device], pa.string()),
            "t": pa.array(t_ms, pa.int64()),
            "cents": pa.array(np.where(pence < 0, 100, pence), pa.int64()),
            "currency": np.where(pence < 0, "XXX", "GBP"),
        }
    )
    with duckdb.connect(str(tmp_path / "stream.duckdb")) as con:
        con.execute(
            "CREATE TABLE transactions AS SELECT CAST(id AS UUID) AS id, 7 AS run_id, "
            "card AS card_hash, device_id, make_timestamp(t * 1000) AS created_at, "
            "CAST(cents AS DECIMAL(18, 2)) / 100 AS amount, currency FROM rows"
        )
        result = con.sql(attributes_sql() + " ORDER BY id").df()
    pence_sum = (result["amount_per_card_24h"].astype(float) * 100).round().astype(np.int64)
    return np.column_stack(
        [
            result["velocity_count"],
            result["payments_per_card_24h"],
            pence_sum,
            result["payments_per_device_1h"].fillna(NO_DEVICE).astype(np.int64),
            result["cards_per_device_24h"].fillna(NO_DEVICE).astype(np.int64),
            result["devices_per_card_7d"],
            result["card_age_days"],
        ]
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_path_computes_the_definitions(tmp_path: Path, seed: int) -> None:
    stream = edge_stream(seed)
    expected = brute_force(*stream)
    # the stream must reach every edge, or agreeing proves little
    assert expected[:, ALL_FIELDS.index("payments_per_card_24h")].max() >= 3
    assert expected[:, ALL_FIELDS.index("cards_per_device_24h")].max() >= 3
    assert expected[:, ALL_FIELDS.index("devices_per_card_7d")].max() >= 3
    assert (expected[:, ALL_FIELDS.index("payments_per_device_1h")] == NO_DEVICE).sum() > 100
    assert expected[:, ALL_FIELDS.index("card_age_days")].max() >= 7
    np.testing.assert_array_equal(live_path(*stream), expected)
    np.testing.assert_array_equal(bulk_path(stream, awkward_cuts(stream, seed)), expected)
    np.testing.assert_array_equal(bulk_path(stream, []), expected)
    stored = [ALL_FIELDS.index(f) for f in FIELDS]
    np.testing.assert_array_equal(sql_path(tmp_path, *stream), expected[:, stored])


def test_a_window_edge_is_exclusive_and_ties_count_by_arrival() -> None:
    """One card, one device: t − W has left the window, t − W + 1 has not; a same-millisecond
    earlier arrival counts, the payment itself does not."""
    t = np.array([0, 0, 1, DAY_MS, DAY_MS + 1, DAY_MS + 2, WEEK_MS + 1, WEEK_MS + 2])
    n = len(t)
    device = np.array([0, 1, 0, 2, 0, 0, 3, 3])
    counts = HistoryTracker().update(np.zeros(n, np.int64), device, np.zeros(n), t)
    # at t = DAY the payments at 0 have left; at DAY + 1 the one at 1 has too
    assert counts.payments_per_card_24h.tolist() == [0, 1, 2, 1, 1, 2, 0, 1]
    assert counts.cards_per_device_24h.tolist() == [0, 0, 1, 0, 0, 1, 0, 1]
    # at WEEK + 1 devices 0 (t=DAY+1, DAY+2) and 2 (t=DAY) are in the window, 1 (t=0) is not
    assert counts.devices_per_card_7d.tolist() == [0, 1, 2, 2, 3, 3, 2, 3]
    assert counts.card_age_days.tolist() == [0, 0, 0, 1, 1, 1, 7, 7]


def test_the_bulk_path_agrees_when_group_and_time_do_not_pack(monkeypatch) -> None:
    """The unpacked way (lexsort merge) gives the same values as packed (group, time) keys."""
    stream = edge_stream(4, n=600)
    packed = bulk_path(stream, awkward_cuts(stream, 4))
    monkeypatch.setattr(features, "_GROUP_BITS", 0)  # nothing fits: every search merges
    np.testing.assert_array_equal(bulk_path(stream, awkward_cuts(stream, 4)), packed)
    np.testing.assert_array_equal(packed, brute_force(*stream))


def test_small_chunks_are_merged_into_blocks_and_old_blocks_forgotten() -> None:
    stream = edge_stream(5, n=900)
    tracker = HistoryTracker()
    for a in range(0, 900, 7):
        tracker.update(*(column[a : a + 7] for column in stream))
    blocks = tracker._blocks
    assert len(blocks) <= 2  # 7-row chunks coalesce
    newest = int(stream[3][-1])
    assert int(blocks[0].t[-1]) > newest - WEEK_MS - 1  # nothing wholly older than a week


def test_live_state_memory_is_bounded_by_the_longest_window() -> None:
    """A card that paid once, long ago, keeps only its first payment (and pair count)."""
    state = FeatureState()
    for i in range(2_000):  # 2,000 cards, one payment each, an hour apart: 83 days
        state.observe(f"card-{i}", f"dev-{i}", "GBP", i * HOUR_MS, 100)
        state.counts("card-x", None, "GBP", i * HOUR_MS)  # lookups drive the sweep
    # a week of cards (and those the running sweep has not reached yet), a day of devices
    assert len(state._cards) <= 2 * 7 * 24 and len(state._devices) <= 2 * 7 * 24
    assert len(state._first) == 2_000  # card_age_days needs every card's first payment
    assert state.counts("card-0", "dev-0", "GBP", 2_000 * HOUR_MS)[1] == 1  # pair count kept


def stored_attributes(store, where: str) -> np.ndarray:
    frame = read_frame(
        store,
        "SELECT velocity_count, payments_per_card_24h, "
        "CAST(amount_per_card_24h * 100 AS BIGINT) AS pence, payments_per_device_1h, "
        "cards_per_device_24h, devices_per_card_7d, card_age_days, "
        "CAST(amount_in_gbp * 100 AS BIGINT) AS gbp "
        f"FROM transactions WHERE {where} ORDER BY id",
    )
    return frame.fillna(-1).astype(np.int64).to_numpy()


def backfilled_attributes(store, where: str) -> np.ndarray:
    frame = read_frame(
        store,
        "SELECT velocity_count, payments_per_card_24h, "
        "CAST(amount_per_card_24h * 100 AS BIGINT) AS pence, payments_per_device_1h, "
        "cards_per_device_24h, devices_per_card_7d, card_age_days, "
        f"CAST(amount_in_gbp * 100 AS BIGINT) AS gbp FROM ({attributes_sql(where)}) "
        "ORDER BY id",
    )
    return frame.fillna(-1).astype(np.int64).to_numpy()


RUN = {"rows": 6_000, "seed": 12, "days": 9, "fraud_rate": 0.2, "chunk_rows": 777}


def test_a_generated_run_stores_what_the_back_fill_computes(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "run.duckdb", card_key="history-key") as eng:
        run = eng.simulate(RUN)
        stored = stored_attributes(eng.store, f"run_id = {run.id}")
        backfilled = backfilled_attributes(eng.store, f"run_id = {run.id}")
    assert len(stored) == 6_000 and stored[:, 5].max() >= 2 and stored[:, 4].max() >= 2
    np.testing.assert_array_equal(stored, backfilled)


def test_the_v10_migration_back_fills_an_older_file_with_the_trackers_values(
    tmp_path: Path,
) -> None:
    """A run generated now, copied into a file at schema v8 without the new columns (and
    beside live rows): migrating it back-fills exactly the values the tracker stored."""
    new_columns = (
        "amount_in_gbp", "payments_per_card_24h", "amount_per_card_24h",
        "payments_per_device_1h", "cards_per_device_24h", "devices_per_card_7d", "card_age_days",
        "rule_index", "action", "flag_rule",  # v11's, derived by its own migration
        *LATER_COLUMNS,  # v14's dispute_reason is derived by its own migration
    )  # fmt: skip
    with Engine.open(tmp_path / "new.duckdb", card_key="history-key") as eng:
        # no friendly fraud (v14 added it), no counterfeit (v17)
        no_counterfeit = {**dict.fromkeys(SCENARIOS, 1.0), "counterfeit": 0.0}
        run = eng.simulate({**RUN, "difficulty": "easy", "scenario_mix": no_counterfeit})
        for card in ("4111111111111111", "5555555555554444"):
            eng.authorize(payment_body(card=card, device_id="phone-1", currency="AED"))
        expected = stored_attributes(eng.store, "TRUE")
    old = tmp_path / "old.duckdb"
    with database_at_schema(old, 8) as con:
        con.execute(f"ATTACH '{tmp_path / 'new.duckdb'}' AS new (READ_ONLY)")
        con.execute(
            "INSERT INTO transactions BY NAME SELECT * EXCLUDE "
            f"({', '.join(new_columns)}) FROM new.transactions ORDER BY id"
        )
        con.execute("INSERT INTO runs SELECT * FROM new.runs")
        con.execute("UPDATE run_id_counter SET last_id = (SELECT max(id) FROM runs)")
    with Engine.open(old, card_key="history-key") as eng:
        migrated = stored_attributes(eng.store, "TRUE")
        assert eng.get_run(run.id).rows_written == RUN["rows"]
    np.testing.assert_array_equal(migrated, expected)


def test_live_payments_store_and_answer_the_definitions(client, engine) -> None:
    """Payments through the API (live time is wall time: many share a millisecond), on shared
    devices and without one, in a currency without a rate: the stored attributes equal the
    back-fill over the stored rows, and GET /transaction/{id} answers them."""
    cards = ["4111111111111111", "5555555555554444", "4012888888881881", "378282246310005"]
    ids = []
    for i in range(40):
        body = payment_body(
            card=cards[i % 4],
            amount=f"{10 + i}.25",
            currency=["GBP", "EUR", "AED"][i % 3],
            device_id=f"dev-{i % 3}" if i % 5 else None,
        )
        response = client.post("/payment", json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["transaction_id"])
    stored = stored_attributes(engine.store, "run_id IS NULL")
    np.testing.assert_array_equal(stored, backfilled_attributes(engine.store, "run_id IS NULL"))
    assert stored[:, 1].max() == 9 and stored[:, 4].max() >= 3  # history accumulated

    answered = [client.get(f"/transaction/{tid}").json()["attributes"] for tid in ids]
    assert answered[0] == {
        "amount_in_gbp": 10.25,
        "payments_per_card_1h": 0,
        "payments_per_card_24h": 0,
        "amount_per_card_24h": 0.0,
        "payments_per_device_1h": None,  # the first payment sent no device id
        "cards_per_device_24h": None,
        "devices_per_card_7d": 0,
        "is_new_device": False,
        "card_age_days": 0,
    }
    assert answered[2]["amount_in_gbp"] is None  # AED has no reference rate
    for row, attributes in zip(stored, answered, strict=True):
        velocity, per_day, pence, per_device, cards_on_device, devices, age, gbp = row
        assert attributes["payments_per_card_1h"] == velocity
        assert attributes["payments_per_card_24h"] == per_day
        assert Decimal(str(attributes["amount_per_card_24h"])) == Decimal(int(pence)) / 100
        assert attributes["payments_per_device_1h"] == _or_none(per_device)
        assert attributes["cards_per_device_24h"] == _or_none(cards_on_device)
        assert attributes["devices_per_card_7d"] == devices
        assert attributes["card_age_days"] == age
        gbp = _or_none(gbp)
        assert attributes["amount_in_gbp"] == (None if gbp is None else float(Decimal(gbp) / 100))


def _or_none(stored: np.int64) -> int | None:
    return None if stored == -1 else int(stored)


def test_a_restarted_engine_restores_history_from_what_is_stored(db_path: Path) -> None:
    """Live rows before and after a restart: the restored state (aggregates plus the last
    day's rows, not a replay) gives the values the back-fill computes over all stored rows."""
    cards = ["4111111111111111", "5555555555554444", "4012888888881881"]
    for restart in range(3):
        with Engine.open(db_path, card_key="restart-key") as eng:
            for i in range(12):
                eng.authorize(
                    payment_body(
                        card=cards[(i + restart) % 3],
                        currency=["GBP", "USD", "AED"][i % 3],
                        device_id=f"dev-{i % 2}" if i % 4 else None,
                    )
                )
    with Engine.open(db_path, card_key="restart-key") as eng:
        stored = stored_attributes(eng.store, "run_id IS NULL")
        np.testing.assert_array_equal(stored, backfilled_attributes(eng.store, "run_id IS NULL"))
        assert stored[:, 1].max() >= 11


def test_start_up_restores_the_state_a_full_replay_would_build(tmp_path: Path) -> None:
    """A 9-day stream stored as live rows, its fraud rows disputed: the start-up load
    (aggregates, the last week's pairs, the last day's rows, each pair's approved undisputed
    payments) answers every card and device exactly as replaying all rows does, history counts
    and device trust, at the newest payment's time and at each window's edge after it."""
    db = tmp_path / "live.duckdb"
    with Engine.open(db, card_key="restore-key") as eng:
        run = eng.simulate(RUN)
        with eng.store.write() as tx:  # the run becomes live history, its fraud disputed
            tx.execute("UPDATE transactions SET run_id = NULL WHERE run_id = ?", [run.id])
            tx.execute(  # fraud disputes (some twice), and others that leave trust alone
                "INSERT INTO disputes SELECT id, reason, created_at, created_at FROM "
                "transactions, (VALUES ('fraud'), ('friendly_fraud'), ('not_received')) r(reason) "
                "WHERE CASE reason WHEN 'fraud' THEN is_fraud "
                "WHEN 'friendly_fraud' THEN is_fraud AND hash(id) % 2 = 0 "
                "ELSE NOT is_fraud AND hash(id) % 5 = 0 END"
            )
        rows = read_frame(
            eng.store,
            "SELECT card_hash, device_id, CAST(currency AS VARCHAR) AS currency, "
            "epoch_ms(created_at) AS t, "
            "coalesce(CAST(amount_in_gbp * 100 AS BIGINT), -1) AS pence, "
            "status = 'Approved' AS approved, is_fraud FROM transactions ORDER BY id",
        )
    stream = [
        (card.hex, device if isinstance(device, str) else None, currency, int(t), int(pence))
        for card, device, currency, t, pence, _, _ in rows.itertuples(index=False)
    ]
    replayed = FeatureState()
    first_kept: dict[tuple[str, str], int] = {}  # each pair's first approved legitimate time
    for payment, approved, fraud in zip(stream, rows.approved, rows.is_fraud, strict=True):
        replayed.observe(*payment)
        pair = [payment[:2]]
        replayed.pair_history(pair, payment[3])
        replayed.approve(pair, np.array([approved]), payment[3])
        if approved and payment[1] is not None and not fraud:
            first_kept.setdefault(payment[:2], payment[3])
        if approved and fraud and payment[1] is not None:  # disputed at once
            replayed.dispute(*payment[:2], payment[3], first_kept.get(payment[:2]))
    with Engine.open(db, card_key="restore-key") as eng:
        restored = eng._live.features
    newest = stream[-1][3]
    probes = {(card, device): currency for card, device, currency, _, _ in stream}
    trusted = 0
    for t in (newest, newest + 1, newest + HOUR_MS, newest + DAY_MS, newest + WEEK_MS):
        for (card, device), currency in probes.items():  # lookups in time order, as live
            key = (card, device, currency, t)
            assert restored.counts(*key) == replayed.counts(*key), key
            pair = [(card, device)]
            got, want = restored.pair_history(pair, t), replayed.pair_history(pair, t)
            assert as_pairs(got) == as_pairs(want), key
            trusted += int(got.settled[0] > 0)
    assert trusted > 1_000 and rows.is_fraud.sum() > 500


def as_pairs(pairs) -> tuple[int, int, int]:
    return int(pairs.settled[0]), int(pairs.tenure_ms[0]), int(pairs.idle_ms[0])


def live_groups(card, device, currency, t_ms, pence) -> np.ndarray:
    """The live writer's way: payments of one event time (ties) as groups of up to 5, each
    through :meth:`FeatureState.observe_group` in one pass."""
    state = FeatureState()
    parts = []
    starts = np.flatnonzero(np.r_[True, t_ms[1:] != t_ms[:-1]])
    for a, b in itertools.pairwise([*starts.tolist(), len(t_ms)]):
        for lo in range(a, b, 5):
            rows = range(lo, min(lo + 5, b))
            payments = [
                (
                    f"card-{card[i]}",
                    None if device[i] < 0 else f"dev-{device[i]}",
                    f"CUR{currency[i]}",
                    int(pence[i]),
                )
                for i in rows
            ]
            parts.append(as_matrix(state.observe_group(payments, int(t_ms[lo]))))
    return np.vstack(parts)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_live_groups_in_one_pass_compute_the_definitions(seed: int) -> None:
    stream = edge_stream(seed)
    assert (np.diff(stream[3]) == 0).sum() > 200  # many groups hold several payments
    np.testing.assert_array_equal(live_groups(*stream), brute_force(*stream))


def test_live_group_state_memory_is_bounded_by_the_longest_window() -> None:
    """Windows are evicted lazily (only once something in them is due to leave), and the sweep
    still forgets what nothing looks up again."""
    state = FeatureState()
    for i in range(2_000):  # 2,000 cards, one payment each, an hour apart: 83 days
        state.observe_group([(f"card-{i}", f"dev-{i}", "GBP", 100)], i * HOUR_MS)
    assert len(state._cards) <= 2 * 7 * 24 and len(state._devices) <= 2 * 7 * 24
    assert len(state._first) == 2_000
    counts = state.observe_group([("card-0", "dev-0", "GBP", 1)], 2_000 * HOUR_MS)
    assert as_matrix(counts).tolist() == [[0, 1, 0, 0, 0, 0, 0, 0, 0, 83]]
