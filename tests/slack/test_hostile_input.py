"""Hostile input and Slack's limits.

Property tests (hypothesis) on the parser and the renderers, then the measured failures replayed through the
real HTTP endpoint: mass pings typed into commands and forms, NUL bytes, over-long fields and user ids, a
100 kB command, and incidents whose stored text and timeline are far longer than any message may be.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from bot.core.domain_errors import UsageError
from bot.incidents.command_parser import (
    Declare,
    OpenHotfixModal,
    PostUpdate,
    RequestEnv,
    RequestFlag,
    Resolve,
    parse_command,
)
from bot.incidents.incident_records import Incident, TimelineEvent
from bot.incidents.input_rules import ALL_FIELDS, COMMAND_TEXT_MAX
from bot.incidents.postmortem import postmortem_markdown
from bot.remediation.action_records import ActionRequest
from bot.slack import rendering
from bot.slack.slack_limits import fit_text
from tests.slack.slack_checks import (
    INJECTIONS,
    angle_tokens,
    assert_everything_sent_fits,
    assert_no_injection,
    message_problems,
    view_problems,
)
from tests.support import CHANNEL, Workspace

SERVICES = ("payments", "checkout")
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)

# --- strategies ---------------------------------------------------------------------------------------------

# Any character at all, lone surrogates and control characters included.
any_char = st.characters(exclude_categories=())
fragments = st.sampled_from(
    [*INJECTIONS, "&", "&amp;", "&lt;", "<", ">", "*", "`", "```", "\n", "\t", "\x00", "\r\n", "\u202e", " "]
)
hostile_text = st.lists(st.one_of(fragments, st.text(any_char, max_size=12)), max_size=25).map("".join)
# Long stored text: rows written before the caps existed, or the longest text the caps allow, escaped 4×.
long_text = st.builds(lambda piece, times: piece * times, fragments, st.integers(1, 30_000))
stored_text = st.one_of(hostile_text, long_text)

words = st.sampled_from(
    [
        "1",
        "#2",
        "INC-3",
        "P1",
        "p4",
        "payments",
        "checkout",
        "--force",
        'impact="x y"',
        "impact=“curly”",
        "eta='soon'",
        "eta=",
        "users=1,200",
        "users=-1",
        "to=3",
        "commit=abcdef1",
        "KEY=v",
        'KEY="a b"',
        "K=\x00",
        "investigating",
        "monitoring",
        "resolved",
        "flags",
        "&lt;!here&gt;",
        "&amp;",
    ]
)
commands = st.sampled_from(
    [
        *("", "declare", "ack", "status", "severity", "update", "resolve", "rollback", "scale", "flag"),
        *("env", "hotfix", "postmortem", "list", "show", "help", "frobnicate"),
    ]
)
command_text = st.one_of(
    st.text(any_char, max_size=200),
    st.builds(
        lambda name, parts: " ".join([name, *parts]),
        commands,
        st.lists(st.one_of(words, fragments, hostile_text), max_size=8),
    ),
)

# --- the parser -------------------------------------------------------------------------------------------------

CAPPED = {
    Declare: {"description": "description", "impact": "impact"},
    PostUpdate: {"findings": "findings", "eta": "ETA"},
    Resolve: {"root_cause": "root cause"},
    OpenHotfixModal: {"summary": "summary"},
    RequestFlag: {"flag": "flag", "value": "flag value"},
}
LIMITS = {field.name: field for field in ALL_FIELDS}


@PROPERTY
@given(command_text)
def test_any_text_parses_to_a_command_or_a_usage_error(text: str) -> None:
    try:
        parsed = parse_command(text, SERVICES)
    except UsageError as error:
        assert error.message.strip()
        return
    # Whatever got through is storable: within its cap, no control characters, no lone surrogates.
    for attribute, name in CAPPED.get(type(parsed), {}).items():
        value = getattr(parsed, attribute)
        if value is None:
            continue
        field = LIMITS[name]
        assert len(value) <= field.limit
        assert all(
            char in "\n\t" or (ord(char) >= 32 and not 0xD800 <= ord(char) <= 0xDFFF) for char in value
        )
        value.encode("utf-8")
    if isinstance(parsed, RequestEnv):
        for key, value in parsed.changes.items():
            (key + value).encode("utf-8")
            assert "\x00" not in key + value


def test_slash_command_text_is_unescaped_once() -> None:
    parsed = parse_command(
        'declare payments P2 a &lt;!here&gt; &amp;amp; b impact="&lt;@U0BOB&gt;"', SERVICES
    )
    assert parsed == Declare("payments", 2, "a <!here> &amp; b", "<@U0BOB>")


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("declare payments P1 " + "d" * 501, "The description is 501 characters; the limit is 500."),
        (
            'declare payments P1 x impact="' + "i" * 501 + '"',
            "The impact is 501 characters; the limit is 500.",
        ),
        ("update 1 " + "f" * 1001, "The findings is 1,001 characters; the limit is 1,000."),
        ('update 1 found eta="' + "e" * 201 + '"', "The ETA is 201 characters; the limit is 200."),
        ("resolve 1 " + "r" * 1001, "The root cause is 1,001 characters; the limit is 1,000."),
        ("hotfix 1 " + "s" * 151, "The summary is 151 characters; the limit is 150."),
        ("declare payments P1 nul\x00byte", "The description contains a control character (U+0000)"),
        ("update 1 a\x1bb", "The findings contains a control character (U+001B)"),
        ("x" * (COMMAND_TEXT_MAX + 1), "That command is 4,001 characters; TARS accepts at most 4,000."),
    ],
)
def test_each_cap_is_named_in_the_reply(text: str, reply: str) -> None:
    with pytest.raises(UsageError) as refused:
        parse_command(text, SERVICES)
    assert reply in refused.value.message


# --- the renderers ----------------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ONCALL, COMMANDER, REPORTER = "U0PAYONCALL", "U0ALICE", "W0REPORTER"
OWN_TOKENS = {f"<@{user}>" for user in (ONCALL, COMMANDER, REPORTER)} | {
    f"<#{CHANNEL}>",
    "<!subteam^S0ONCALL>",
}


def make_incident(description: str, impact: str, findings: str, eta: str, root_cause: str) -> Incident:
    return Incident(
        id=7,
        service="payments",
        severity=1,
        status="resolved",
        description=description,
        impact=impact,
        reporter=REPORTER,
        oncall=ONCALL,
        commander=COMMANDER,
        declared_at=NOW,
        acknowledged_at=NOW + timedelta(minutes=3),
        acknowledged_by=COMMANDER,
        mitigated_at=NOW + timedelta(minutes=30),
        resolved_at=NOW + timedelta(hours=1),
        resolved_by=COMMANDER,
        root_cause=root_cause,
        users_affected=1200,
        latest_findings=findings,
        eta=eta,
        postmortem_due_at=NOW + timedelta(hours=49),
        channel_id=CHANNEL,
        card_ts="1.0",
    )


def make_events(texts: list[str]) -> list[TimelineEvent]:
    kinds = [
        "declared",
        "update",
        "resolved",
        "action_requested",
        "hotfix_issue",
        "merged",
        "github_rollback",
    ]
    return [
        TimelineEvent(
            id=index + 1,
            incident_id=7,
            at=NOW + timedelta(minutes=index),
            actor=COMMANDER,
            kind=kinds[index % len(kinds)],
            text=text,
            data={"findings": text},
        )
        for index, text in enumerate(texts)
    ]


def make_action(summary: str, result: str) -> ActionRequest:
    return ActionRequest(
        id=3,
        incident_id=7,
        kind="kubernetes_rollback",
        service="payments",
        summary=summary,
        advice=result,
        requested_by=COMMANDER,
        requested_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
        required_approvals=1,
        state="pending",
        result={"summary": result},
        votes=[],
    )


def rendered_messages(
    incident: Incident, events: list[TimelineEvent], action: ActionRequest, hostile: str
) -> Iterator[tuple[str, list[rendering.Block] | None]]:
    """(text, blocks) for every message renderer, as they would be posted."""
    open_incident = make_incident(
        incident.description, incident.impact or "", incident.latest_findings or "", incident.eta or "", ""
    )
    open_incident.status = "investigating"
    open_incident.resolved_at = None
    yield rendering.card_text(incident), rendering.card_blocks(incident)
    yield rendering.card_text(open_incident), rendering.card_blocks(open_incident)
    yield rendering.update_text(incident), rendering.update_blocks(incident)
    yield rendering.resolved_text(incident), rendering.resolved_blocks(incident)
    yield rendering.scheduled_update(open_incident, nag_user=COMMANDER, late_due=NOW)
    yield rendering.resolved_summary(incident), None
    yield rendering.page_text(open_incident, escalation_level=2), None
    yield rendering.escalation_text(open_incident, 1, 3, "S0ONCALL", NOW), None
    yield rendering.customer_notification_text(incident), None
    yield rendering.incident_list_text([open_incident] * 60, NOW), None
    yield rendering.incident_detail_text(incident, events, advice=hostile), None
    yield rendering.incident_detail_text(open_incident, []), None
    yield rendering.action_card_text(action, incident), rendering.action_card_blocks(action, incident)
    yield rendering.action_outcome_text(action), None
    yield rendering.action_started_text(action, incident, dry_run=True), None
    yield rendering.action_result_text(action, incident, ok=False, summary=hostile), None
    yield rendering.action_progress_note(action, hostile), None
    yield rendering.action_denied_note(action, COMMANDER), None
    yield rendering.action_expired_note(action), None
    yield rendering.requested_reply(action), None
    yield rendering.merged_text(incident, COMMANDER, hostile), None
    yield rendering.reminder_text([COMMANDER], "Validate INC-7", late_due=NOW), None
    yield rendering.postmortem_posted_reply(hostile), None
    yield rendering.postmortem_draft(incident, postmortem_markdown(incident, events), hostile).text, None


@PROPERTY
@given(
    description=stored_text,
    impact=stored_text,
    findings=stored_text,
    eta=hostile_text,
    root_cause=stored_text,
    timeline=st.lists(stored_text, max_size=40),
    summary=stored_text,
)
def test_every_rendered_message_fits_and_no_user_markup_survives(
    description: str, impact: str, findings: str, eta: str, root_cause: str, timeline: list[str], summary: str
) -> None:
    incident = make_incident(description, impact, findings, eta, root_cause)
    events = make_events(timeline)
    action = make_action(summary, findings)
    for text, blocks in rendered_messages(incident, events, action, description):
        assert not message_problems(text, blocks), text[:200]
        # The only markup left is what TARS added itself: its mentions and the channel it names.
        assert angle_tokens([text, blocks]) <= OWN_TOKENS
    for view in (
        rendering.resolve_modal(incident, channel_id=CHANNEL),
        rendering.hotfix_modal(incident, fit_text(summary, 150), channel_id=CHANNEL),
        rendering.declare_modal(SERVICES, channel_id=CHANNEL),
    ):
        assert not view_problems(view)
        # A pre-filled input shows its value as typed (plain text, never markup), so only the rest is checked.
        shown = [
            {**block, "element": {**block.get("element", {}), "initial_value": ""}}
            for block in view["blocks"]
        ]
        assert angle_tokens(shown) <= OWN_TOKENS


@PROPERTY
@given(stored_text, st.integers(24, 5_000))
def test_cutting_text_never_leaves_half_an_entity_or_mention(text: str, limit: int) -> None:
    escaped = rendering.escape(text) + " <@U0ALICE> " + rendering.escape(text)
    cut = fit_text(escaped, limit)
    assert len(cut) <= limit
    body = cut.removesuffix("…")
    assert escaped.startswith(body)
    assert body.count("<") == body.count(">")
    assert not any(body.endswith(partial) for partial in ("&", "&a", "&am", "&amp", "&l", "&lt", "&g", "&gt"))


def test_mentions_tars_adds_still_work_while_typed_ones_are_shown_as_text() -> None:
    incident = make_incident("<!here> pay", "<!subteam^S0ALL> users", "<@U0BOB> knows", "<!channel>", "x")
    incident.status = "investigating"
    card = rendering.card_text(incident)
    assert "&lt;!here&gt; pay" in card and "Impact: &lt;!subteam^S0ALL&gt; users" in card
    assert f"On-call: <@{ONCALL}>" in card
    escalation = rendering.escalation_text(incident, 1, 3, "S0ONCALL", NOW)
    assert "<!subteam^S0ONCALL>" in escalation and f"<@{ONCALL}>" in escalation


def test_a_long_postmortem_draft_becomes_a_file_with_a_preview() -> None:
    incident = make_incident("<!here> down", "all", "f", "soon", "pool exhausted")
    events = make_events([f"update {n} <!channel> " + "x" * 200 for n in range(100)])
    markdown = postmortem_markdown(incident, events)
    draft = rendering.postmortem_draft(incident, markdown, "https://github.example/acme/pm/issues/1")
    assert draft.file_name == "INC-7-postmortem.md"
    assert draft.file_content == markdown  # the file is the whole draft, as Markdown, not escaped
    assert len(draft.text) <= 4_000
    assert "more lines (the whole timeline is in `/incident show 7`)" in draft.text
    assert "<!" not in draft.text
    short = rendering.postmortem_draft(incident, postmortem_markdown(incident, events[:2]), "")
    assert short.file_name is None and "&lt;!here&gt; down" in short.text


# --- through the HTTP endpoint: the measured failures -----------------------------------------------------------


def test_mass_pings_in_commands_are_posted_as_text(workspace: Workspace) -> None:
    incident = workspace.declare('payments P4 <!here> x impact="<!subteam^S0ALL> users"')
    stored = workspace.incident(incident.id)
    assert (stored.description, stored.impact) == ("<!here> x", "<!subteam^S0ALL> users")  # stored as typed

    workspace.command(
        f'update {incident.id} <!channel> it is <https://evil.example|the DB> eta="<@U0VICTIM> knows"'
    )
    update = workspace.slack.wait_for("chat.postMessage", lambda c: str(c.args.get("text")).startswith("📊"))
    assert (
        "Latest findings: &lt;!channel&gt; it is &lt;https://evil.example|the DB&gt;" in update.args["text"]
    )
    assert "ETA to resolution: &lt;@U0VICTIM&gt; knows" in update.args["text"]
    workspace.command(f"resolve {incident.id} <!everyone> & a bad deploy --force")
    resolved = workspace.slack.wait_for(
        "chat.postMessage", lambda c: str(c.args.get("text")).startswith("✅")
    )
    assert "Root cause: &lt;!everyone&gt; &amp; a bad deploy" in resolved.args["text"]
    workspace.command(f"show {incident.id}")
    shown = workspace.ephemeral_to("U0ALICE", "*Timeline*")
    assert "Declared P4 for payments: &lt;!here&gt; x" in shown.args["text"]
    workspace.settle()

    card = workspace.card(incident.id)
    assert "&lt;!here&gt; x" in card.text and "<@U0PAYONCALL>" in card.text  # TARS's own mention still works
    assert_no_injection(workspace.slack)
    assert_everything_sent_fits(workspace.slack)


def test_words_slack_uses_for_its_own_fields_are_just_words_in_a_command(workspace: Workspace) -> None:
    """A command body is parsed once, by the front door: "payload" in what someone typed is not an interaction."""
    incident = workspace.declare("payments P2 payload validation failing token=x&command=/other")
    assert workspace.incident(incident.id).description == "payload validation failing token=x&command=/other"
    workspace.command(f"update {incident.id} payload={{}} still failing")
    update = workspace.slack.wait_for("chat.postMessage", lambda c: str(c.args.get("text")).startswith("📊"))
    assert "payload={} still failing" in update.args["text"]


def test_mass_pings_typed_into_a_form_are_stored_as_typed_and_posted_as_text(workspace: Workspace) -> None:
    workspace.command("declare")
    opened = workspace.slack.wait_for("views.open")
    workspace.client.submit_view(
        user_id="U0ALICE",
        view_id=opened.response["view"]["id"],
        values={
            "service": {"value": "payments"},
            "severity": {"value": "P2"},
            "description": {"value": "<!channel> cards & wallets"},
            "impact": {"value": "<@U0VICTIM> <https://evil.example|see>"},
        },
    )
    workspace.wait_until(lambda: workspace.incident_count() == 1)
    stored = workspace.latest_incident()
    assert (stored.description, stored.impact) == (
        "<!channel> cards & wallets",
        "<@U0VICTIM> <https://evil.example|see>",
    )
    card = workspace.slack.wait_for(
        "chat.postMessage", lambda c: str(c.args.get("text", "")).startswith("🚨")
    )
    assert "&lt;!channel&gt; cards &amp; wallets" in card.args["text"]
    workspace.settle()
    assert_no_injection(workspace.slack)


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        (
            "declare payments P1 card\x00 payments failing",
            "The description contains a control character (U+0000)",
        ),
        (
            "declare payments P1 " + "x" * 100_000,
            "That command is 100,020 characters; TARS accepts at most 4,000.",
        ),
        ("declare payments P1 " + "x" * 600, "The description is 600 characters; the limit is 500."),
    ],
)
def test_unstorable_declarations_get_a_private_reply_and_store_nothing(
    workspace: Workspace, text: str, reply: str
) -> None:
    body = workspace.command(text).json()
    assert body["response_type"] == "ephemeral" and reply in body["text"]
    assert workspace.incident_count() == 0
    assert workspace.slack.calls_to("chat.postMessage") == []


def test_a_long_eta_gets_a_private_reply_and_changes_nothing(workspace: Workspace) -> None:
    incident = workspace.declare()
    events = workspace.event_count()
    body = workspace.command(f'update {incident.id} DB pool exhausted eta="{"e" * 250}"').json()
    assert "The ETA is 250 characters; the limit is 200." in body["text"]
    assert workspace.event_count() == events
    assert workspace.incident(incident.id).latest_findings is None


def test_a_user_id_slack_would_never_send_is_refused_before_anything_is_stored(workspace: Workspace) -> None:
    long_id = "U" + "X" * 40
    body = workspace.command("declare payments P1 Card payments failing", user=long_id).json()
    assert "Slack user id" in body["text"] and "32 characters at most" in body["text"]
    assert workspace.incident_count() == 0

    incident = workspace.declare()
    events = workspace.event_count()
    workspace.click(incident.id, rendering.ACK_ACTION, user=long_id)
    workspace.slack.wait_for("response_url", lambda c: "Slack user id" in str(c.args.get("text")))
    assert workspace.incident(incident.id).acknowledged_at is None
    assert workspace.event_count() == events


def test_form_fields_get_the_same_caps_and_name_the_field(workspace: Workspace) -> None:
    workspace.command("declare")
    opened = workspace.slack.wait_for("views.open")
    response = workspace.client.submit_view(
        user_id="U0ALICE",
        view_id=opened.response["view"]["id"],
        values={
            "service": {"value": "payments"},
            "severity": {"value": "P1"},
            "description": {"value": "nul\x00in a form"},
            "impact": {"value": "i" * 501},
        },
    )
    errors = response.json()["errors"]
    assert "The description contains a control character (U+0000)" in errors["description"]
    assert "The impact is 501 characters; the limit is 500." in errors["impact"]
    assert workspace.incident_count() == 0

    incident = workspace.declare()
    workspace.click(incident.id, rendering.RESOLVE_ACTION, user="U0BOB")
    resolve_form = workspace.slack.wait_for("views.open", lambda c: "Resolve" in json.dumps(c.args["view"]))
    response = workspace.client.submit_view(
        user_id="U0BOB",
        view_id=resolve_form.response["view"]["id"],
        values={"root_cause": {"value": "r" * 1001}},
    )
    assert (
        "The root cause is 1,001 characters; the limit is 1,000." in response.json()["errors"]["root_cause"]
    )
    assert workspace.incident(incident.id).status == "investigating"


def test_the_longest_allowed_hostile_text_still_makes_a_card_and_updates_that_fit(
    workspace: Workspace,
) -> None:
    description, impact = "<&>" * 166, "<!here>" * 71
    incident = workspace.declare(f'payments P2 {description} impact="{impact}"')
    for n in range(12):
        findings = f"{n} " + "<!channel>&" * 90
        workspace.command(f'update {incident.id} {findings} eta="{"<@U0VICTIM>" * 18}"')
        workspace.wait_until(
            lambda n=n: str(workspace.incident(incident.id).latest_findings).startswith(f"{n} ")
        )
    workspace.command(f"show {incident.id}")
    workspace.ephemeral_to("U0ALICE", "*Timeline*")
    workspace.settle()

    card = workspace.card(incident.id)
    assert card.blocks[0]["text"]["text"].startswith("🚨 *[P2] Incident declared: &lt;&amp;&gt;")
    assert_everything_sent_fits(workspace.slack)
    assert_no_injection(workspace.slack)


def test_rows_stored_before_the_caps_still_render_and_fit(workspace: Workspace) -> None:
    """The measured 10 MB description and a timeline far beyond any message, as stored before this change."""
    incident = workspace.declare()
    with Session(workspace.engine) as session:
        row = session.get(Incident, incident.id)
        assert row is not None
        row.description = "<!here> " + "d" * 1_000_000
        row.impact = "<!channel>" * 10_000
        session.add_all(
            TimelineEvent(
                incident_id=incident.id,
                at=workspace.clock.now(),
                actor="U0BOB",
                kind="update",
                text=f"Update: {n} <!here> " + "f" * 2_000,
                data={"findings": "f" * 2_000},
            )
            for n in range(300)
        )
        session.commit()

    workspace.command(f"show {incident.id}")
    shown = workspace.ephemeral_to("U0ALICE", "*Timeline*")
    assert "earlier entries not shown" in shown.args["text"]
    assert "Update: 299 &lt;!here&gt;" in shown.args["text"]  # the latest entries are the ones kept
    workspace.command(f"resolve {incident.id} pool exhausted --force")  # P1: the post-mortem draft follows
    workspace.wait_until(lambda: any(e.kind == "postmortem_draft" for e in workspace.timeline(incident.id)))
    workspace.settle()

    draft = workspace.slack.wait_for("chat.postMessage", lambda c: str(c.args.get("text")).startswith("📝"))
    assert "too long for a message" in draft.args["text"]
    assert workspace.card(incident.id).text.startswith("🚨 [P1] Incident declared: &lt;!here&gt; ddd")
    assert_everything_sent_fits(workspace.slack)
    assert_no_injection(workspace.slack)
