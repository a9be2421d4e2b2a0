"""The engine's own error types; every driver or validation failure is translated into one."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class SettingsError(EngineError):
    """A configuration variable is invalid; the message names it and the accepted values."""


class CardKeyError(EngineError):
    """The card-fingerprint key file is missing, empty, short or damaged; the message says what
    to do."""


class InvalidRequestError(EngineError):
    """Client input failed validation. ``field`` names the offending field; never echoes it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UsageError(EngineError):
    """A command was given arguments it cannot run with; the message says which and why."""


class StoreError(EngineError):
    """The database failed; the message says what happened and what to do."""


class StoreLockedError(StoreError):
    """Another process holds the database file (DuckDB allows one read-write process per file)."""


class StoreDamagedError(StoreError):
    """The database file or its WAL is damaged (failed checksums, lost commits)."""


class NotFoundError(EngineError):
    """The requested transaction, run or audit trail does not exist."""


class BusyError(EngineError):
    """A bounded resource (simulation slots, the analytics queue) is full; nothing was started.
    ``retry_after`` is a hint in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IdempotencyConflictError(EngineError):
    """An Idempotency-Key was reused with a different request body."""
