"""The one error type of the rule language: what is wrong, where, in which rule and part."""

from __future__ import annotations

from typing import Literal

Part = Literal["when", "name", "action"]


class RuleError(ValueError):
    """A policy or condition that cannot be compiled, with a message a person understands.

    ``line`` and ``column`` are 1-based and point at the offending token of the condition (None
    for errors that have no position: a name, an action, the number of rules). ``rule`` is the
    rule's index in the policy and ``part`` which of its fields is wrong (both None for errors
    about the whole policy). :attr:`field` names the request field the way the API reports it,
    e.g. ``rules[2].when``.
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        rule: int | None = None,
        part: Part | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.rule = rule
        self.part = part

    @property
    def field(self) -> str:
        """The request field at fault: ``rules``, ``rules[i]`` or ``rules[i].<part>``."""
        if self.rule is None:
            return "rules"
        return f"rules[{self.rule}]" + (f".{self.part}" if self.part else "")

    def in_rule(self, rule: int, part: Part) -> RuleError:
        """This error attributed to ``part`` of rule ``rule`` (a condition checked on its own
        knows neither)."""
        return RuleError(self.message, line=self.line, column=self.column, rule=rule, part=part)

    def __str__(self) -> str:
        where = f" (line {self.line}, column {self.column})" if self.line is not None else ""
        return f"{self.field}: {self.message}{where}"
