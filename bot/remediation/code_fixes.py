"""Code fixes through GitHub: rollback issues with revert PRs, the merge gate, hotfix issues, post-mortems.

Creating issues and PRs needs no approval (they change nothing in production); merging does: only approvers
may press Merge, and GitHub must show the runbook's review approvals and green CI ("Do not force-merge without
CI passing"). Every create carries an idempotency key, so a repeated click or a retry never makes a second one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from sqlalchemy.orm import Session, sessionmaker

from bot.comms.outbox import Outbox
from bot.comms.reminders import Planner
from bot.core.clock import Clock
from bot.core.database import reading, transaction
from bot.core.domain_errors import DomainError, UsageError
from bot.core.settings import Config
from bot.incidents.incident_records import Incident
from bot.incidents.lifecycle import IncidentService
from bot.incidents.postmortem import postmortem_markdown
from bot.observability.metric_analysis import DeployRates
from bot.remediation.approvals import ApproverDirectory
from bot.slack import rendering
from integrations.plans import IntegrationError

if TYPE_CHECKING:
    # PyGithub is loaded when GitHub is first used, not at start-up (see CodeFixFlows.github).
    from integrations.github_repos import GitHubClient, IssueRef, PullRef

log = logging.getLogger(__name__)


MergeResult = Literal["merged", "already merged", "dry run", "refused", "not an approver"]


@dataclass(frozen=True)
class MergeOutcome:
    """What a click on Merge did: merged, already merged, a dry run, refused by GitHub, or not an approver."""

    outcome: MergeResult
    detail: str = ""  # GitHub's summary, or why it refused


@dataclass(frozen=True)
class HotfixFields:
    summary: str
    evidence: str
    affected: str
    approach: str
    tests: str


@dataclass(frozen=True)
class MergeTarget:
    """What a Merge button names: the revert PR TARS opened for an incident, at the head it showed."""

    incident: int
    repo: str
    number: int
    sha: str

    @property
    def record(self) -> dict[str, object]:
        return {"repo": self.repo, "pull": self.number}


def parse_merge_value(value: object) -> MergeTarget:
    """The Merge button's value, or UsageError: it is client-controlled and may be anything."""
    refused = UsageError(
        "This button does not name a pull request TARS opened; use the Merge button on its card."
    )
    try:
        target = json.loads(value) if isinstance(value, str) and len(value) <= 2000 else None
    except ValueError:
        raise refused from None
    if not isinstance(target, dict):
        raise refused
    incident, repo, number, sha = (target.get(key) for key in ("incident", "repo", "number", "sha"))
    if not (
        isinstance(incident, int) and isinstance(number, int) and _small_id(incident) and _small_id(number)
    ):
        raise refused
    if not (isinstance(repo, str) and isinstance(sha, str) and 0 < len(repo) <= 200 and 0 < len(sha) <= 64):
        raise refused
    return MergeTarget(incident, repo, number, sha)


def _small_id(value: int) -> bool:
    return not isinstance(value, bool) and 0 < value < 2**31


class CodeFixFlows:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        config: Config,
        incidents: IncidentService,
        github: GitHubClient | None,
        approvers: ApproverDirectory,
        outbox: Outbox,
        planner: Planner,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.config = config
        self.incidents = incidents
        if github is not None:
            self.github = github  # shadows the cached_property: no client is built
        self.approvers = approvers
        self.outbox = outbox
        self.planner = planner
        # The error rate before and after the last deployment, from the service's metrics (wired in app.py).
        self.rates_around_deploy: Callable[[Incident], DeployRates | None] = lambda _incident: None
        self._merge_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    @cached_property
    def github(self) -> GitHubClient:
        """The configured GitHub client, built (and PyGithub imported) on first use."""
        from integrations.github_repos import GitHubClient

        config = self.config
        return GitHubClient(
            token=config.github_token, base_url=config.github.base_url, dry_run=config.dry_run
        )

    # --- rollback by issue ----------------------------------------------------------------------------------

    def rollback_by_issue(
        self, incident_id: int, service: str, commit_sha: str, *, actor: str
    ) -> tuple[IssueRef, PullRef]:
        from integrations.github_repos import ROLLBACK_LABEL

        incident, events = self._open_incident(incident_id)
        repo = self._repository(service)
        try:
            plan = self.github.plan_revert(repo, commit_sha)
            key = f"tars-{incident.ref}-rollback-{plan.target_sha[:12]}"
            justification = rendering.rollback_justification(
                incident, events, self.rates_around_deploy(incident)
            )
            issue = self.github.find_or_create_issue(
                repo,
                title=f"Rollback: revert {plan.target_sha[:7]} ({plan.target_subject}) for {incident.ref}",
                body=rendering.rollback_issue_body(incident, plan, justification),
                labels=[ROLLBACK_LABEL],
                idempotency_key=key,
            )
            pull = self.github.open_revert_pr(
                plan,
                title=f'Revert "{plan.target_subject}" ({incident.ref})',
                body=f"Rollback for {incident.ref}, tracked in #{issue.number}.\n\n{justification}",
                idempotency_key=key,
            )
        except IntegrationError as error:
            raise DomainError(f"TARS could not prepare the rollback: {error.message}") from error
        required = self.config.policy.approvals_required.for_severity(incident.severity)
        with transaction(self.sessions) as session:
            stored = self.incidents.get(session, incident_id)
            self.incidents.record(
                session,
                stored,
                actor=actor,
                kind="github_rollback",
                text=f"Rollback issue {issue.url} and revert PR {pull.url} for {plan.describe()}",
                data={
                    "repo": repo,
                    "issue": issue.number,
                    "pull": pull.number,
                    "commit": plan.target_sha,
                    "head_sha": pull.head_sha,
                },
            )
            self.outbox.channel_post(
                session, stored, rendering.rollback_opened_text(stored, plan.describe(), issue, pull)
            )
            self.outbox.thread_note(
                session,
                stored,
                *rendering.pull_card(stored, pull, required=required, merge_value=_merge_value(stored, pull)),
            )
        return issue, pull

    # --- the merge gate --------------------------------------------------------------------------------------

    def merge(self, target: MergeTarget, *, actor: str) -> MergeOutcome:
        """The Merge button: an approver asks; GitHub's reviews and CI decide. `rendering.merge_reply` words
        the outcome for the clicker."""
        incident_id, repo, number, head_sha = target.incident, target.repo, target.number, target.sha
        label = f"{repo}#{number}"
        with reading(self.sessions) as session:
            incident = self.incidents.get(session, incident_id)
            opened = any(
                event.kind == "github_rollback"
                and event.data.get("repo") == repo
                and event.data.get("pull") == number
                for event in self.incidents.timeline(session, incident_id)
            )
        if not opened:
            raise DomainError(
                f"{rendering.escape(label)} is not a pull request TARS opened for {incident.ref}; nothing was merged."
            )
        if not self.approvers.is_eligible(actor):
            self._record(
                incident_id,
                actor,
                "merge_refused",
                f"Merge of {label} refused: not an approver",
                {"repo": repo, "pull": number},
            )
            return MergeOutcome("not an approver")
        required = self.config.policy.approvals_required.for_severity(incident.severity)
        with self._merge_locks[label]:  # a double click in this process waits, then hears "already merged"
            try:
                result = self.github.merge_pull(
                    repo, number, expected_head_sha=head_sha, required_approvals=required
                )
            except IntegrationError as error:
                self._record(
                    incident_id,
                    actor,
                    "merge_refused",
                    f"Merge of {label} refused: {error.message}",
                    {"repo": repo, "pull": number},
                )
                return MergeOutcome("refused", error.message)
        if result.details.get("already_merged"):
            return MergeOutcome("already merged", result.summary)
        if result.dry_run:
            return MergeOutcome("dry run", result.summary)
        with transaction(self.sessions) as session:
            stored = self.incidents.get(session, incident_id)
            text = rendering.merged_text(stored, actor, result.summary)
            self.incidents.record(
                session,
                stored,
                actor=actor,
                kind="merged",
                text=result.summary,
                data={"repo": repo, "pull": number, **result.details},
            )
            self.outbox.channel_post(session, stored, text)
            self.outbox.thread_note(session, stored, text)
            now = self.clock.now()
            for delay, reminder in (
                (
                    timedelta(minutes=5),
                    "Validate the merged fix: error rate below 0.1% within 5 minutes of the deploy.",
                ),
                (
                    timedelta(minutes=10),
                    "10 minutes since the merge: if it held, move the incident to Monitoring.",
                ),
            ):
                self.planner.remind_at(session, stored, now + delay, reminder, [actor])
        return MergeOutcome("merged", result.summary)

    # --- hotfix issues ---------------------------------------------------------------------------------------

    def create_hotfix_issue(self, incident_id: int, fields: HotfixFields, *, actor: str) -> IssueRef:
        from integrations.github_repos import PRIORITY_LABELS

        incident, _events = self._open_incident(incident_id)
        repo = self._repository(incident.service)
        label = PRIORITY_LABELS["P1"] if incident.severity == 1 else PRIORITY_LABELS["P2"]
        try:
            issue = self.github.find_or_create_issue(
                repo,
                title=f"[{label}] {fields.summary} ({incident.ref})",
                body=rendering.hotfix_issue_body(incident, fields),
                labels=[label],
                idempotency_key=f"tars-{incident.ref}-hotfix-{hashlib.sha256(fields.summary.encode()).hexdigest()[:12]}",
            )
        except IntegrationError as error:
            raise DomainError(f"TARS could not create the issue: {error.message}") from error
        self._record(
            incident_id,
            actor,
            "hotfix_issue",
            f"Hotfix issue {issue.url}: {fields.summary}",
            {"repo": repo, "issue": issue.number},
            announce=rendering.hotfix_opened_text(incident, actor, label, issue, fields.summary),
        )
        return issue

    # --- post-mortem ----------------------------------------------------------------------------------------

    def postmortem(self, incident_id: int, *, actor: str) -> str:
        with reading(self.sessions) as session:
            incident = self.incidents.get(session, incident_id)
            events = self.incidents.timeline(session, incident_id)
        markdown = postmortem_markdown(incident, events)
        link = ""
        repo = self.config.github.postmortem_repository
        if repo:
            try:
                issue = self.github.find_or_create_issue(
                    repo,
                    title=f"Post-mortem: {incident.ref} [P{incident.severity}] {incident.service} — {incident.description}",
                    body=markdown,
                    labels=["post-mortem"],
                    idempotency_key=f"tars-{incident.ref}-postmortem",
                )
                link = issue.url
            except IntegrationError as error:
                log.error("post-mortem issue for %s failed: %s", incident.ref, error.message)
                link = f"(GitHub issue not created: {error.message})"
        draft = rendering.postmortem_draft(incident, markdown, link)
        # A long draft goes to the thread as a preview note followed by the whole draft as a file.
        with transaction(self.sessions) as session:
            incident = self.incidents.get(session, incident_id)
            self.incidents.record(
                session,
                incident,
                actor=actor,
                kind="postmortem_draft",
                text=f"Post-mortem draft posted{': ' + link if link else ''}",
                data={"issue": link, "file": draft.file_name},
            )
            self.outbox.thread_note(session, incident, draft.text)
            if draft.file_name and draft.file_content is not None:
                self.outbox.thread_file(
                    session,
                    incident,
                    draft.file_title or draft.file_name,
                    draft.file_name,
                    draft.file_content,
                    draft.file_comment or "",
                )
        return link

    # --- helpers --------------------------------------------------------------------------------------------

    def _open_incident(self, incident_id: int) -> tuple[Incident, list]:  # type: ignore[type-arg]
        with reading(self.sessions) as session:
            incident = self.incidents.get(session, incident_id)
            events = self.incidents.timeline(session, incident_id)
        if not incident.is_open:
            raise DomainError(f"{incident.ref} is resolved; open a new incident for a new fix.")
        return incident, events

    def _repository(self, service: str) -> str:
        entry = self.config.services.get(service)
        if entry is None or not entry.repository:
            raise UsageError(rendering.no_repository(service))
        return entry.repository

    def _record(
        self,
        incident_id: int,
        actor: str,
        kind: str,
        text: str,
        data: dict[str, object],
        *,
        announce: str | None = None,
        thread: str | None = None,
    ) -> None:
        with transaction(self.sessions) as session:
            incident = self.incidents.get(session, incident_id)
            self.incidents.record(session, incident, actor=actor, kind=kind, text=text, data=data)
            if announce:
                self.outbox.channel_post(session, incident, announce)
                self.outbox.thread_note(session, incident, announce)
            if thread:
                self.outbox.thread_note(session, incident, thread)


def _merge_value(incident: Incident, pull: PullRef) -> str:
    return json.dumps(
        {"incident": incident.id, "repo": pull.repo, "number": pull.number, "sha": pull.head_sha}
    )
