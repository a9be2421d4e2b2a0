"""PCI-style data check: full card numbers never reach the database file, its WAL, backups,
logs or responses; the stored fingerprint is a keyed hash, not a plain SHA-256."""

from __future__ import annotations

import hashlib
import logging

from support import README_PAYMENT, TEST_CARDS, payment_body

from engine.cards import luhn_valid


def _spaced(card: str) -> str:
    return " ".join(card[i : i + 4] for i in range(0, len(card), 4))


def _dashed(card: str) -> str:
    return _spaced(card).replace(" ", "-")


def _free_text_with(card: str) -> list[tuple[str, str]]:
    """(field, value) pairs of payment free text holding the card number in some form."""
    return [
        ("merchant", f"Shop {card}"),
        ("merchant", f"Shop{card}x"),
        ("merchant", _spaced(card)),
        ("device_id", card),
        ("device_id", f"dev-{_dashed(card)}"),
    ]


def _forms(card: str) -> list[str]:
    """The card number as written together, in groups of four with spaces and with dashes."""
    return [card, _spaced(card), _dashed(card)]


def _drive_traffic(client, admin_headers) -> list[str]:
    """Payments, lookups, audits, stats and rejected requests with every test card."""
    texts: list[str] = []

    def keep(response) -> None:
        texts.append(response.text)
        texts.append(repr(dict(response.headers)))

    keep(client.post("/payment", json=README_PAYMENT))
    for i, card in enumerate(TEST_CARDS * 3):
        amount = ["9.99", "499.99", "750.00"][i % 3]
        created = client.post("/payment", json=payment_body(card, amount, device_id=f"d{i % 4}"))
        keep(created)
        assert created.status_code == 201
        tid = created.json()["transaction_id"]
        keep(client.get(f"/transaction/{tid}"))
        keep(client.get(f"/audit/{tid}"))
        # Rejected requests carrying the full card number somewhere.
        keep(client.post("/payment", json=payment_body(card, "-1")))
        keep(client.post("/payment", json=payment_body(card, currency="XXX")))
        keep(client.post("/payment", json={**payment_body(card), "cvv": card}))
        keep(client.post("/payment", json={**payment_body(card), card: card}))
        keep(client.post("/payment", content=f'{{"card_number": "{card}", "amount": '.encode()))
        keep(client.post("/payment", json=payment_body(card + "0" * 5)))
        keep(client.get(f"/transaction/{card}"))
        keep(client.get(f"/audit/{card}"))
        if not luhn_valid(card):  # the README's example card is not a real card number
            continue
        # Card numbers outside the card field: refused where stored, masked where echoed.
        keep(client.get(f"/simulations/{card}"))  # 404 message quoting the path
        keep(client.get(f"/x{card}y"))  # access log: the number touching letters
        keep(client.get("/health", headers={"Request-Id": card}))  # echoed and logged
        keep(client.get("/health", headers={"Request-Id": f"req-{card}"}))
        for field, value in _free_text_with(card):
            refused = client.post("/payment", json=payment_body(card, **{field: value}))
            keep(refused)
            assert refused.status_code == 400 and refused.json()["error"]["field"] == field
        for key in (card, f"key-{card}", _dashed(card)):
            for path, body in (("/payment", payment_body(card)), ("/simulations", {"rows": 10})):
                refused = client.post(path, json=body, headers={"Idempotency-Key": key})
                keep(refused)
                assert refused.status_code == 400, refused.text
                assert refused.json()["error"]["field"] == "Idempotency-Key"
    keep(client.get("/stats"))
    keep(client.get("/health"))
    return texts


def test_no_full_card_number_in_db_files_logs_or_responses(
    client, engine, db_path, admin_headers, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = _drive_traffic(client, admin_headers)
    total = client.get("/stats").json()["total"]
    assert total == 1 + 3 * len(TEST_CARDS)

    # Every VARCHAR column of every table, searched in SQL (storage compression could hide a
    # plain-text copy from a byte scan of the file).
    columns = engine.store.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE data_type = 'VARCHAR' AND table_schema = 'main'"
    )
    assert ("transactions", "merchant") in columns and ("audit_log", "payload") in columns
    for card in TEST_CARDS:
        digest = hashlib.sha256(card.encode()).hexdigest()
        for table, column in columns:
            hits = engine.store.query(
                f'SELECT count(*) FROM "{table}" WHERE contains("{column}", ?) '
                f'OR contains("{column}", ?) OR contains("{column}", ?)',
                [card, digest[:32], digest],
            )
            assert hits == [(0,)], (card, table, column)

    backup = engine.store.backup()  # backups are scanned too
    engine.close()  # checkpoint: the file now holds everything

    files = [p for p in db_path.parent.rglob("*") if p.is_file()]
    assert db_path in files and backup in files
    blobs = {str(p): p.read_bytes() for p in files}
    # Every record from the product's loggers (httpx's client-side URL log is the test's own).
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name.startswith("ptsim") for r in records)
    log_text = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in records)
    response_text = "\n".join(texts)
    for card in TEST_CARDS:
        digest = hashlib.sha256(card.encode()).hexdigest()
        forms = _forms(card)
        needles = [card.encode("utf-16-le"), digest.encode(), digest[:32].encode()]
        needles += [form.encode() for form in forms]
        for name, blob in blobs.items():
            for needle in needles:
                assert needle not in blob, (card, name)
        for needle in (*forms, digest, digest[:32]):
            assert needle not in log_text, card
            assert needle not in response_text, card
    # The masked form is what humans see.
    assert "400000******7890" in response_text
