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
    e.g. ``rules[2].when`` (``candidate.rules[2].when`` :meth:`under` ``candidate``).
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        rule: int | None = None,
        part: Part | None = None,
        scope: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.rule = rule
        self.part = part
        self.scope = scope

    @property
    def field(self) -> str:
        """The request field at fault: ``rules``, ``rules[i]`` or ``rules[i].<part>``."""
        field = "rules" if self.rule is None else f"rules[{self.rule}]"
        field += f".{self.part}" if self.rule is not None and self.part else ""
        return f"{self.scope}.{field}" if self.scope else field

    def in_rule(self, rule: int, part: Part) -> RuleError:
        """This error attributed to ``part`` of rule ``rule`` (a condition checked on its own
        knows neither)."""
        return RuleError(
            self.message, line=self.line, column=self.column, rule=rule, part=part, scope=self.scope
        )

    def under(self, scope: str) -> RuleError:
        """This error inside a request object: ``candidate`` gives ``candidate.rules[2].when``."""
        return RuleError(
            self.message,
            line=self.line,
            column=self.column,
            rule=self.rule,
            part=self.part,
            scope=scope,
        )

    def __str__(self) -> str:
        where = f" (line {self.line}, column {self.column})" if self.line is not None else ""
        return f"{self.field}: {self.message}{where}"
