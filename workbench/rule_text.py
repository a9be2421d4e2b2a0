"""The rule workbench's editor text: a policy's rules as blocks an analyst can type.

One rule per block, blocks separated by blank lines, ``#`` starts a comment line::

    name: High amount flagged by risk heuristic.
    action: block
    when: :amount: > 500
      and :random: < 0.30

``when`` may continue on the following lines (any line that is not ``name:``, ``action:``,
``when:`` or ``flags_risk:``); ``flags_risk: false`` is optional. The condition itself is the
engine's rule language (parsed by :mod:`engine.rules`); this module only splits the blocks and
remembers where each part starts, so an engine :class:`~engine.rules.RuleError` (rule index,
part, line and column inside the condition) can be shown at the line and column of the text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.policy import RuleSpec
from engine.rules import RuleError

KEYS = ("name", "action", "when", "flags_risk")


@dataclass
class Block:
    """One rule as typed: its fields, and the text line (from 1) and column offset where each
    field's value starts."""

    line: int
    values: dict[str, str] = field(default_factory=dict)
    starts: dict[str, tuple[int, int]] = field(default_factory=dict)

    def rule(self) -> dict[str, Any]:
        """The rule as the engine takes it (missing fields are left for the engine to name)."""
        rule: dict[str, Any] = {k: v for k, v in self.values.items() if k != "flags_risk"}
        if "flags_risk" in self.values:
            rule["flags_risk"] = _flag(self.values["flags_risk"])
        return rule


@dataclass(frozen=True)
class TextError:
    """A problem at ``line``/``column`` (1-based; column None: the whole line) of the text."""

    message: str
    line: int
    column: int | None = None
    field: str | None = None

    def describe(self) -> str:
        """``Line 3, column 14 (rules[0].when): message``."""
        where = f"Line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}{f' ({self.field})' if self.field else ''}: {self.message}"


class RuleTextError(ValueError):
    """The text has no rule blocks, or a line that is not ``key: value``."""

    def __init__(self, error: TextError) -> None:
        super().__init__(error.describe())
        self.error = error


def _flag(text: str) -> bool | str:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text  # not a boolean: the engine refuses it ("flags_risk must be true or false")


def _key(line: str) -> str | None:
    head, colon, _ = line.partition(":")
    key = head.strip().lower()
    return key if colon and key in KEYS and not line[:1].isspace() else None


def parse(text: str) -> list[Block]:
    """The rule blocks of ``text``; :class:`RuleTextError` for a line outside any field."""
    blocks: list[Block] = []
    current: Block | None = None
    last: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            current, last = None, None
            continue
        if raw.lstrip().startswith("#"):
            continue
        key = _key(raw)
        if key is None:
            if current is None or last != "when":
                raise RuleTextError(
                    TextError(
                        "expected 'name:', 'action:', 'when:' or 'flags_risk:' (only a "
                        "condition continues on the next lines; a blank line ends a rule)",
                        number,
                    )
                )
            current.values["when"] += "\n" + raw
            continue
        if current is None:
            current = Block(line=number)
            blocks.append(current)
        if key in current.values:
            raise RuleTextError(TextError(f"this rule already has a '{key}:' line", number))
        value = raw.partition(":")[2]
        offset = len(raw) - len(value) + (len(value) - len(value.lstrip()))
        current.values[key] = value.strip() if key != "when" else value.lstrip()
        current.starts[key] = (number, offset)
        last = key
    if not blocks:
        raise RuleTextError(TextError("write at least one rule (name:, action:, when:)", 1))
    return blocks


def rules(blocks: Iterable[Block]) -> list[dict[str, Any]]:
    """The engine's rule list for ``blocks``."""
    return [block.rule() for block in blocks]


def locate(error: RuleError, blocks: list[Block]) -> TextError:
    """Where the engine's ``error`` is in the text the ``blocks`` came from."""
    if error.rule is None or not 0 <= error.rule < len(blocks):
        return TextError(error.message, blocks[0].line if blocks else 1, field=error.field)
    block = blocks[error.rule]
    if error.part not in block.starts:  # a missing field, or the rule as a whole
        return TextError(error.message, block.line, field=error.field)
    line, offset = block.starts[error.part]
    if error.part != "when" or error.line is None:
        return TextError(error.message, line, offset + 1, field=error.field)
    # the condition's line 1 starts after "when: "; its later lines are whole text lines
    column = error.column if error.column is not None else 1
    if error.line == 1:
        column += offset
    return TextError(error.message, line + error.line - 1, column, field=error.field)


def render(specs: Iterable[RuleSpec]) -> str:
    """Rules as editor text (blank lines inside a condition dropped: they mean nothing)."""
    blocks = []
    for spec in specs:
        when = "\n".join(line for line in spec.when.splitlines() if line.strip())
        lines = [f"name: {spec.name}", f"action: {spec.action}", f"when: {when}"]
        if not spec.flags_risk:
            lines.append("flags_risk: false")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def excerpt(text: str, error: TextError) -> str:
    """The offending line with a caret under the column (for a code block)."""
    lines = text.splitlines()
    shown = lines[error.line - 1] if 0 < error.line <= len(lines) else ""
    if error.column is None:
        return f"{error.line:>4} | {shown}"
    return f"{error.line:>4} | {shown}\n     | {' ' * (error.column - 1)}^"
