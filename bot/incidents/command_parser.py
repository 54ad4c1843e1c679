"""Parsing `/incident ...` text into typed commands.

Pure and fast on purpose: it runs before the ack, so a typo is answered inside Slack's 3 seconds with a reply
that says exactly what was wrong and how to write it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from bot.core.domain_errors import UsageError
from bot.core.durations import format_duration, parse_duration
from bot.incidents import input_rules
from bot.incidents.incident_records import OPEN_STATUSES, Status
from bot.incidents.input_rules import clean
from bot.slack import rendering
from bot.slack.rendering import COMMAND_USAGE as USAGE

REF_PATTERN = re.compile(r"^(?:#|inc-)?(\d{1,9})$", re.IGNORECASE)
SEVERITY_PATTERN = re.compile(r"^p([1-4])$", re.IGNORECASE)
# key=value options; the value may be quoted with straight or curly quotes (Slack clients curl them).
OPTION_PATTERN = re.compile(
    r"""(?<!\S)(?P<key>[a-z]+)=(?:"(?P<dq>[^"]*)"|“(?P<cq>[^”]*)”|'(?P<sq>[^']*)'|(?P<bare>\S+))"""
)


@dataclass(frozen=True)
class Declare:
    service: str
    severity: int
    description: str
    impact: str | None = None


@dataclass(frozen=True)
class OpenDeclareModal:
    pass


@dataclass(frozen=True)
class Acknowledge:
    incident_id: int


@dataclass(frozen=True)
class SetStatus:
    incident_id: int
    status: Status


@dataclass(frozen=True)
class SetSeverity:
    incident_id: int
    severity: int


@dataclass(frozen=True)
class PostUpdate:
    incident_id: int
    findings: str
    eta: str | None = None


@dataclass(frozen=True)
class Resolve:
    incident_id: int
    root_cause: str
    users_affected: int | None = None
    force: bool = False


@dataclass(frozen=True)
class RequestRollback:
    incident_id: int
    service: str | None = None
    to_revision: int | None = None


@dataclass(frozen=True)
class RollbackByCommit:
    incident_id: int
    service: str
    commit: str


@dataclass(frozen=True)
class OpenHotfixModal:
    incident_id: int
    summary: str


@dataclass(frozen=True)
class DraftPostmortem:
    incident_id: int


@dataclass(frozen=True)
class RequestScale:
    incident_id: int
    service: str
    replicas: int


@dataclass(frozen=True)
class RequestFlag:
    incident_id: int
    flag: str
    value: str


@dataclass(frozen=True)
class RequestEnv:
    incident_id: int
    function: str
    changes: dict[str, str]


@dataclass(frozen=True)
class ListOpen:
    pass


@dataclass(frozen=True)
class Show:
    incident_id: int


@dataclass(frozen=True)
class ReportFromCustomer:
    service: str
    text: str


@dataclass(frozen=True)
class ShowMetrics:
    incident_id: int
    window: timedelta


@dataclass(frozen=True)
class SearchLogs:
    incident_id: int
    query: str  # errors | timeouts | corr
    window: timedelta
    correlation_id: str | None = None


@dataclass(frozen=True)
class Help:
    topic: str | None = None


Command = (
    Declare
    | OpenDeclareModal
    | Acknowledge
    | SetStatus
    | SetSeverity
    | PostUpdate
    | Resolve
    | ListOpen
    | Show
    | Help
    | ReportFromCustomer
    | RequestRollback
    | RequestScale
    | RequestFlag
    | RequestEnv
    | RollbackByCommit
    | OpenHotfixModal
    | DraftPostmortem
    | ShowMetrics
    | SearchLogs
)

METRICS_WINDOW = timedelta(hours=2)  # "over the last 2 hours"
LOGS_WINDOW = timedelta(hours=1)  # "in the last hour"
LONGEST_WINDOW = timedelta(days=1)
LOG_QUERIES = ("errors", "timeouts")
CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{3,128}$")


def parse_ref(token: str, usage: str) -> int:
    match = REF_PATTERN.match(token.strip())
    if not match or int(match.group(1)) == 0:
        raise UsageError(rendering.grammar_refusal("not_a_ref", usage, token=token))
    return int(match.group(1))


def parse_severity(token: str, usage: str) -> int:
    match = SEVERITY_PATTERN.match(token.strip())
    if not match:
        raise UsageError(rendering.grammar_refusal("not_a_severity", usage, token=token))
    return int(match.group(1))


def validate_service(name: str, known: Iterable[str], command: str) -> str:
    service = name.strip().lower()
    known_sorted = sorted(known)
    if service not in known_sorted:
        raise UsageError(rendering.unknown_service_in(command, name, known_sorted))
    return service


def _take_options(text: str, allowed: set[str], usage: str) -> tuple[str, dict[str, str]]:
    options: dict[str, str] = {}

    def _collect(match: re.Match[str]) -> str:
        key = match.group("key").lower()
        if key not in allowed:
            return match.group(0)
        if key in options:
            raise UsageError(rendering.grammar_refusal("option_twice", usage, key=key))
        value = next(v for v in (match.group(g) for g in ("dq", "cq", "sq", "bare")) if v is not None)
        options[key] = value.strip()
        return ""

    rest = OPTION_PATTERN.sub(_collect, text)
    return " ".join(rest.split()), options


def _split(text: str, count: int) -> list[str]:
    """The first `count` whitespace-separated words, then the remainder as one string."""
    return text.strip().split(maxsplit=count)


def parse_command(text: str, known_services: Iterable[str]) -> Command:
    """`text` as Slack sends it (`&`, `<`, `>` escaped) → a command whose fields hold what the person typed.

    Raises UsageError, and only UsageError, for anything else: a reply that says what to change.
    """
    text = input_rules.slack_unescape(text)
    input_rules.check_command_length(text)
    words = _split(text, 1)
    if not words:
        return Help()
    name = words[0].lower()
    rest = words[1] if len(words) > 1 else ""
    parser = _PARSERS.get(name)
    if parser is None:
        raise UsageError(rendering.unknown_subcommand(words[0]))
    return parser(rest, known_services)


def _require(parts: list[str], count: int, what: str, usage: str) -> None:
    if len(parts) < count:
        raise UsageError(rendering.grammar_refusal("missing", usage, what=what))


def _parse_declare(rest: str, known: Iterable[str]) -> Command:
    usage = USAGE["declare"]
    if not rest.strip():
        return OpenDeclareModal()
    body, options = _take_options(rest, {"impact"}, usage)
    parts = _split(body, 2)
    _require(parts, 1, "the service", usage)
    service = validate_service(parts[0], known, "declare")
    _require(parts, 2, "the severity (P1, P2, P3 or P4)", usage)
    severity = parse_severity(parts[1], usage)
    _require(parts, 3, "the description", usage)
    impact = clean(input_rules.IMPACT, options["impact"]) if "impact" in options else None
    return Declare(
        service=service,
        severity=severity,
        description=clean(input_rules.DESCRIPTION, parts[2]),
        impact=impact or None,
    )


def _parse_ack(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["ack"]
    parts = _split(rest, 1)
    _require(parts, 1, "the incident", usage)
    if len(parts) > 1:
        raise UsageError(rendering.grammar_refusal("only_incident", usage, command="ack"))
    return Acknowledge(parse_ref(parts[0], usage))


def _parse_status(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["status"]
    parts = rest.split()
    _require(parts, 1, "the incident", usage)
    incident_id = parse_ref(parts[0], usage)
    _require(parts, 2, "the new status", usage)
    if len(parts) > 2:
        raise UsageError(rendering.grammar_refusal("status_arity", usage))
    wanted = parts[1].lower()
    if wanted == Status.RESOLVED.value:
        raise UsageError(rendering.RESOLVE_NEEDS_ROOT_CAUSE)
    allowed = {s.value: s for s in OPEN_STATUSES}
    if wanted not in allowed:
        raise UsageError(rendering.grammar_refusal("not_a_status", usage, token=parts[1]))
    return SetStatus(incident_id, allowed[wanted])


def _parse_severity(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["severity"]
    parts = rest.split()
    _require(parts, 1, "the incident", usage)
    incident_id = parse_ref(parts[0], usage)
    _require(parts, 2, "the new severity", usage)
    if len(parts) > 2:
        raise UsageError(rendering.grammar_refusal("severity_arity", usage))
    return SetSeverity(incident_id, parse_severity(parts[1], usage))


def _parse_update(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["update"]
    body, options = _take_options(rest, {"eta"}, usage)
    parts = _split(body, 1)
    _require(parts, 1, "the incident", usage)
    incident_id = parse_ref(parts[0], usage)
    _require(parts, 2, "the latest findings", usage)
    eta = clean(input_rules.ETA, options["eta"]) if "eta" in options else None
    return PostUpdate(incident_id, findings=clean(input_rules.FINDINGS, parts[1]), eta=eta or None)


def _parse_resolve(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["resolve"]
    body, options = _take_options(rest, {"users"}, usage)
    words = body.split()
    force = "--force" in words
    body = " ".join(word for word in words if word != "--force")
    parts = _split(body, 1)
    _require(parts, 1, "the incident", usage)
    incident_id = parse_ref(parts[0], usage)
    _require(parts, 2, "the root cause", usage)
    users = options.get("users")
    return Resolve(
        incident_id,
        root_cause=clean(input_rules.ROOT_CAUSE, parts[1]),
        users_affected=parse_users_affected(users, usage),
        force=force,
    )


def parse_users_affected(value: str | None, usage: str) -> int | None:
    if value is None or value == "":
        return None
    cleaned = value.replace(",", "").replace("_", "")
    if not re.fullmatch(r"[0-9]{1,9}", cleaned):
        raise UsageError(rendering.grammar_refusal("users_not_number", usage, value=value))
    return int(cleaned)


def _parse_rollback(rest: str, known: Iterable[str]) -> Command:
    usage = USAGE["rollback"]
    body, options = _take_options(rest, {"to", "commit"}, usage)
    parts = body.split()
    _require(parts, 1, "the incident", usage)
    incident_id = parse_ref(parts[0], usage)
    if len(parts) > 2:
        raise UsageError(rendering.grammar_refusal("rollback_arity", usage))
    service = validate_service(parts[1], known, "rollback") if len(parts) == 2 else None
    if "commit" in options:
        if "to" in options:
            raise UsageError(rendering.grammar_refusal("to_and_commit", usage))
        if service is None:
            raise UsageError(rendering.grammar_refusal("commit_needs_service", usage))
        if not re.fullmatch(r"[0-9a-fA-F]{7,40}", options["commit"]):
            raise UsageError(rendering.grammar_refusal("not_a_sha", usage, value=options["commit"]))
        return RollbackByCommit(incident_id, service, options["commit"].lower())
    to_revision = None
    if "to" in options:
        if not re.fullmatch(r"[0-9]{1,6}", options["to"]) or int(options["to"]) == 0:
            raise UsageError(rendering.grammar_refusal("not_a_revision", usage, value=options["to"]))
        to_revision = int(options["to"])
    return RequestRollback(incident_id, service, to_revision)


def _parse_scale(rest: str, known: Iterable[str]) -> Command:
    usage = USAGE["scale"]
    parts = rest.split()
    _require(parts, 1, "the incident", usage)
    incident_id = parse_ref(parts[0], usage)
    _require(parts, 2, "the service", usage)
    service = validate_service(parts[1], known, "scale")
    _require(parts, 3, "the number of replicas", usage)
    if len(parts) > 3:
        raise UsageError(rendering.grammar_refusal("scale_arity", usage))
    if not re.fullmatch(r"[0-9]{1,4}", parts[2]):
        raise UsageError(rendering.grammar_refusal("not_replicas", usage, token=parts[2]))
    return RequestScale(incident_id, service, int(parts[2]))


def _parse_flag(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["flag"]
    parts = rest.split()
    _require(parts, 1, "the incident", usage)
    incident_id = parse_ref(parts[0], usage)
    _require(parts, 2, "the flag (`/incident help flags` lists them)", usage)
    _require(parts, 3, "the new value", usage)
    if len(parts) > 3:
        raise UsageError(rendering.grammar_refusal("flag_arity", usage))
    return RequestFlag(
        incident_id, clean(input_rules.FLAG_NAME, parts[1]), clean(input_rules.FLAG_VALUE, parts[2])
    )


ENV_PAIR = re.compile(r"""(?<!\S)([A-Za-z][A-Za-z0-9_]*)=(?:"([^"]*)"|'([^']*)'|(\S*))""")


def _parse_env(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["env"]
    text = rest.replace("“", '"').replace("”", '"').replace("‘", "'").replace("’", "'")
    parts = text.split(maxsplit=2)
    _require(parts, 1, "the incident", usage)
    incident_id = parse_ref(parts[0], usage)
    _require(parts, 2, "the function", usage)
    _require(parts, 3, "at least one KEY=value", usage)
    changes: dict[str, str] = {}
    leftover = ENV_PAIR.sub("", parts[2]).strip()
    if leftover:
        raise UsageError(rendering.grammar_refusal("not_a_pair", usage, token=leftover.split()[0]))
    for key, double, single, bare in ENV_PAIR.findall(parts[2]):
        if key in changes:
            raise UsageError(rendering.grammar_refusal("key_twice", usage, key=key))
        changes[clean(input_rules.ENV_KEY, key)] = clean(input_rules.ENV_VALUE, double or single or bare)
    return RequestEnv(incident_id, clean(input_rules.FUNCTION, parts[1]), changes)


def _parse_hotfix(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["hotfix"]
    parts = _split(rest, 1)
    _require(parts, 1, "the incident", usage)
    incident_id = parse_ref(parts[0], usage)
    _require(parts, 2, "a one-line summary of the bug", usage)
    return OpenHotfixModal(incident_id, clean(input_rules.HOTFIX_SUMMARY, parts[1]))


def _parse_postmortem(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["postmortem"]
    parts = rest.split()
    _require(parts, 1, "the incident", usage)
    if len(parts) > 1:
        raise UsageError(rendering.grammar_refusal("only_incident", usage, command="postmortem"))
    return DraftPostmortem(parse_ref(parts[0], usage))


def _parse_list(rest: str, _known: Iterable[str]) -> Command:
    if rest.strip():
        raise UsageError(rendering.grammar_refusal("list_arity", USAGE["list"]))
    return ListOpen()


def _parse_show(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["show"]
    parts = rest.split()
    _require(parts, 1, "the incident", usage)
    if len(parts) > 1:
        raise UsageError(rendering.grammar_refusal("only_incident", usage, command="show"))
    return Show(parse_ref(parts[0], usage))


def _parse_report(rest: str, known: Iterable[str]) -> Command:
    usage = USAGE["report"]
    parts = _split(rest, 1)
    _require(parts, 1, "the service", usage)
    service = validate_service(parts[0], known, "report")
    _require(parts, 2, "what the customer says", usage)
    return ReportFromCustomer(service, clean(input_rules.CUSTOMER_REPORT, parts[1]))


def _parse_window(token: str, usage: str) -> timedelta:
    try:
        window = parse_duration(token)
    except ValueError:
        raise UsageError(rendering.grammar_refusal("not_a_window", usage, token=token)) from None
    if window > LONGEST_WINDOW:
        raise UsageError(
            rendering.grammar_refusal(
                "window_too_long", usage, token=token, limit=format_duration(LONGEST_WINDOW)
            )
        )
    if window < timedelta(minutes=5):
        raise UsageError(rendering.grammar_refusal("window_too_short", usage, token=token))
    return window


def _parse_metrics(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["metrics"]
    parts = rest.split()
    _require(parts, 1, "the incident", usage)
    if len(parts) > 2:
        raise UsageError(rendering.grammar_refusal("metrics_arity", usage))
    window = _parse_window(parts[1], usage) if len(parts) == 2 else METRICS_WINDOW
    return ShowMetrics(parse_ref(parts[0], usage), window)


def _parse_logs(rest: str, _known: Iterable[str]) -> Command:
    usage = USAGE["logs"]
    parts = rest.split()
    _require(parts, 1, "the incident", usage)
    incident_id = parse_ref(parts[0], usage)
    query, correlation_id, window = "errors", None, LOGS_WINDOW
    seen_query = seen_window = False
    for token in parts[1:]:
        lowered = token.lower()
        if lowered in LOG_QUERIES or lowered.startswith("corr="):
            if seen_query:
                raise UsageError(rendering.grammar_refusal("logs_two_queries", usage))
            seen_query = True
            if lowered.startswith("corr="):
                query, correlation_id = "corr", token[len("corr=") :]
                if not CORRELATION_ID.match(correlation_id):
                    raise UsageError(rendering.grammar_refusal("not_a_correlation_id", usage, token=token))
            else:
                query = lowered
        elif not seen_window and token[:1].isdigit():
            window, seen_window = _parse_window(token, usage), True
        else:
            raise UsageError(rendering.grammar_refusal("not_a_log_query", usage, token=token))
    return SearchLogs(incident_id, query, window, correlation_id)


def _parse_help(rest: str, _known: Iterable[str]) -> Command:
    return Help(rest.strip().lower() or None)


_PARSERS = {
    "declare": _parse_declare,
    "ack": _parse_ack,
    "acknowledge": _parse_ack,
    "status": _parse_status,
    "severity": _parse_severity,
    "sev": _parse_severity,
    "update": _parse_update,
    "resolve": _parse_resolve,
    "rollback": _parse_rollback,
    "scale": _parse_scale,
    "flag": _parse_flag,
    "hotfix": _parse_hotfix,
    "postmortem": _parse_postmortem,
    "env": _parse_env,
    "list": _parse_list,
    "ls": _parse_list,
    "show": _parse_show,
    "report": _parse_report,
    "metrics": _parse_metrics,
    "logs": _parse_logs,
    "help": _parse_help,
}
# Every sub-command the parser knows, aliases included.
SUBCOMMANDS = frozenset(_PARSERS)
