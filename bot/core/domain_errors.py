"""Domain errors: each carries a message written for the person who typed the command."""

from __future__ import annotations


class DomainError(Exception):
    """A request TARS refuses; the message is shown to the user as-is, and nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(DomainError):
    """The command was written wrongly; the message says how to write it."""


class NotFound(DomainError):
    """The thing named does not exist."""


class IllegalTransition(DomainError):
    """The incident is not in a state that allows this change."""
