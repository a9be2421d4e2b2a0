"""Named lists for rules (``@name``), each change stored as a new immutable version.

A list has a name (``[A-Za-z_][A-Za-z0-9_]{0,63}``), a kind (:data:`KINDS`) and up to
:data:`MAX_ITEMS` items. :meth:`Lists.put` normalises and validates the items for the kind, folds
duplicates, sorts them and stores them as the list's next version, unless they equal the newest
version (same kind, same content hash): then nothing is written. A policy version pins
``(name, version)`` pairs, so decisions and backtests read exactly the items they decided with:
versions are never changed, and old ones are deleted only by :meth:`Lists.prune`, which a caller
runs with the set of pinned versions (nothing prunes on its own; the newest version of a list is
always kept).

Items per kind, as stored:

========  ==================================================================================
card      card numbers as ``PaymentRequest.card_number`` takes them (12–19 digits), stored as
          their 128-bit HMAC fingerprints, the same value as ``transactions.card_hash``; the
          number itself is never stored, logged or repeated in an error
bin       exactly six digits, the ``:card_bin:`` attribute (a card's first six digits). Seven
          or eight digits are refused rather than cut to six: that would block every card of
          the wider six-digit range without saying so
device    like ``device_id``: 1–64 printable ASCII characters, no spaces
merchant  like ``merchant``: 1–100 characters, surrounding whitespace removed
currency  an ISO 4217 code (upper-cased)
text      1–200 printable characters, surrounding whitespace removed
========  ==================================================================================

Free text (device, merchant, text) holding a card-number-like run is refused naming the item
(:mod:`engine.pan`), like every other free-text field. Every refusal is an
:class:`InvalidRequestError` naming ``items[i]`` (or ``kind``, ``name``, ``note``); nothing is
stored then.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.cards import FINGERPRINT_BYTES, fingerprint_digests
from engine.currencies import ISO_4217
from engine.errors import InvalidRequestError, NotFoundError
from engine.pan import PAN_RULE, contains_pan
from engine.store import ReadTx, Store, utc_now
from engine.validation import quoted_field

KINDS = ("card", "bin", "device", "merchant", "currency", "text")
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MAX_ITEMS = 1_000_000
MAX_NOTE_CHARS = 500
MAX_TEXT_CHARS = 200
_NAME = re.compile(NAME_PATTERN)
_CARD = re.compile(r"[0-9]{12,19}", re.ASCII)
_BIN = re.compile(r"[0-9]{6}", re.ASCII)
_LONGER_BIN = re.compile(r"[0-9]{7,8}", re.ASCII)
_DEVICE = re.compile(r"[\x21-\x7e]{1,64}")
_CACHED_SNAPSHOTS = 8  # a 1,000,000-card snapshot is 16 MB, a text one about 70 MB


@dataclass(frozen=True, slots=True)
class ListVersion:
    """One stored version of a list, without its items."""

    name: str
    version: int
    kind: str
    created_at: datetime
    item_count: int
    content_hash: str
    note: str
    pruned: bool = False  # its items were deleted by :meth:`Lists.prune`


@dataclass(frozen=True, slots=True)
class ListSnapshot:
    """The items of one list version, for evaluators: sorted and unique.

    ``items`` is an ``'S16'`` array of fingerprints for card lists (numpy drops trailing NUL
    bytes of an element when it is read alone: pad to 16 bytes when comparing single values)
    and an object array of ``str`` otherwise."""

    name: str
    version: int
    kind: str
    items: np.ndarray

    def as_set(self) -> frozenset[Any]:
        """The items as a set: 16-byte ``bytes`` for card lists, ``str`` otherwise."""
        if self.kind == "card":
            return frozenset(bytes(item).ljust(FINGERPRINT_BYTES, b"\0") for item in self.items)
        return frozenset(self.items.tolist())


@dataclass(frozen=True, slots=True)
class PutOutcome:
    """What :meth:`Lists.put` did: the list's newest version, and whether it is a new one."""

    summary: ListVersion
    changed: bool


class _Refused(ValueError):
    """An item failed its kind's rule; the message is a phrase following the field's name."""


def check_name(name: str, field: str = "name") -> str:
    """``name`` when it can be written as ``@name`` in a rule, else :class:`InvalidRequestError`."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequestError(
            field,
            f"{quoted_field(field)} must start with a letter or '_' and hold at most 64 letters, "
            "digits or '_'.",
        )
    if contains_pan(name):  # names are stored, echoed and logged in full
        raise InvalidRequestError(field, f"{quoted_field(field)} {PAN_RULE}.")
    return name


# -- normalising items -----------------------------------------------------------------------


def _card_number(item: str) -> str:
    number = item.strip()
    if not _CARD.fullmatch(number):
        raise _Refused("must be a card number of 12–19 digits")
    return number


def _bin(item: str) -> str:
    digits = item.strip()
    if _BIN.fullmatch(digits):
        return digits
    if _LONGER_BIN.fullmatch(digits):
        raise _Refused(
            "must be exactly 6 digits: :card_bin: is a card's first six digits, and cutting a "
            "longer BIN to six would match every card of the wider range"
        )
    raise _Refused("must be exactly 6 digits")


def _device(item: str) -> str:
    device = item.strip()
    if not _DEVICE.fullmatch(device):
        raise _Refused("must be 1–64 printable ASCII characters without spaces")
    return _no_pan(device)


def _merchant(item: str) -> str:
    if len(item) > 100:  # as sent, like PaymentRequest.merchant
        raise _Refused("must have at most 100 characters")
    merchant = item.strip()
    if not merchant:
        raise _Refused("must not be empty")
    return _no_pan(merchant)


def _currency(item: str) -> str:
    code = item.strip().upper()
    if code not in ISO_4217:
        raise _Refused("must be an ISO 4217 currency code such as GBP, EUR or USD")
    return code


def _text(item: str) -> str:
    text = item.strip()
    if not text:
        raise _Refused("must not be empty")
    if len(text) > MAX_TEXT_CHARS:
        raise _Refused(f"must have at most {MAX_TEXT_CHARS} characters")
    if not text.isprintable():
        raise _Refused("must hold printable characters only")
    return _no_pan(text)


def _no_pan(text: str) -> str:
    if contains_pan(text):
        raise _Refused(PAN_RULE)
    return text


_NORMALISERS: dict[str, Callable[[str], str]] = {
    "card": _card_number,
    "bin": _bin,
    "device": _device,
    "merchant": _merchant,
    "currency": _currency,
    "text": _text,
}


def _normalised(kind: str, items: Sequence[object]) -> list[str]:
    """Every item normalised for ``kind``, in input order; the first bad one is refused by index
    (the message never repeats it: it may be a card number)."""
    normalise = _NORMALISERS[kind]
    out: list[str] = []
    append = out.append
    for index, item in enumerate(items):
        try:
            if type(item) is not str:
                raise _Refused("must be a string")
            append(normalise(item))
        except _Refused as exc:
            field = f"items[{index}]"
            raise InvalidRequestError(field, f"{quoted_field(field)} {exc}.") from None
    return out


def check_kind(kind: object) -> str:
    """``kind`` when it is one of :data:`KINDS`, else :class:`InvalidRequestError`."""
    if kind not in KINDS:
        raise InvalidRequestError("kind", f"Field 'kind' must be one of {', '.join(KINDS)}.")
    return str(kind)


def prepare_items(kind: str, items: Sequence[object], card_key: bytes) -> pa.Array:
    """The stored form of ``items`` for a ``kind`` list: normalised, unique and sorted (byte
    order, as DuckDB sorts), as ``binary(16)`` fingerprints for card lists and text otherwise."""
    check_kind(kind)
    if len(items) > MAX_ITEMS:
        raise InvalidRequestError("items", f"Field 'items' must have at most {MAX_ITEMS} items.")
    text = _already_normal(kind, items)
    if text is None:
        text = pa.array(_normalised(kind, items), pa.string())
    if kind == "card":
        digests = fingerprint_digests(text.cast(pa.binary()).to_pylist(), card_key)
        del text  # the numbers leave memory as soon as they are fingerprinted
        unique = _sorted_unique_fingerprints(digests)
        return pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(FINGERPRINT_BYTES), len(unique), [None, pa.py_buffer(unique.tobytes())]
        )
    unique = text.unique()
    return unique.take(pc.array_sort_indices(unique))


# Items that are already in their kind's normal form, recognised by one Arrow regex over the
# whole upload (1,000,000 items in ~0.1 s instead of ~0.6 s item by item); anything else takes
# the per-item path, which normalises it or says which item is wrong.
_NORMAL_FORM = {"card": r"^[0-9]{12,19}$", "bin": r"^[0-9]{6}$", "currency": r"^[A-Z]{3}$"}
_ISO_4217 = pa.array(sorted(ISO_4217), pa.string())


def _already_normal(kind: str, items: Sequence[object]) -> pa.Array | None:
    """``items`` as Arrow text when every one is already normalised for ``kind``, else None."""
    pattern = _NORMAL_FORM.get(kind)
    if pattern is None:
        return None
    try:
        text = pa.array(items, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # an item that is not a string
        return None
    if text.null_count or not pc.all(pc.match_substring_regex(text, pattern)).as_py():
        return None
    if kind == "currency" and not pc.all(pc.is_in(text, value_set=_ISO_4217)).as_py():
        return None
    return text


def _sorted_unique_fingerprints(digests: bytes) -> np.ndarray:
    """Joined 16-byte digests as a sorted, unique ``'S16'`` array. Sorted as two big-endian
    64-bit halves (``lexsort``): five times faster than sorting ``'S16'`` strings."""
    values = np.frombuffer(digests, dtype=f"S{FINGERPRINT_BYTES}")
    halves = np.frombuffer(digests, dtype=">u8").astype(np.uint64)
    high, low = halves[0::2], halves[1::2]
    order = np.lexsort((low, high))
    high, low = high[order], low[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (high[1:] != high[:-1]) | (low[1:] != low[:-1])
    return values[order[first]]


def content_hash(kind: str, items: pa.Array) -> str:
    """SHA-256 of the kind and the prepared items (their Arrow buffers: offsets keep the item
    boundaries unambiguous), so equal lists have equal hashes whatever order they came in."""
    digest = hashlib.sha256(kind.encode() + b"\n")
    compact = pa.concat_arrays([items]) if items.offset else items  # buffers start at item 0
    for buffer in compact.buffers()[1:]:
        if buffer is not None:
            digest.update(buffer)
    return digest.hexdigest()


# -- the stored lists ------------------------------------------------------------------------

_VERSION_COLUMNS = (
    "name, version, kind, created_at, item_count, content_hash, note, pruned_at IS NOT NULL"
)


class Lists:
    """Named lists over one :class:`~engine.store.Store` (card items fingerprinted with
    ``card_key``). Thread-safe; snapshots read for evaluators are cached (versions never
    change)."""

    def __init__(self, store: Store, card_key: bytes) -> None:
        self._store = store
        self._card_key = card_key
        self._snapshots: OrderedDict[tuple[str, int], ListSnapshot] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- writing ---------------------------------------------------------------------------

    def put(self, name: str, kind: str, items: Sequence[object], note: str = "") -> PutOutcome:
        """Replace the items of list ``name`` (created if new) with ``items``: a new version,
        unless kind and items equal the newest version's (then nothing is written and
        ``changed`` is False). Records a ``list.updated`` audit entry with the new version."""
        check_name(name)
        note = checked_note(note)
        prepared = prepare_items(kind, items, self._card_key)  # before the writer lock: CPU only
        digest = content_hash(kind, prepared)
        with self._store.write() as tx:
            newest = _newest(tx, name)
            if newest is not None and (newest.kind, newest.content_hash) == (kind, digest):
                return PutOutcome(newest, changed=False)
            version = 1 if newest is None else newest.version + 1
            summary = ListVersion(name, version, kind, utc_now(), len(prepared), digest, note)
            tx.execute(
                "INSERT INTO list_versions VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                [name, version, kind, summary.created_at, len(prepared), digest, note],
            )
            _insert_items(tx, name, version, kind, prepared)
            tx.execute(
                "INSERT INTO audit_log VALUES (NULL, ?, 'list.updated', NULL, ?)",
                [summary.created_at, json.dumps(_audit_payload(summary))],
            )
        return PutOutcome(summary, changed=True)

    def prune(self, pinned: Collection[tuple[str, int]]) -> list[tuple[str, int]]:
        """Delete the items of every version that is neither in ``pinned`` nor the newest of
        its list; return those ``(name, version)`` pairs. Their summaries stay (``pruned``),
        so version numbers are never reused. Nothing calls this on its own: the caller passes
        every version a policy pins."""
        keep = {(str(name), int(version)) for name, version in pinned}
        with self._store.write() as tx:
            candidates = tx.rows(
                "SELECT name, version FROM list_versions v WHERE pruned_at IS NULL AND version < "
                "(SELECT max(version) FROM list_versions w WHERE w.name = v.name) "
                "ORDER BY name, version"
            )
            pruned = [(n, v) for n, v in candidates if (n, v) not in keep]
            now = utc_now()
            for name, version in pruned:
                for table in ("list_items", "list_cards"):
                    tx.execute(
                        f"DELETE FROM {table} WHERE name = ? AND version = ?", [name, version]
                    )
                tx.execute(
                    "UPDATE list_versions SET pruned_at = ? WHERE name = ? AND version = ?",
                    [now, name, version],
                )
        with self._cache_lock:
            for key in pruned:
                self._snapshots.pop(key, None)
        return pruned

    # -- reading ---------------------------------------------------------------------------

    def summaries(self) -> list[ListVersion]:
        """The newest version of every list, by name."""
        rows = self._store.query(
            f"SELECT {_VERSION_COLUMNS} FROM list_versions "
            "QUALIFY version = max(version) OVER (PARTITION BY name) ORDER BY name"
        )
        return [ListVersion(*row) for row in rows]

    def versions(self, name: str) -> list[ListVersion]:
        """Every version of list ``name``, newest first; :class:`NotFoundError` if none."""
        check_name(name)
        rows = self._store.query(
            f"SELECT {_VERSION_COLUMNS} FROM list_versions WHERE name = ? ORDER BY version DESC",
            [name],
        )
        if not rows:
            raise NotFoundError(f"No list named {name}.")
        return [ListVersion(*row) for row in rows]

    def summary(self, name: str, version: int | None = None) -> ListVersion:
        """Version ``version`` of list ``name`` (None: the newest); :class:`NotFoundError`
        when the list or the version does not exist."""
        check_name(name)
        with self._store.read() as tx:
            return _version(tx, name, version)

    def page(
        self, name: str, version: int | None = None, offset: int = 0, limit: int = 100
    ) -> tuple[ListVersion, list[str]]:
        """A version's summary and ``limit`` of its items from ``offset``, in stored (sorted)
        order; card lists show each fingerprint as 32 hex digits (``card_hash``), never a
        number. :class:`NotFoundError` for an unknown list or version, or a pruned one."""
        check_name(name)
        with self._store.read() as tx:
            summary = _readable(_version(tx, name, version))
            column = (
                "replace(CAST(card_hash AS VARCHAR), '-', '')" if summary.kind == "card" else "item"
            )
            rows = tx.rows(
                f"SELECT {column} FROM {_table(summary.kind)} WHERE name = ? AND version = ? "
                f"ORDER BY {'card_hash' if summary.kind == 'card' else 'item'} LIMIT ? OFFSET ?",
                [name, summary.version, limit, offset],
            )
        return summary, [row[0] for row in rows]

    def items(self, name: str, version: int) -> ListSnapshot:
        """Every item of one version, for the rule evaluators (cached: versions never change).
        :class:`NotFoundError` for an unknown list or version, or a pruned one."""
        key = (name, int(version))
        with self._cache_lock:
            if (cached := self._snapshots.get(key)) is not None:
                self._snapshots.move_to_end(key)
                return cached
        check_name(name)
        with self._store.read() as tx:
            summary = _readable(_version(tx, name, version))
            if summary.kind == "card":
                table = tx.arrow(
                    "SELECT CAST(card_hash AS BLOB) AS item FROM list_cards "
                    "WHERE name = $name AND version = $version ORDER BY card_hash",
                    {"name": name, "version": summary.version},
                )
                values = _fingerprints(table.column("item"))
            else:
                table = tx.arrow(
                    "SELECT item FROM list_items WHERE name = $name AND version = $version "
                    "ORDER BY item",
                    {"name": name, "version": summary.version},
                )
                values = np.asarray(table.column("item").to_pylist(), dtype=object)
        snapshot = ListSnapshot(name, summary.version, summary.kind, values)
        with self._cache_lock:
            self._snapshots[key] = snapshot
            while len(self._snapshots) > _CACHED_SNAPSHOTS:
                self._snapshots.popitem(last=False)
        return snapshot

    def membership_sql(
        self, name: str, version: int, value_sql: str, param_prefix: str = "list_"
    ) -> tuple[str, dict[str, Any]]:
        """A DuckDB boolean expression, never NULL, true when ``value_sql`` is an item of that
        version (a semi-join over the stored items), and its named parameters (``$<param_prefix>
        <name>_<version>_...``): the list name and version are bound, never written into the
        SQL. ``value_sql`` must be a UUID for card lists (``card_hash``), an INTEGER for bin
        lists (``card_bin``, the BIN as a number) and a VARCHAR otherwise; a NULL value is in
        no list. :class:`NotFoundError` for an unknown list or version, or a pruned one."""
        summary = _readable(self.summary(name, version))
        key = f"{param_prefix}{name}_{summary.version}"
        where = f"name = ${key}_name AND version = ${key}_version"
        item = {"card": "card_hash", "bin": "CAST(item AS INTEGER)"}.get(summary.kind, "item")
        sql = (
            f"coalesce(({value_sql}) IN (SELECT {item} FROM {_table(summary.kind)} "
            f"WHERE {where}), FALSE)"
        )
        return sql, {f"{key}_name": name, f"{key}_version": summary.version}


def checked_note(note: str | None) -> str:
    """The note stripped, or :class:`InvalidRequestError` when too long or holding a card
    number."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidRequestError(
            "note", f"Field 'note' must have at most {MAX_NOTE_CHARS} characters."
        )
    if contains_pan(note):
        raise InvalidRequestError("note", f"Field 'note' {PAN_RULE}.")
    return note


def _table(kind: str) -> str:
    return "list_cards" if kind == "card" else "list_items"


def _insert_items(tx: Any, name: str, version: int, kind: str, prepared: pa.Array) -> None:
    """Append the prepared items of a new version in one Arrow insert."""
    if kind == "card":
        column = pa.ExtensionArray.from_storage(pa.uuid(), prepared)  # read as UUIDs
        tx.execute_with_table(
            "_list_rows",
            pa.table({"card_hash": column}),
            "INSERT INTO list_cards SELECT ?, ?, card_hash FROM _list_rows",
            [name, version],
        )
    else:
        tx.execute_with_table(
            "_list_rows",
            pa.table({"item": prepared}),
            "INSERT INTO list_items SELECT ?, ?, item FROM _list_rows",
            [name, version],
        )


def _newest(tx: ReadTx, name: str) -> ListVersion | None:
    # rows(), not one(): a half-read result would block the Arrow read that may follow
    rows = tx.rows(
        f"SELECT {_VERSION_COLUMNS} FROM list_versions WHERE name = ? "
        "ORDER BY version DESC LIMIT 1",
        [name],
    )
    return ListVersion(*rows[0]) if rows else None


def _version(tx: ReadTx, name: str, version: int | None) -> ListVersion:
    if version is None:
        found = _newest(tx, name)
    else:
        rows = tx.rows(
            f"SELECT {_VERSION_COLUMNS} FROM list_versions WHERE name = ? AND version = ?",
            [name, version],
        )
        found = ListVersion(*rows[0]) if rows else None
    if found is None:
        raise NotFoundError(
            f"No list named {name}."
            if version is None
            else f"List {name} has no version {version}."
        )
    return found


def _readable(summary: ListVersion) -> ListVersion:
    if summary.pruned:
        raise NotFoundError(
            f"Version {summary.version} of list {summary.name} was pruned (no policy pins it); "
            "its summary is kept, its items are not."
        )
    return summary


def _fingerprints(column: pa.ChunkedArray) -> np.ndarray:
    """A BLOB column of 16-byte values as an ``'S16'`` array: one view of Arrow's data buffer,
    not a Python object per row (row by row only if the layout is not the plain one)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    width = FINGERPRINT_BYTES
    if array.type in (pa.binary(), pa.large_binary()) and len(array) and not array.null_count:
        offset_type = np.int64 if array.type == pa.large_binary() else np.int32
        offsets = np.frombuffer(array.buffers()[1], dtype=offset_type)
        start, end = int(offsets[array.offset]), int(offsets[array.offset + len(array)])
        if end - start == width * len(array):  # every value 16 bytes, back to back
            return np.frombuffer(
                array.buffers()[2], dtype=f"S{width}", count=len(array), offset=start
            )
    return np.array(array.to_pylist(), dtype=f"S{width}")


def _audit_payload(summary: ListVersion) -> dict[str, Any]:
    return {
        "name": summary.name,
        "version": summary.version,
        "kind": summary.kind,
        "item_count": summary.item_count,
        "content_hash": summary.content_hash,
        "note": summary.note,
    }
