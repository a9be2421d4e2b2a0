"""Card data: keyed fingerprints (never plain SHA-256), masking, Luhn, the key file."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cards import FINGERPRINT_BYTES, fingerprint, load_or_create_key, luhn_valid, mask
from engine.errors import CardKeyError

CARD = "4000001234567890"


def test_fingerprint_is_hmac_not_plain_sha256() -> None:
    key = b"k" * 32
    fp = fingerprint(CARD, key)
    expected = hmac.new(key, CARD.encode(), hashlib.sha256).digest()[:FINGERPRINT_BYTES].hex()
    assert fp.card_hash == expected
    plain = hashlib.sha256(CARD.encode()).hexdigest()
    assert fp.card_hash not in plain
    assert plain[: 2 * FINGERPRINT_BYTES] != fp.card_hash
    assert fingerprint(CARD, b"other-key").card_hash != fp.card_hash
    assert CARD not in repr(fp)


def test_fingerprint_keeps_bin_last4_length_and_masks() -> None:
    fp = fingerprint(CARD, b"key")
    assert (fp.bin, fp.last4, fp.length) == ("400000", "7890", 16)
    assert mask(fp.bin, fp.last4, fp.length) == "400000******7890"
    assert mask("378282", "0005", 15) == "378282*****0005"
    assert mask("123456", "7890", 10) == "1234567890"[:6] + "7890"


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")


def test_key_file_is_created_0600_and_reused(tmp_path) -> None:
    path = tmp_path / "sub" / "db.duckdb.cardkey"
    key = load_or_create_key(path, None)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path, None) == key


def test_configured_key_wins_and_memory_gets_a_fresh_key(tmp_path) -> None:
    path = tmp_path / "db.cardkey"
    assert load_or_create_key(path, "configured-secret") == b"configured-secret"
    assert not path.exists()
    assert load_or_create_key(None, None) != load_or_create_key(None, None)


def test_engine_creates_its_key_beside_the_database_and_reuses_it(tmp_path) -> None:
    from engine.service import Engine

    db = tmp_path / "cards.duckdb"
    body = {"card_number": CARD, "amount": "10.00", "merchant": "M"}
    with Engine.open(db, seed=1, card_key="") as eng:
        eng.authorize(body)
        first = eng.store.query("SELECT card_hash FROM transactions")[0][0]
    key_file = tmp_path / "cards.duckdb.cardkey"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with Engine.open(db, seed=1, card_key="") as eng:
        eng.authorize(body)
        hashes = {h for (h,) in eng.store.query("SELECT card_hash FROM transactions")}
    assert hashes == {first}
    key = bytes.fromhex(key_file.read_text().strip())
    assert first.hex == fingerprint(CARD, key).card_hash  # stored as a UUID, same HMAC bits
    assert first.hex != hashlib.sha256(CARD.encode()).hexdigest()[: 2 * FINGERPRINT_BYTES]


@pytest.mark.parametrize("card", ["4111111111111111", "5555555555554444"])
def test_distinct_cards_get_distinct_fingerprints(card: str) -> None:
    assert fingerprint(card, b"key").card_hash != fingerprint(CARD, b"key").card_hash


def test_bulk_fingerprints_equal_the_live_ones_for_any_key_length() -> None:
    from engine.cards import fingerprint, fingerprint_digests

    numbers = ["4000001234567890", "5555555555554444", "378282246310005", "4111111111111111111"]
    for key in (b"", b"k", b"k" * 32, b"k" * 64, b"k" * 65, bytes(range(200))):
        joined = fingerprint_digests([n.encode() for n in numbers], key)
        assert [joined[i * 16 : (i + 1) * 16] for i in range(len(numbers))] == [
            fingerprint(n, key).digest for n in numbers
        ]
        # ... and both are RFC 2104 HMAC-SHA256 as the standard library computes it
        assert [fingerprint(n, key).digest for n in numbers] == [
            hmac.digest(key, n.encode(), "sha256")[:FINGERPRINT_BYTES] for n in numbers
        ]


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"", "0-byte key"), (b"abcd" * 4, "8-byte key"), (b"not a key \xff\n", "hexadecimal")],
)
def test_an_empty_short_or_garbage_key_file_is_refused(
    tmp_path: Path, content: bytes, says: str
) -> None:
    path = tmp_path / "db.duckdb.cardkey"
    path.write_bytes(content)
    with pytest.raises(CardKeyError, match=says) as refused:
        load_or_create_key(path, None)
    assert "\n" not in str(refused.value) and path.read_bytes() == content  # left as found


def test_a_missing_key_is_refused_once_the_database_holds_fingerprints(tmp_path: Path) -> None:
    from engine.service import Engine

    db = tmp_path / "keyed.duckdb"
    with Engine.open(db, seed=1, card_key="") as eng:
        eng.authorize({"card_number": CARD, "amount": "10.00", "merchant": "M"})
    key_file = tmp_path / "keyed.duckdb.cardkey"
    key_file.unlink()
    with pytest.raises(CardKeyError, match="missing but the database already holds"):
        Engine.open(db, seed=1, card_key="")
    assert not key_file.exists()  # not silently replaced
    with Engine.open(db, seed=1, card_key="k" * 32):  # the refusal closed the file
        pass


def test_the_key_is_written_atomically_and_kept_if_another_process_won(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb.cardkey"
    key = load_or_create_key(path, None)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    assert bytes.fromhex(path.read_text()) == key


def test_the_cli_says_what_is_wrong_with_the_key_in_one_sentence(tmp_path: Path) -> None:
    db = tmp_path / "cli.duckdb"
    db.with_name("cli.duckdb.cardkey").write_bytes(b"")
    ptsim = str(Path(sys.executable).with_name("ptsim"))
    env = {**os.environ, "PTSIM_CARD_KEY": "", "PTSIM_BACKUP_INTERVAL_S": "0"}
    done = subprocess.run(
        [ptsim, "generate", "--rows", "10", "--seed", "1", "--db", str(db), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("ptsim: The card key file")
