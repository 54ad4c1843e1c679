"""The `/incident` grammar: what people type, and the reply when they type it wrong."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.core.domain_errors import UsageError
from bot.incidents.command_parser import (
    Acknowledge,
    Declare,
    Help,
    ListOpen,
    OpenDeclareModal,
    PostUpdate,
    Resolve,
    SearchLogs,
    SetSeverity,
    SetStatus,
    Show,
    ShowMetrics,
    parse_command,
)
from bot.incidents.incident_records import Status

SERVICES = ["payments", "checkout"]


def parse(text: str) -> object:
    return parse_command(text, SERVICES)


@pytest.mark.parametrize("ref", ["42", "#42", "INC-42", "inc-42"])
def test_incident_references_in_every_spelling(ref: str) -> None:
    assert parse(f"ack {ref}") == Acknowledge(42)


def test_declare_with_description_and_quoted_impact() -> None:
    command = parse('declare Payments p1 Card payments failing with 502 impact="All card checkouts fail"')
    assert command == Declare("payments", 1, "Card payments failing with 502", "All card checkouts fail")


def test_declare_with_curly_quotes_from_slack_clients() -> None:
    command = parse("declare checkout P2 Address validation blocks orders impact=“20% of orders rejected”")
    assert command == Declare("checkout", 2, "Address validation blocks orders", "20% of orders rejected")


def test_declare_without_arguments_opens_the_form() -> None:
    assert parse("declare") == OpenDeclareModal()


def test_every_subcommand() -> None:
    assert parse("status 3 Monitoring") == SetStatus(3, Status.MONITORING)
    assert parse("severity #3 P2") == SetSeverity(3, 2)
    assert parse("update 3 Error rate back to 0.05% eta=15m") == PostUpdate(
        3, "Error rate back to 0.05%", "15m"
    )
    assert parse('update INC-3 Rolled back eta="2 hours"') == PostUpdate(3, "Rolled back", "2 hours")
    assert parse("resolve 3 Bad deploy of v2.3 users=1,200") == Resolve(3, "Bad deploy of v2.3", 1200)
    assert parse("resolve 3 Bad deploy") == Resolve(3, "Bad deploy", None)
    assert parse("list") == ListOpen()
    assert parse("show 3") == Show(3)
    assert parse("help") == Help()
    assert parse("") == Help()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate 3", "Unknown sub-command `frobnicate`"),
        ("declare payments", "Missing the severity"),
        ("declare payments P1", "Missing the description"),
        ("declare payments P5 broken", "`P5` is not a severity; use one of P1, P2, P3, P4"),
        ("declare billing P1 broken", "Unknown service `billing`. Known services: `checkout`, `payments`."),
        ("ack", "Missing the incident"),
        ("ack three", "`three` is not an incident reference"),
        ("ack INC-0", "`INC-0` is not an incident reference"),
        ("status 3", "Missing the new status"),
        ("status 3 done", "`done` is not a status"),
        ("status 3 resolved", "To resolve, use `/incident resolve"),
        ("severity 3", "Missing the new severity"),
        ("update 3", "Missing the latest findings"),
        ("update 3 eta=5m", "Missing the latest findings"),
        ("resolve 3", "Missing the root cause"),
        ("resolve 3 bad deploy users=many", "`users=many` must be a whole number"),
        ("show", "Missing the incident"),
        ("list everything", "`list` takes no arguments"),
        ("metrics", "Missing the incident"),
        ("metrics 3 2d", "`2d` is longer than TARS reads at once (1d)"),
        ("metrics 3 1m", "`1m` is too short to show a trend"),
        ("metrics 3 soon", "`soon` is not a time window"),
        ("metrics 3 2h extra", "`metrics` takes the incident and at most a time window"),
        ("logs 3 warnings", "`warnings` is not `errors`, `timeouts`, `corr=&lt;id&gt;`"),
        ("logs 3 errors timeouts", "Give one of `errors`, `timeouts` or `corr=&lt;id&gt;`, not several"),
        ("logs 3 corr=<!here>", "is not a correlation id"),
    ],
)
def test_bad_input_says_what_was_wrong_and_how_to_write_it(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert expected in caught.value.message
    assert "/incident" in caught.value.message  # always shows the right way to write it


def test_metrics_and_logs_take_a_window_and_a_query() -> None:
    assert parse("metrics INC-4") == ShowMetrics(4, timedelta(hours=2))
    assert parse("metrics 4 6h") == ShowMetrics(4, timedelta(hours=6))
    assert parse("logs 4") == SearchLogs(4, "errors", timedelta(hours=1))
    assert parse("logs 4 30m timeouts") == SearchLogs(4, "timeouts", timedelta(minutes=30))
    assert parse("logs 4 corr=abc-123 2h") == SearchLogs(4, "corr", timedelta(hours=2), "abc-123")
