"""PCI-style data check on the real server: after payments, a card list and rejected requests
carrying full test card numbers, no card number is in the database file, its WAL, the backups,
the card-key file or the server's log, as text, as SQL-visible values, or as a 64-bit integer."""

from __future__ import annotations

import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
from support import ADMIN_TOKEN, TEST_CARDS, payment_body

from engine.cards import luhn_valid
from tests.reliability.live_server import PTSIM, live_server_fixture  # noqa: F401 (the fixture)

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _drive(url: str) -> list[str]:
    """Payments with every test card plus rejected requests carrying them; the answers' text."""
    texts: list[str] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i, card in enumerate(TEST_CARDS):
            key = {"Idempotency-Key": f"pci-{i}"}
            created = client.post("/payment", json=payment_body(card, 10 + i), headers=key)
            assert created.status_code == 201, created.text
            tid = created.json()["transaction_id"]
            replay = client.post("/payment", json=payment_body(card, 10 + i), headers=key)
            conflict = client.post("/payment", json=payment_body(card, 11 + i), headers=key)
            assert (replay.status_code, conflict.status_code) == (201, 409)
            rejected = [
                client.post("/payment", json=payment_body(card, -5)),
                client.post("/payment", json=payment_body(card, currency="ZZZ")),
                client.post("/payment", json={**payment_body(card), "pan": card}),
                client.post("/payment", json=payment_body(card + "1234567")),
                client.post("/payment", content=f'{{"card_number": "{card}"'.encode()),
                client.get(f"/transaction/{card}"),
                client.get(f"/audit/{card}"),
            ]
            assert all(400 <= r.status_code < 500 for r in rejected)
            lookups = [client.get(f"/transaction/{tid}"), client.get(f"/audit/{tid}")]
            outside = _outside_the_card_field(client, card) if luhn_valid(card) else []
            for response in [created, replay, conflict, *rejected, *lookups, *outside]:
                texts.append(response.text + repr(dict(response.headers)))
        texts += _card_lists(client)
        texts.append(client.get("/stats").text)
    return texts


def _card_lists(client: httpx.Client) -> list[str]:
    """A card list of every test card (stored as fingerprints only), read back, and lists of
    other kinds that carry the cards (refused naming the item); the answers' text."""
    put = client.put(
        "/lists/stolen_cards", json={"kind": "card", "items": TEST_CARDS}, headers=AUTH
    )
    assert put.status_code == 200 and put.json()["item_count"] == len(TEST_CARDS), put.text
    refused = [
        client.put(
            "/lists/shops", json={"kind": "merchant", "items": [f"Shop {card}"]}, headers=AUTH
        )
        for card in TEST_CARDS
        if luhn_valid(card)
    ] + [client.put("/lists/bins", json={"kind": "bin", "items": TEST_CARDS}, headers=AUTH)]
    assert all(r.status_code == 400 and r.json()["error"]["field"] == "items[0]" for r in refused)
    read = [client.get("/lists/stolen_cards"), client.get("/lists")]
    assert all(r.status_code == 200 for r in read)
    return [r.text for r in [put, *refused, *read]]


def _grouped(card: str, separator: str) -> str:
    return separator.join(card[i : i + 4] for i in range(0, len(card), 4))


def _outside_the_card_field(client: httpx.Client, card: str) -> list[httpx.Response]:
    """The card in free text, keys, headers and paths: refused where it would be stored (400
    naming the field), masked or replaced where it would be echoed or logged."""
    refused = {
        "merchant": client.post("/payment", json=payment_body(card, merchant=f"Shop {card}")),
        "device_id": client.post(
            "/payment", json=payment_body(card, device_id=_grouped(card, "-"))
        ),
        "Idempotency-Key": client.post(
            "/payment", json=payment_body(card), headers={"Idempotency-Key": f"k{card}"}
        ),
    }
    simulation = client.post(
        "/simulations", json={"rows": 10}, headers={"Idempotency-Key": _grouped(card, " ")}
    )
    for field, response in [*refused.items(), ("Idempotency-Key", simulation)]:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == field
    echoed = [
        client.get(f"/simulations/{card}"),
        client.get(f"/x{card}y"),
        client.get("/health", headers={"Request-Id": card}),
    ]
    assert [r.status_code for r in echoed] == [404, 404, 200]
    return [*refused.values(), simulation, *echoed]


def _card_patterns(card: str) -> list[bytes]:
    """The card as ASCII (also in groups of four with spaces or dashes), UTF-16 and a
    little/big-endian 64-bit integer."""
    number = int(card)
    return [
        card.encode(),
        _grouped(card, " ").encode(),
        _grouped(card, "-").encode(),
        card.encode("utf-16-le"),
        struct.pack("<q", number),
        struct.pack(">q", number),
    ]


def _varchar_hits(db: Path, card: str) -> list[tuple[str, str]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR' AND table_schema = 'main'"
        ).fetchall()
        return [
            (table, column)
            for table, column in columns
            if con.execute(
                f'SELECT count(*) FROM "{table}" WHERE contains("{column}", ?)', [card]
            ).fetchone()[0]
        ]
    finally:
        con.close()


def _scan(folder: Path, texts: list[str]) -> tuple[list[Path], list[str]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    found = []
    for path in files:
        data = path.read_bytes()
        for card in TEST_CARDS:
            found += [f"{path.name}: {card}" for p in _card_patterns(card) if p in data]
    for card in TEST_CARDS:
        forms = (card, _grouped(card, " "), _grouped(card, "-"))
        found += [f"response: {card}" for text in texts for form in forms if form in text]
    return files, found


def test_no_full_card_number_anywhere_on_disk_or_in_logs(live_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "pci" / "pci.duckdb"
    db.parent.mkdir()
    server = live_server(db)
    texts = _drive(server.url)
    assert httpx.post(f"{server.url}/admin/backup", headers=AUTH, timeout=30).status_code == 200
    for _ in range(100):  # the access log is written in batches every 0.5 s: let one land
        if "/admin/backup" in server.log_path.read_text(errors="replace"):
            break
        time.sleep(0.05)
    server.kill()  # SIGKILL: the WAL is left behind, as after a crash
    files, found = _scan(db.parent, texts)
    names = {p.name for p in files}
    assert "pci.duckdb.cardkey" in names and "pci.duckdb" in names
    assert any(p.parent.name == "pci.duckdb.backups" for p in files)
    assert not found, found

    # The CLI opens the crashed file (replaying its WAL), checkpoints it and writes a backup.
    made = subprocess.run(
        [PTSIM, "backup", "--db", str(db)], capture_output=True, text=True, timeout=120, check=False
    )
    assert made.returncode == 0, made.stderr
    files, found = _scan(db.parent, texts)
    log = server.log_path.read_text(errors="replace") + made.stdout + made.stderr
    assert "ptsim.access" in log  # the server's own log was captured
    found += [
        f"server log: {card}"
        for card in TEST_CARDS
        for form in (card, _grouped(card, " "), _grouped(card, "-"))
        if form in log
    ]
    found += [f"{card} in {hit}" for card in TEST_CARDS for hit in _varchar_hits(db, card)]
    assert len([p for p in files if p.parent.name == "pci.duckdb.backups"]) == 2
    assert not found, found
    print(
        f"\npci: {len(files)} files and the server log scanned for {len(TEST_CARDS)} cards: 0 hits"
    )
