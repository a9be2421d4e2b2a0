"""Named lists for rules (``@name``): read them, replace one (admin) as a new version.

``PUT /lists/{name}`` takes up to 1,000,000 items in one body, so it has its own body limit,
``PTSIM_MAX_LIST_BODY_BYTES`` (64 MiB), instead of the general ``PTSIM_MAX_BODY_BYTES``
(:func:`body_limit` is what ``create_app`` gives the middleware).
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, SecretStr, WithJsonSchema
from starlette.types import Scope

from api.deps import AdminDep, EngineDep
from api.errors import ErrorResponse
from api.middleware import BodyLimit
from engine.lists import (
    KINDS,
    MAX_ITEMS,
    MAX_NOTE_CHARS,
    NAME_PATTERN,
    ListVersion,
    check_name,
)
from engine.models import UtcDateTime

router = APIRouter(tags=["lists"])
ITEMS_PATH = re.compile(r"/lists/[^/]+")
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
Kind = Literal["card", "bin", "device", "merchant", "currency", "text"]
assert set(Kind.__args__) == set(KINDS)  # type: ignore[attr-defined]

_KINDS_TEXT = (
    "card: card numbers (12–19 digits), stored as fingerprints only; bin: exactly 6 digits; "
    "device: like device_id; merchant: like merchant; currency: ISO 4217 codes; text: up to 200 "
    "printable characters."
)
# The name is checked by the engine (one message for every front-end); the schema states it.
ListName = Annotated[
    str,
    Path(
        description="The list's name, as written after @ in rules.",
        json_schema_extra={"pattern": NAME_PATTERN, "maxLength": 64},
    ),
]


class ListSummary(BaseModel):
    """One version of a list, without its items."""

    name: str
    kind: Kind
    version: int = Field(description="Versions count up from 1; the newest is the current list.")
    created_at: UtcDateTime
    item_count: int = Field(description="Items after normalising and folding duplicates.")
    content_hash: str = Field(description="SHA-256 of the kind and the sorted, normalised items.")
    note: str

    @classmethod
    def of(cls, summary: ListVersion) -> ListSummary:
        return cls(**{name: getattr(summary, name) for name in cls.model_fields})


class ListPage(ListSummary):
    """A list version and one page of its items, in sorted order."""

    items: list[str] = Field(
        description="Normalised items; a card list shows each card's fingerprint (32 hex "
        "digits, the same value as the stored card_hash), never a number."
    )
    offset: int
    limit: int


class ListUpload(BaseModel):
    """The list's new contents: every item, replacing the current ones."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kind": "bin", "items": ["412345", "498765"], "note": "BINs under attack"}
            ]
        },
    )

    kind: Kind = Field(description=_KINDS_TEXT)
    # Checked item by item in the engine, which names the item (items[12]); the schema says what
    # every item must be.
    items: Annotated[
        list[Any],
        WithJsonSchema({"type": "array", "items": {"type": "string"}, "maxItems": MAX_ITEMS}),
    ] = Field(
        max_length=MAX_ITEMS,
        description=f"At most {MAX_ITEMS:,} strings; duplicates are folded.",
    )
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS, description="Why it changed.")


class ListChange(ListSummary):
    """The list's newest version after a PUT."""

    changed: bool = Field(
        description="false when the items and kind equal the newest version's: no new version "
        "was made (the note is then ignored)."
    )


_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong token."},
    403: {"model": ErrorResponse, "description": "Admin routes disabled."},
    413: {"model": ErrorResponse, "description": "Body over PTSIM_MAX_LIST_BODY_BYTES."},
    429: {"model": ErrorResponse, "description": "Too many wrong admin tokens."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown list or version, or a pruned version."}
}


@router.get("/lists", response_model=list[ListSummary])
async def list_lists(engine: EngineDep) -> list[ListSummary]:
    """Every list's current (newest) version, by name."""
    return [ListSummary.of(s) for s in await run_in_threadpool(engine.lists.summaries)]


@router.get("/lists/{name}", response_model=ListPage, responses=_NOT_FOUND)
async def get_list(
    name: ListName,
    engine: EngineDep,
    version: Annotated[int | None, Query(ge=1, description="Default: the newest.")] = None,
    offset: Annotated[int, Query(ge=0, description="Items to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items to return.")] = (
        DEFAULT_LIMIT
    ),
) -> ListPage:
    """A list version's summary and a page of its items (100 from the first by default)."""
    check_name(name)
    summary, items = await run_in_threadpool(engine.lists.page, name, version, offset, limit)
    return ListPage(**ListSummary.of(summary).model_dump(), items=items, offset=offset, limit=limit)


@router.put(
    "/lists/{name}",
    response_model=ListChange,
    dependencies=[AdminDep],
    responses=_ADMIN_ERRORS,
)
async def put_list(name: ListName, body: ListUpload, engine: EngineDep) -> ListChange:
    """Replace a list's items (creating the list if new) as a new version; admin token. When
    the active policy reads the list, a copy pinning the new version becomes active."""
    check_name(name)
    outcome = await run_in_threadpool(engine.put_list, name, body.kind, body.items, body.note or "")
    return ListChange(**ListSummary.of(outcome.summary).model_dump(), changed=outcome.changed)


def body_limit(max_list_body_bytes: int, admin_token: SecretStr | None) -> BodyLimit:
    """The body limit of ``PUT /lists/{name}`` (for ``RequestContextMiddleware``), granted only
    to a request that carries the admin token: anyone else would be refused 401 anyway, and
    must not make the server read and parse up to 64 MiB first (they get the general limit)."""
    expected = b"Bearer " + admin_token.get_secret_value().encode() if admin_token else None

    def is_admin(scope: Scope) -> bool:
        if expected is None:
            return False
        supplied = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
        return hmac.compare_digest(supplied, expected)

    return ("PUT", ITEMS_PATH, max_list_body_bytes, is_admin)
