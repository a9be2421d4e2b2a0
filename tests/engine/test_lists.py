"""Named lists: versions, normalising and refusing items, snapshots, SQL membership, pruning."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from support import TEST_CARDS, payment_body

from engine import lists as lists_module
from engine.errors import InvalidRequestError, NotFoundError
from engine.service import Engine


def _stored_rows(eng: Engine) -> tuple[int, int, int]:
    return eng.store.query(
        "SELECT (SELECT count(*) FROM list_versions), (SELECT count(*) FROM list_items), "
        "(SELECT count(*) FROM list_cards)"
    )[0]


# -- versions ------------------------------------------------------------------------------


def test_every_change_is_a_new_version_and_an_unchanged_list_is_not(engine: Engine) -> None:
    lists = engine.lists
    first = lists.put("risky_bins", "bin", ["411111", "422222"], note="first")
    assert (first.changed, first.summary.version, first.summary.item_count) == (True, 1, 2)

    same = lists.put("risky_bins", "bin", [" 422222", "411111", "411111"], note="ignored")
    assert same.changed is False
    assert same.summary == first.summary  # order, whitespace and duplicates make no difference

    second = lists.put("risky_bins", "bin", ["433333"])
    assert (second.changed, second.summary.version) == (True, 2)
    assert second.summary.content_hash != first.summary.content_hash
    # the old version stays readable exactly as it was: a pinned policy decides with it
    assert lists.page("risky_bins", 1)[1] == ["411111", "422222"]
    assert lists.page("risky_bins")[1] == ["433333"]
    assert [v.version for v in lists.versions("risky_bins")] == [2, 1]
    assert [s.version for s in lists.summaries()] == [2]


def test_the_same_items_under_another_kind_are_a_new_version(engine: Engine) -> None:
    engine.lists.put("codes", "text", ["GBP"])
    changed = engine.lists.put("codes", "currency", ["GBP"])
    assert (changed.changed, changed.summary.version, changed.summary.kind) == (True, 2, "currency")


def test_a_change_is_audited(engine: Engine) -> None:
    engine.lists.put("vip", "merchant", ["Amazon"], note="launch")
    rows = engine.store.query("SELECT event, payload FROM audit_log WHERE event = 'list.updated'")
    assert len(rows) == 1 and '"name": "vip"' in rows[0][1] and '"version": 1' in rows[0][1]


def test_lists_survive_a_restart_and_a_data_reset(db_path) -> None:
    with Engine.open(db_path, card_key="k" * 32) as eng:
        eng.lists.put("devices", "device", ["ios-1", "android-2"])
        eng.reset()  # deletes payments and runs; lists are configuration, like policies
    with Engine.open(db_path, card_key="k" * 32) as eng:
        assert eng.lists.page("devices")[1] == ["android-2", "ios-1"]


def test_unknown_lists_and_versions_are_not_found(engine: Engine) -> None:
    with pytest.raises(NotFoundError, match="No list named nope"):
        engine.lists.summary("nope")
    engine.lists.put("x", "text", ["a"])
    with pytest.raises(NotFoundError, match="no version 5"):
        engine.lists.items("x", 5)
    with pytest.raises(NotFoundError):
        engine.lists.membership_sql("y", 1, "merchant")


# -- normalisation and refusals --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "items", "stored"),
    [
        ("bin", ["400000", " 400000 ", "012345"], ["012345", "400000"]),
        ("currency", ["gbp", "EUR", " usd"], ["EUR", "GBP", "USD"]),
        ("device", ["ios-1", " ios-1"], ["ios-1"]),
        ("merchant", ["  Corner Shop ", "Corner Shop", "Amazon"], ["Amazon", "Corner Shop"]),
        ("text", ["café ", "b", "café"], ["b", "café"]),
        ("text", [], []),
    ],
)
def test_items_are_normalised_folded_and_sorted(engine: Engine, kind, items, stored) -> None:
    outcome = engine.lists.put("l", kind, items)
    assert outcome.summary.item_count == len(stored)
    assert engine.lists.page("l")[1] == stored
    assert engine.lists.items("l", 1).items.tolist() == stored


@pytest.mark.parametrize(
    ("kind", "items", "field", "says"),
    [
        ("card", ["4111111111111111", "4111-1111-1111-1111"], "items[1]", "12–19 digits"),
        ("card", ["12345678901"], "items[0]", "12–19 digits"),
        ("card", [4111111111111111], "items[0]", "must be a string"),
        ("bin", ["411111", "41111122"], "items[1]", "exactly 6 digits: :card_bin:"),
        ("bin", ["41111"], "items[0]", "exactly 6 digits"),
        ("bin", [None], "items[0]", "must be a string"),
        ("currency", ["GBP", "XXX"], "items[1]", "ISO 4217"),
        ("device", ["has space"], "items[0]", "printable ASCII"),
        ("device", ["d" * 65], "items[0]", "1–64"),
        ("device", ["dev-4111111111111111"], "items[0]", "must not contain a card number"),
        ("merchant", ["   "], "items[0]", "must not be empty"),
        ("merchant", ["m" * 101], "items[0]", "at most 100"),
        ("merchant", ["Shop 4111 1111 1111 1111"], "items[0]", "must not contain a card number"),
        ("text", ["ok", "t" * 201], "items[1]", "at most 200"),
        ("text", ["line\nbreak"], "items[0]", "printable"),
        ("text", ["x4242424242424242y"], "items[0]", "must not contain a card number"),
        ("colour", ["red"], "kind", "must be one of card, bin"),
    ],
)
def test_bad_items_are_refused_by_index_and_nothing_is_stored(
    engine: Engine, kind, items, field, says
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        engine.lists.put("l", kind, items)
    assert refused.value.field == field
    assert says in refused.value.message
    assert "4111" not in refused.value.message and "4000" not in refused.value.message
    assert _stored_rows(engine) == (0, 0, 0)


@pytest.mark.parametrize(
    "name", ["", "1abc", "has-dash", "a" * 65, "x'; DROP TABLE list_items; --", "c4111111111111111"]
)
def test_names_that_cannot_be_written_as_at_name_are_refused(engine: Engine, name) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        engine.lists.put(name, "text", ["a"])
    assert refused.value.field == "name"


def test_a_note_holding_a_card_number_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        engine.lists.put("l", "text", ["a"], note="from 4111111111111111")
    assert refused.value.field == "note"
    assert _stored_rows(engine) == (0, 0, 0)


def test_more_than_the_item_limit_is_refused(engine: Engine, monkeypatch) -> None:
    monkeypatch.setattr(lists_module, "MAX_ITEMS", 3)
    engine.lists.put("l", "bin", ["100000", "200000", "300000"])
    with pytest.raises(InvalidRequestError) as refused:
        engine.lists.put("l", "bin", ["100000", "200000", "300000", "400000"])
    assert (refused.value.field, refused.value.message) == (
        "items",
        "Field 'items' must have at most 3 items.",
    )


# -- cards -----------------------------------------------------------------------------------


def test_card_lists_hold_the_fingerprints_payments_store(engine: Engine) -> None:
    paid = engine.authorize(payment_body(card=TEST_CARDS[1]))
    outcome = engine.lists.put("stolen", "card", [TEST_CARDS[1], TEST_CARDS[2], TEST_CARDS[1]])
    assert outcome.summary.item_count == 2

    (stored_hash,) = engine.store.query(
        "SELECT card_hash FROM transactions WHERE id = ?", [paid.transaction_id]
    )[0]
    snapshot = engine.lists.items("stolen", 1)
    assert snapshot.items.dtype == np.dtype("S16")
    assert stored_hash.bytes in snapshot.as_set()
    assert stored_hash.hex in engine.lists.page("stolen")[1]  # pages show fingerprints only
    assert not any(card in str(engine.lists.page("stolen")) for card in TEST_CARDS)

    sql, params = engine.lists.membership_sql("stolen", 1, "card_hash")
    hits = engine.store.query(f"SELECT count(*) FILTER ({sql}) FROM transactions", params)
    assert hits == [(1,)]


def test_a_large_card_list_is_sorted_unique_and_read_back_whole(engine: Engine) -> None:
    rng = np.random.default_rng(3)
    numbers = ["4" + "".join(map(str, digits)) for digits in rng.integers(0, 10, (5_000, 15))]
    engine.lists.put("many", "card", numbers + numbers[:100])
    snapshot = engine.lists.items("many", 1)
    assert len(snapshot.items) == len(set(numbers))
    assert (np.sort(snapshot.items) == snapshot.items).all()
    raw = engine.store.query("SELECT card_hash FROM list_cards WHERE name = 'many'")
    assert {u.bytes for (u,) in raw} == snapshot.as_set()


# -- SQL membership --------------------------------------------------------------------------


def test_membership_sql_binds_its_values_and_is_never_null(engine: Engine) -> None:
    engine.authorize(payment_body(card="4000001234567890", device_id=None, merchant="Amz"))
    engine.authorize(payment_body(card="5555555555554444", device_id="ios-1"))
    engine.lists.put("bins", "bin", ["400000"])
    engine.lists.put("devices", "device", ["ios-1"])
    engine.lists.put("shops", "merchant", ["Amz"])

    bin_sql, bin_params = engine.lists.membership_sql("bins", 1, "card_bin")
    dev_sql, dev_params = engine.lists.membership_sql("devices", 1, "device_id")
    shop_sql, shop_params = engine.lists.membership_sql("shops", 1, "merchant")
    assert "bins" not in bin_sql.replace("$list_bins_1", "")  # the name is bound, not written
    rows = engine.store.query(
        f"SELECT card_bin, {bin_sql}, {dev_sql}, NOT {dev_sql}, {shop_sql} FROM transactions "
        "ORDER BY card_bin",
        {**bin_params, **dev_params, **shop_params},
    )
    # a payment without a device is in no device list: the test is FALSE, never NULL
    assert rows == [(400000, True, False, True, True), (555555, False, True, False, False)]


def test_membership_sql_of_two_lists_does_not_clash(engine: Engine) -> None:
    engine.lists.put("a", "text", ["x"])
    engine.lists.put("b", "text", ["y"])
    a_sql, a_params = engine.lists.membership_sql("a", 1, "'x'")
    b_sql, b_params = engine.lists.membership_sql("b", 1, "'x'")
    assert not set(a_params) & set(b_params)
    assert engine.store.query(f"SELECT {a_sql}, {b_sql}", {**a_params, **b_params}) == [
        (True, False)
    ]


# -- pruning ---------------------------------------------------------------------------------


def test_prune_keeps_pinned_and_newest_versions(engine: Engine) -> None:
    for items in (["a"], ["b"], ["c"], ["d"]):
        engine.lists.put("l", "text", items)
    engine.lists.put("other", "text", ["z"])
    engine.lists.items("l", 1)  # cached snapshots of pruned versions go too

    assert engine.lists.prune(pinned={("l", 2)}) == [("l", 1), ("l", 3)]
    assert engine.lists.page("l", 2)[1] == ["b"]
    assert engine.lists.page("l")[1] == ["d"]
    for version in (1, 3):
        with pytest.raises(NotFoundError, match="pruned"):
            engine.lists.items("l", version)
    assert [v.pruned for v in engine.lists.versions("l")] == [False, True, False, True]
    assert engine.lists.prune(pinned=set()) == [("l", 2)]
    assert engine.lists.put("l", "text", ["e"]).summary.version == 5  # numbers are never reused
    assert engine.store.query("SELECT count(*) FROM list_items WHERE name = 'l'") == [(2,)]


def test_card_list_versions_are_pruned_too(engine: Engine) -> None:
    engine.lists.put("cards", "card", [TEST_CARDS[0]])
    engine.lists.put("cards", "card", [TEST_CARDS[1]])
    assert engine.lists.prune(pinned=[]) == [("cards", 1)]
    assert engine.store.query("SELECT version FROM list_cards") == [(2,)]


def test_uuid_and_bytes_views_agree(engine: Engine) -> None:
    engine.lists.put("c", "card", [TEST_CARDS[3]])
    (item,) = engine.lists.items("c", 1).as_set()
    assert uuid.UUID(bytes=item).hex == engine.lists.page("c")[1][0]
