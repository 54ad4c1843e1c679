"""Code fixes through Slack and GitHub: rollback issues and revert PRs, the merge gate, hotfixes, post-mortems."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bot.core.clock import FrozenClock
from bot.core.settings import ApproversConfig, GitHubConfig, ServiceConfig
from bot.incidents.incident_records import TimelineEvent
from bot.remediation.code_fixes import HotfixFields
from bot.slack import rendering
from integrations.github_repos import GitHubClient
from sandbox.emulator import RecordedCall, SlackEmulator
from sandbox.fakes.github_api import FakeGitHub
from tests.support import CHANNEL, Workspace, start_tars

REPO = "acme/payments"
SERVICES = {
    "payments": ServiceConfig(oncall="U0PAYONCALL", repository=REPO),
    "checkout": ServiceConfig(oncall="U0CHKONCALL"),
}


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.create_repo(REPO)
        fake.create_repo("acme/postmortems")
        yield fake


@pytest.fixture
def history(github: FakeGitHub) -> dict[str, str]:
    base = github.commit(
        REPO, {"app/processor.py": "legacy()\n", "config.yaml": "pool: 10\n"}, message="Initial"
    )
    bad = github.commit(
        REPO,
        {"app/processor.py": "new_processor()\n", "app/retry.py": "retry()\n"},
        message="Switch to the new processor",
    )
    return {"base": base, "bad": bad}


@pytest.fixture
def team(slack: SlackEmulator, engine: Engine, clock: FrozenClock, github: FakeGitHub) -> Iterator[Workspace]:
    client = GitHubClient(
        token="ghp-test", base_url=github.base_url, seconds_between_requests=None, seconds_between_writes=None
    )
    with start_tars(
        slack,
        engine,
        clock,
        services=SERVICES,
        approvers=ApproversConfig(users=["U0BOB"]),
        github_client=client,
    ) as running:
        yield Workspace(running, slack, engine, clock)


def _pull_card(team: Workspace) -> RecordedCall:
    return team.slack.wait_for("chat.postMessage", lambda c: "Revert PR" in str(c.args.get("text", "")))


def _merge(team: Workspace, card: RecordedCall, user: str) -> str:
    value = next(e["value"] for b in card.args["blocks"] if b["type"] == "actions" for e in b["elements"])

    def to_clicker(call: RecordedCall) -> bool:
        return call.args.get("user") == user and "Opened rollback issue" not in str(call.args.get("text"))

    before = len([c for c in team.slack.calls_to("response_url") if to_clicker(c)])
    team.client.click_button(
        user_id=user,
        channel_id=CHANNEL,
        message_ts=card.response["ts"],
        action_id=rendering.MERGE_ACTION,
        value=value,
    )
    return str(team.slack.wait_for_count("response_url", before + 1, to_clicker)[-1].args["text"])


def test_rollback_by_commit_opens_a_labelled_issue_and_an_exact_revert_pr(
    team: Workspace, github: FakeGitHub, history: dict[str, str]
) -> None:
    incident = team.declare()
    team.command(f"update {incident.id} Error rate 0.05% before the deploy, 12% after it")
    team.wait_until(lambda: team.incident(incident.id).latest_findings is not None)
    team.command(f"rollback {incident.id} payments commit={history['bad']}")
    team.ephemeral_to("U0ALICE", "Opened rollback issue")

    [issue] = github.issues(REPO)
    assert [label["name"] for label in issue["labels"]] == ["type: rollback"]
    assert f"Roll back to commit `{history['base']}`" in issue["body"]
    assert "Error rate 0.05% before the deploy, 12% after it" in issue["body"]
    [pull] = github.pulls(REPO)
    assert github.tree_files(REPO, pull["head"]["sha"]) == github.tree_files(REPO, history["base"])
    opened = team.slack.wait_for(
        "chat.postMessage", lambda c: str(c.args.get("text", "")).startswith("↩️ INC-1")
    )
    assert (
        f"/{REPO}/issues/{issue['number']}" in opened.args["text"] or issue["html_url"] in opened.args["text"]
    )
    assert any(e.kind == "github_rollback" for e in team.timeline(incident.id))
    card = _pull_card(team)
    assert "needs 1 approving review(s) on GitHub (P1)" in card.args["text"]
    assert "P2: 2 engineer approvals" in json.dumps(card.args["blocks"])

    # Asking again (a double click, a retry) creates nothing new.
    team.command(f"rollback {incident.id} payments commit={history['bad']}")
    team.ephemeral_to("U0ALICE", "Opened rollback issue")
    assert len(github.issues(REPO)) == 1 and len(github.pulls(REPO)) == 1


def test_reverting_an_older_commit_keeps_later_work(
    team: Workspace, github: FakeGitHub, history: dict[str, str]
) -> None:
    later = github.commit(REPO, {"config.yaml": "pool: 20\n"}, message="Bigger pool")
    team.declare()
    team.command(f"rollback 1 payments commit={history['bad']}")
    team.ephemeral_to("U0ALICE", "Opened rollback issue")
    [pull] = github.pulls(REPO)
    assert github.tree_files(REPO, pull["head"]["sha"]) == {
        "app/processor.py": "legacy()\n",
        "config.yaml": "pool: 20\n",
    }
    assert later


def test_a_conflicting_revert_is_refused_and_creates_nothing(
    team: Workspace, github: FakeGitHub, history: dict[str, str]
) -> None:
    github.commit(REPO, {"app/processor.py": "new_processor(timeout=5)\n"}, message="Tune the processor")
    team.declare()
    team.command(f"rollback 1 payments commit={history['bad']}", user="U0BOB")
    reply = team.ephemeral_to("U0BOB", "TARS could not prepare the rollback:")
    assert "app/processor.py" in reply.args["text"]
    assert github.issues(REPO) == [] and github.pulls(REPO) == []


def test_merge_only_by_approvers_with_reviews_and_green_ci_and_only_once(
    team: Workspace, github: FakeGitHub, history: dict[str, str]
) -> None:
    team.declare()
    team.command(f"rollback 1 payments commit={history['bad']}")
    card = _pull_card(team)
    [pull] = github.pulls(REPO)
    head = pull["head"]["sha"]

    assert _merge(team, card, "U0EVE").startswith("Only approvers can merge fixes")
    assert "CI has not passed (no CI checks reported)" in _merge(team, card, "U0BOB")
    github.set_check_run(REPO, head, name="ci/test", status="in_progress", conclusion=None)
    assert "1 pending (ci/test)" in _merge(team, card, "U0BOB")
    github.set_check_run(REPO, head, name="ci/test", status="completed", conclusion="failure")
    assert "1 failing (ci/test)" in _merge(team, card, "U0BOB")
    github.set_check_run(REPO, head, name="ci/test", status="completed", conclusion="success")
    assert "approv" in _merge(team, card, "U0BOB").lower()  # no approving review yet
    github.add_review(REPO, pull["number"], user="reviewer-1", state="APPROVED")

    assert _merge(team, card, "U0BOB").startswith("Merged:")
    assert "already merged" in _merge(team, card, "U0BOB")  # a double click
    puts = [r for r in github.requests if r[0] == "PUT" and r[1].endswith("/merge")]
    assert len(puts) == 1
    kinds = [e.kind for e in team.timeline(1)]
    assert kinds.count("merge_refused") == 5 and kinds.count("merged") == 1
    team.slack.wait_for(
        "chat.postMessage", lambda c: str(c.args.get("text", "")).startswith("🔀 INC-1: <@U0BOB> merged")
    )


def test_hotfix_issue_from_the_form(team: Workspace, github: FakeGitHub) -> None:
    team.declare()
    team.command("hotfix 1 Null check missing in the processor")
    opened = team.slack.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == rendering.HOTFIX_VIEW
    response = team.client.submit_view(
        user_id="U0ALICE",
        view_id=opened.response["view"]["id"],
        values={
            "evidence": {"value": ""},
            "approach": {"value": "Guard the call"},
            "tests": {"value": "Unit test"},
        },
    )
    assert response.json()["errors"] == {"evidence": "Required for the issue."}
    team.client.submit_view(
        user_id="U0ALICE",
        view_id=opened.response["view"]["id"],
        values={
            "evidence": {"value": "NullPointerException at Processor.charge (trace id 4f2a)"},
            "affected": {"value": "app/processor.py"},
            "approach": {"value": "Guard the call with a null check"},
            "tests": {"value": "Charge with a missing card token"},
        },
    )
    team.wait_until(lambda: len(github.issues(REPO)) == 1)
    [issue] = github.issues(REPO)
    assert [label["name"] for label in issue["labels"]] == ["P1-hotfix"]
    assert issue["title"] == "[P1-hotfix] Null check missing in the processor (INC-1)"
    for heading in (
        "## Error description and log evidence",
        "## Affected service and file",
        "## Suggested fix approach",
        "## Test cases to verify the fix",
    ):
        assert heading in issue["body"]
    assert "file: `app/processor.py`" in issue["body"]


def test_p2_hotfix_is_labelled_p2_fix(team: Workspace, github: FakeGitHub) -> None:
    incident = team.declare("payments P2 Refunds slow")
    fields = HotfixFields(summary="Slow refunds", evidence="e", affected="", approach="a", tests="t")
    issue = team.running.app.tars.code_fixes.create_hotfix_issue(incident.id, fields, actor="U0ALICE")
    assert github.issues(REPO)[0]["labels"][0]["name"] == "P2-fix" and issue.number == 1


def test_resolving_a_p1_posts_the_postmortem_draft(team: Workspace, github: FakeGitHub) -> None:
    incident = team.declare()
    team.command(f"ack {incident.id}", user="U0PAYONCALL")
    team.set_status(incident.id, "monitoring")
    team.clock.advance(timedelta(minutes=12))
    team.command(f"resolve {incident.id} Connection pool exhausted by the new processor users=800")
    draft = team.slack.wait_for(
        "chat.postMessage", lambda c: str(c.args.get("text", "")).startswith("📝 Post-mortem draft for INC-1")
    )
    text = draft.args["text"]
    assert draft.args["thread_ts"] == incident.card_ts
    for part in (
        "## Timeline",
        "Detected",
        "Declared",
        "Mitigated",
        "Resolved",
        "## Root cause",
        "Connection pool exhausted by the new processor",
        "## Contributing factors",
        "## Action items",
        "## What went well",
    ):
        assert part in text
    assert any(e.kind == "postmortem_draft" for e in team.timeline(incident.id))
    team.settle()
    assert team.slack.uploaded_files() == []  # a short draft is the message alone


def test_a_long_postmortem_draft_follows_its_preview_as_a_markdown_file(team: Workspace) -> None:
    incident = team.declare()
    with Session(team.engine) as session:
        session.add_all(
            TimelineEvent(
                incident_id=incident.id,
                at=team.clock.now(),
                actor="U0BOB",
                kind="update",
                text=f"Update: finding number {n} " + "f" * 100,
                data={"findings": f"finding number {n}"},
            )
            for n in range(300)
        )
        session.commit()
    team.command(f"resolve {incident.id} Connection pool exhausted --force")
    preview = team.slack.wait_for(
        "chat.postMessage", lambda c: str(c.args.get("text", "")).startswith("📝 Post-mortem draft for INC-1")
    )
    assert preview.args["thread_ts"] == incident.card_ts
    assert "so it follows as the file `INC-1-postmortem.md`" in preview.args["text"]
    team.wait_until(lambda: len(team.slack.uploaded_files()) == 1, message="the draft was never uploaded")
    team.settle()

    [uploaded] = team.slack.uploaded_files()
    assert uploaded.filename == "INC-1-postmortem.md"
    assert uploaded.title == "Post-mortem draft for INC-1"
    assert (uploaded.channel, uploaded.thread_ts) == (incident.channel_id, incident.card_ts)
    content = uploaded.content.decode()
    assert content.startswith("# Post-mortem: INC-1")
    for n in range(300):
        assert f"Update: finding number {n} " in content
    assert "## Action items" in content
    shared = [
        m for m in team.slack.thread_replies(str(incident.channel_id), str(incident.card_ts)) if m.files
    ]
    assert [m.files[0]["name"] for m in shared] == ["INC-1-postmortem.md"]


def test_postmortem_command_files_an_issue_in_the_configured_repository(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, github: FakeGitHub
) -> None:
    client = GitHubClient(
        token="t", base_url=github.base_url, seconds_between_requests=None, seconds_between_writes=None
    )
    with start_tars(
        slack,
        engine,
        clock,
        services=SERVICES,
        github_client=client,
        github=GitHubConfig(postmortem_repository="acme/postmortems"),
    ) as running:
        team = Workspace(running, slack, engine, clock)
        incident = team.declare("payments P2 Refunds slow")
        team.command(f"postmortem {incident.id}")
        reply = team.ephemeral_to("U0ALICE", "Posted the post-mortem draft")
        [issue] = github.issues("acme/postmortems")
        assert issue["title"].startswith("Post-mortem: INC-1 [P2] payments")
        assert issue["html_url"] in reply.args["text"]
        team.command(f"postmortem {incident.id}")
        team.wait_until(
            lambda: (
                len(
                    [
                        c
                        for c in team.slack.ephemerals(user="U0ALICE")
                        if "post-mortem draft" in c.args["text"]
                    ]
                )
                == 2
            )
        )
        assert len(github.issues("acme/postmortems")) == 1  # the same draft issue, not a second one


def test_services_without_a_repository_are_refused(team: Workspace) -> None:
    team.declare("checkout P1 Checkout down")
    team.command("rollback 1 checkout commit=abc1234", user="U0BOB")
    team.ephemeral_to("U0BOB", "`checkout` has no `repository` in the catalog")
