"""What a person is told when their request fails: domain errors verbatim, anything else as a short apology.

Used by the Slack listeners and by the workers that carry out slow commands after the ack, so a refusal reads
the same whenever it happens.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from bot.core.domain_errors import DomainError
from bot.slack.rendering import DATABASE_DOWN_TEXT
from bot.slack.slack_limits import fit_text


def friendly_message(error: Exception) -> str:
    if isinstance(error, DomainError):
        return fit_text(error.message)
    if isinstance(error, StaleDataError):
        return (
            "Someone changed this incident at the same moment; nothing of yours was saved. Please try again."
        )
    if database_unreachable(error):
        return DATABASE_DOWN_TEXT
    return (
        f"TARS hit an unexpected error ({type(error).__name__}). It has been logged; "
        "check `/incident show &lt;incident&gt;` to see what was saved."
    )


def database_unreachable(error: Exception) -> bool:
    """The database did not answer (refused, timed out, connection cut), as opposed to a bug in a query."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def expected(error: Exception) -> bool:
    """A refusal people can act on, as opposed to a bug worth a log line with its traceback."""
    return isinstance(error, DomainError | StaleDataError)
