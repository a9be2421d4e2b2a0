"""The attribute catalogue: every ``:attribute:`` a rule can read, with its definition."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from engine.rules import attributes_json

router = APIRouter(tags=["rules"])


class AttributeInfo(BaseModel):
    """One attribute of the rule language."""

    name: str = Field(description="Written :name: in a rule's condition.")
    type: Literal["number", "text", "bool", "card"]
    kind: Literal["request", "feature", "history", "time", "random"] = Field(
        description="Where the value comes from; history attributes are point in time."
    )
    definition: str
    example: str = Field(description="A condition that uses the attribute.")


@router.get("/attributes", response_model=list[AttributeInfo])
async def attributes() -> list[dict[str, str]]:
    """The catalogue rules are checked against, in catalogue order: each attribute's name,
    type, kind, definition (units, window, what a missing value means) and an example."""
    return attributes_json()
