"""What TARS accepts from a person: the same caps and character rules for slash commands and forms.

Text is stored as the person typed it (escaping for Slack happens when it is rendered, in `bot/slack/rendering.py`).
Before it is stored, every free-text field is checked here, so nothing a person types can cause a database
error or a message Slack refuses:

- control characters (NUL and the rest of C0/C1, and lone UTF-16 surrogates) are refused, naming the field;
  newlines and tabs are kept in multi-line fields and become spaces in one-line fields;
- each field has a length cap that fits everywhere it is shown and stored (`eta` is a VARCHAR(200) column;
  the rest are TEXT, capped so the incident card and updates stay readable);
- a whole slash command over `COMMAND_TEXT_MAX` characters is refused before it is parsed;
- Slack user and channel ids must have Slack's shape (and so fit the VARCHAR(32) columns).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bot.core.domain_errors import UsageError

COMMAND_TEXT_MAX = 4_000


@dataclass(frozen=True)
class Field:
    name: str  # as the person knows it, used in replies
    limit: int  # characters
    multiline: bool = False


DESCRIPTION = Field("description", 500)
IMPACT = Field("impact", 500)
CUSTOMER_REPORT = Field("customer report", 500)
FINDINGS = Field("findings", 1_000, multiline=True)
ETA = Field("ETA", 200)  # incidents.eta is VARCHAR(200)
ROOT_CAUSE = Field("root cause", 1_000, multiline=True)
HOTFIX_SUMMARY = Field("summary", 150)  # part of a GitHub issue title (256 at most)
HOTFIX_EVIDENCE = Field("error description and log evidence", 3_000, multiline=True)
HOTFIX_AFFECTED = Field("affected file", 200)
HOTFIX_APPROACH = Field("suggested fix approach", 3_000, multiline=True)
HOTFIX_TESTS = Field("test cases", 3_000, multiline=True)
FLAG_NAME = Field("flag", 100)
FLAG_VALUE = Field("flag value", 200)
FUNCTION = Field("function", 140)  # a Lambda function name or ARN
ENV_KEY = Field("environment variable name", 100)
ENV_VALUE = Field("environment variable value", 1_000)

ALL_FIELDS = (
    DESCRIPTION,
    IMPACT,
    FINDINGS,
    ETA,
    ROOT_CAUSE,
    HOTFIX_SUMMARY,
    HOTFIX_EVIDENCE,
    HOTFIX_AFFECTED,
    HOTFIX_APPROACH,
    HOTFIX_TESTS,
    FLAG_NAME,
    FLAG_VALUE,
    FUNCTION,
    ENV_KEY,
    ENV_VALUE,
)

USER_ID = re.compile(r"[UW][A-Z0-9]{2,31}")  # incidents.* user columns are VARCHAR(32)
CHANNEL_ID = re.compile(r"[CDG][A-Z0-9]{2,31}")


class FieldError(UsageError):
    """One field broke a rule; the message names the field and says what to change."""

    def __init__(self, field: Field, message: str) -> None:
        super().__init__(message)
        self.field = field


def slack_unescape(text: str) -> str:
    """Slash-command text as the person typed it: Slack sends `&`, `<` and `>` as `&amp;`, `&lt;`, `&gt;`."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _forbidden(char: str, field: Field) -> bool:
    if field.multiline and char in "\n\t":
        return False
    return unicodedata.category(char) in ("Cc", "Cs")


def clean(field: Field, value: str) -> str:
    """`value` as it will be stored, or a FieldError naming the field and the rule it broke."""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    if not field.multiline:
        text = text.replace("\n", " ").replace("\t", " ")
    bad = next((char for char in text if _forbidden(char, field)), None)
    if bad is not None:
        raise FieldError(
            field,
            f"The {field.name} contains a control character (U+{ord(bad):04X}), which TARS does not accept. "
            "Remove it and try again.",
        )
    text = text.strip()
    if len(text) > field.limit:
        raise FieldError(
            field,
            f"The {field.name} is {len(text):,} characters; the limit is {field.limit:,}. Shorten it and try again.",
        )
    return text


def check_command_length(text: str) -> None:
    if len(text) > COMMAND_TEXT_MAX:
        raise UsageError(
            f"That command is {len(text):,} characters; TARS accepts at most {COMMAND_TEXT_MAX:,}. "
            "Nothing was saved. Shorten it (a description is at most "
            f"{DESCRIPTION.limit:,} characters, findings {FINDINGS.limit:,}) and try again."
        )


def id_problem(body: dict[str, object]) -> str | None:
    """Why the user or channel id in a Slack request cannot be stored, or None when both are fine."""
    user = _slack_id(body, "user")
    if user is not None and not (isinstance(user, str) and USER_ID.fullmatch(user)):
        return (
            "TARS cannot act on this request: the Slack user id is not one it can store "
            "(expected U or W and 2 to 31 capital letters or digits, 32 characters at most). Nothing was saved."
        )
    channel = _slack_id(body, "channel")
    if channel is not None and not (isinstance(channel, str) and CHANNEL_ID.fullmatch(channel)):
        return (
            "TARS cannot act on this request: the Slack channel id is not one it can store "
            "(expected C, D or G and 2 to 31 capital letters or digits). Nothing was saved."
        )
    return None


def _slack_id(body: dict[str, object], name: str) -> object:
    """`<name>_id` (slash commands) or `<name>.id` (interactions), as sent."""
    flat = body.get(f"{name}_id")
    nested = body.get(name)
    return nested.get("id") if flat is None and isinstance(nested, dict) else flat
