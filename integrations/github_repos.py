"""GitHub actions from the remediation runbook: rollback/code-fix issues, revert PRs, and a guarded merge.

Everything goes through PyGithub. Two properties matter more than anything else here:

* Nothing mutating is ever retried blindly. A POST whose response was lost (a 5xx or a dropped connection after
  GitHub applied it) is followed by one *lookup* for what it would have created, never by a second POST; so an
  engineer's second click, or a lost response, finds the issue or PR instead of duplicating it.
* Nothing is merged that the runbook forbids: CI must be green ("Do not force-merge without CI passing"; no CI at
  all is not green), the head must still be the commit the engineers approved, and the approvals must be on
  that commit.

Reverts are computed with the Git Data API (trees and blobs), at file level: the same result ``git revert``
produces when it applies cleanly, and a ``RevertConflict`` in every case where a later commit touched a file the
reverted commit changed (where git might still attempt a line-level merge, a bot should ask a human instead).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple, TypeVar

import requests
from github import Auth, Github, GithubException, GithubRetry, InputGitTreeElement, UnknownObjectException
from github.Issue import Issue
from github.PullRequest import PullRequest
from github.Repository import Repository

from integrations.plans import ActionResult, IntegrationError, NothingToDo, TargetChanged

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DRY_RUN_URL = "(dry run)"
NO_CHECKS = "no CI checks reported"
ROLLBACK_LABEL = "type: rollback"
# The runbook's review table: P1 hotfixes need one engineer approval, P2 fixes two.
REQUIRED_APPROVALS = {"P1": 1, "P2": 2}
PRIORITY_LABELS = {"P1": "P1-hotfix", "P2": "P2-fix"}
MERGE_METHODS = frozenset({"merge", "squash", "rebase"})

# How far back an idempotency marker is searched for: enough for any retry or double click, small enough to be
# one request at per_page=100.
_ISSUE_LOOKBACK = 100
# How many commits of a branch's history plan_revert reads looking for the commit to revert (10 pages).
_HISTORY_LIMIT = 1000
# GitHub rejects issue and PR bodies longer than this many characters.
_BODY_LIMIT = 65536
_PASSING_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})
_FAILING_CONCLUSIONS = frozenset(
    {"failure", "cancelled", "timed_out", "action_required", "stale", "startup_failure"}
)
_REPO_RE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SHA_RE = re.compile(r"[0-9a-fA-F]{7,40}")
# The key ends up inside an HTML comment, so it must not be able to close it ("-->") or contain whitespace.
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#=+@-]{0,199}")
_SUBMODULE_MODE = "160000"


# --------------------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class IssueRef:
    repo: str
    number: int  # 0 in a dry run that found no existing issue
    url: str
    created: bool  # False when an existing issue with the same idempotency key was found, and in a dry run


@dataclass(frozen=True)
class PullRef:
    repo: str
    number: int  # 0 in a dry run that found no existing PR
    url: str
    head_sha: str  # "" in a dry run: the revert commit's sha depends on the moment it is created
    created: bool


@dataclass(frozen=True)
class RevertPlan:
    """What reverting one commit would change, computed from a snapshot of the branch tip."""

    repo: str
    branch: str
    tip_sha: str  # the branch tip the plan was computed from; open_revert_pr refuses if it moved
    target_sha: str  # the commit being reverted
    parent_sha: str
    target_message: str  # the reverted commit's full message
    changes: dict[str, str | None]  # path -> blob sha to restore (None = delete) relative to the tip tree
    # path -> git file mode for every path in changes ("100644", "100755", "120000" or "160000"), so restoring a
    # script keeps its executable bit; missing entries mean "100644".
    modes: dict[str, str] = field(default_factory=dict)

    @property
    def target_subject(self) -> str:
        return self.target_message.split("\n", 1)[0].strip()

    def describe(self) -> str:
        count = len(self.changes)
        files = "1 file" if count == 1 else f"{count} files"
        return f"{self.repo}: revert {self.target_sha[:7]} ({self.target_subject}) on {self.branch}, {files}"


@dataclass(frozen=True)
class ChecksState:
    state: str  # "success" | "pending" | "failure"
    passing: list[str]
    pending: list[str]
    failing: list[str]  # names of commit statuses (their context) and check runs

    def summary(self) -> str:
        if not self.passing and not self.failing and self.pending == [NO_CHECKS]:
            return NO_CHECKS
        parts = [f"{len(self.passing)} passing"]
        if self.pending:
            parts.append(f"{len(self.pending)} pending ({_names(self.pending)})")
        if self.failing:
            parts.append(f"{len(self.failing)} failing ({_names(self.failing)})")
        return ", ".join(parts)


class RevertConflict(IntegrationError):
    """Later commits changed files the reverted commit changed; a human has to resolve the revert."""


def required_approvals(priority: str) -> int:
    """Approvals the runbook requires before merging a fix of this priority ("P1" or "P2")."""
    try:
        return REQUIRED_APPROVALS[priority.upper()]
    except KeyError:
        raise ValueError(
            f"the runbook defines merge approvals for P1 and P2 only, not {priority!r}"
        ) from None


def revert_branch_name(plan: RevertPlan, idempotency_key: str) -> str:
    """The head branch of the revert PR; the same plan and key always give the same branch."""
    _check_key(idempotency_key)
    return f"tars/revert-{plan.target_sha[:7]}-{_key_suffix(idempotency_key)}"


def revert_message(plan: RevertPlan) -> str:
    # The exact message `git revert` writes, so tooling that recognises reverts recognises these too.
    return f'Revert "{plan.target_subject}"\n\nThis reverts commit {plan.target_sha}.'


# --------------------------------------------------------------------------------------------------------------
# the client


class _CommitInfo(NamedTuple):
    sha: str
    parents: tuple[str, ...]
    tree: str
    message: str


# path -> (mode, type, sha) of every non-tree entry of a tree
_Flat = dict[str, tuple[str, str, str]]


class GitHubClient:
    """One GitHub (or GitHub Enterprise) account, as used by TARS; safe to keep for the life of the process."""

    def __init__(
        self,
        *,
        token: str | None,
        base_url: str = "https://api.github.com",
        dry_run: bool = False,
        seconds_between_requests: float | None = 0.25,
        seconds_between_writes: float | None = 1.0,
        timeout: float = 15,
    ) -> None:
        self.dry_run = dry_run
        self._login: str | None = None
        self._login_known = False
        self._github = Github(
            base_url=base_url,
            auth=Auth.Token(token) if token else None,
            # PyGithub only accepts whole seconds here; round up so a configured timeout is never shortened.
            timeout=max(1, math.ceil(timeout)),
            per_page=100,
            retry=_read_only_retry(),
            seconds_between_requests=seconds_between_requests,
            seconds_between_writes=seconds_between_writes,
            # Lazy objects do not fetch themselves until an attribute they lack is read, which saves a request
            # per call (no GET of the repository just to build URLs under it).
            lazy=True,
            user_agent="tars-incident-bot",
        )

    def close(self) -> None:
        self._github.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- issues -------------------------------------------------------------------------------------------------

    def find_or_create_issue(
        self, repo: str, *, title: str, body: str, labels: list[str], idempotency_key: str
    ) -> IssueRef:
        """The issue carrying ``idempotency_key``, creating it if none of the recent ones does.

        The key is stored in the body as a hidden marker. A failed create that may have been applied (5xx, lost
        connection) is followed by one more lookup, so the caller gets the issue that was in fact created
        (``created`` True) instead of an error and, on its retry, a duplicate. In a dry run an existing issue is
        still found; otherwise nothing is sent and the ref has number 0, url "(dry run)" and ``created`` False.
        """
        _check_key(idempotency_key)
        marker = _marker(idempotency_key)
        with _calling(f"looking for an existing issue in {repo}"):
            gh_repo = self._repo(repo)
            existing = self._find_issue(gh_repo, marker)
        if existing is not None:
            return IssueRef(repo, existing.number, existing.html_url, created=False)
        payload: dict[str, Any] = {"title": title, "body": _with_marker(body, marker), "labels": list(labels)}
        if self.dry_run:
            log.info("dry run: would POST /repos/%s/issues %s", repo, payload)
            return IssueRef(repo, 0, DRY_RUN_URL, created=False)
        try:
            with _calling(f"creating an issue in {repo}"):
                issue = gh_repo.create_issue(**payload)
        except IntegrationError as error:
            if not _maybe_applied(error):
                raise
            recovered = self._look_again(lambda: self._find_issue(gh_repo, marker))
            if recovered is None:
                raise
            log.warning(
                "issue create in %s failed (%s) but it was applied: #%s", repo, error, recovered.number
            )
            return IssueRef(repo, recovered.number, recovered.html_url, created=True)
        return IssueRef(repo, issue.number, issue.html_url, created=True)

    def _find_issue(self, gh_repo: Repository, marker: str) -> Issue | None:
        login = self._authenticated_login()
        if login is None:
            listing = gh_repo.get_issues(state="all", sort="created", direction="desc")
        else:
            # PyGithub's annotation asks for a NamedUser; it documents and accepts the login string too.
            listing = gh_repo.get_issues(
                state="all",
                sort="created",
                direction="desc",
                creator=login,  # type: ignore[arg-type]
            )
        for issue in islice(listing, _ISSUE_LOOKBACK):
            # The body is checked first because reading pull_request on a plain issue costs a request.
            if marker in (issue.body or "") and issue.pull_request is None:
                return issue
        return None

    def _authenticated_login(self) -> str | None:
        """The token's login, to search only issues TARS created; None when the token cannot tell (GitHub
        App installation tokens get 403 on /user), in which case all recent issues are searched."""
        if not self._login_known:
            try:
                self._login = self._github.get_user().login
            except GithubException as error:
                if error.status != 403:
                    raise
                self._login = None
            self._login_known = True
        return self._login

    # -- reverts ------------------------------------------------------------------------------------------------

    def plan_revert(self, repo: str, commit_sha: str, *, branch: str | None = None) -> RevertPlan:
        """The file changes that revert ``commit_sha`` on ``branch`` (default: the default branch).

        Raises IntegrationError when the commit is not on the branch's first-parent history (within the last
        1000 commits), is a merge or the root commit; RevertConflict when a later commit changed one of its
        files; NothingToDo when the branch already has the commit's changes undone.
        """
        _check_repo(repo)
        if not _SHA_RE.fullmatch(commit_sha):
            raise IntegrationError(f"{commit_sha!r} is not a commit sha (7 to 40 hex digits)")
        with _calling(f"planning the revert of {commit_sha[:7]} in {repo}"):
            gh_repo = self._repo(repo)
            branch = branch or gh_repo.default_branch
            tip = self._branch_tip(gh_repo, repo, branch)
            target_sha = self._resolve_commit(gh_repo, commit_sha)
            known: dict[str, _CommitInfo] = {}
            chain = self._first_parent_chain(gh_repo, tip, target_sha, known, repo, branch)
            target = chain[-1]
            short = target_sha[:7]
            if len(target.parents) > 1:
                raise IntegrationError(f"{short} is a merge commit: reverting merge commits is not supported")
            if not target.parents:
                raise IntegrationError(f"{short} is the root commit of {repo}; there is nothing to revert to")
            parent_sha = target.parents[0]
            parent_tree = (
                known[parent_sha].tree if parent_sha in known else self._tree_of(gh_repo, parent_sha)
            )
            parent_flat = self._flat_tree(gh_repo, parent_tree)
            target_flat = self._flat_tree(gh_repo, target.tree)
            tip_flat = target_flat if tip == target_sha else self._flat_tree(gh_repo, chain[0].tree)

            changes, modes, conflicts = _revert_changes(parent_flat, target_flat, tip_flat)
            if conflicts:
                later = {c.sha for c in chain[:-1]}
                touched = self._commits_touching(gh_repo, tip, target_sha, conflicts, later)
                raise _conflict(repo, branch, short, conflicts, touched)
        if not changes:
            if parent_flat == target_flat:
                raise NothingToDo(f"{short} changed no files; there is nothing to revert")
            raise NothingToDo(f"the changes of {short} are already undone on {branch}")
        return RevertPlan(
            repo=repo,
            branch=branch,
            tip_sha=tip,
            target_sha=target_sha,
            parent_sha=parent_sha,
            target_message=target.message,
            changes=changes,
            modes=modes,
        )

    def open_revert_pr(self, plan: RevertPlan, *, title: str, body: str, idempotency_key: str) -> PullRef:
        """Commit the plan on a new branch and open a PR into ``plan.branch``; idempotent per key.

        An open PR from the same branch is returned as is (``created`` False), before the tip is checked, so a
        double click after the first PR merged elsewhere does not fail. Otherwise the branch tip must still be
        ``plan.tip_sha`` (TargetChanged). An existing revert branch holding the same tree on the same parent is
        reused; one holding anything else is an error rather than overwritten. In a dry run nothing is written
        and the ref has number 0, url "(dry run)", head_sha "" and ``created`` False.
        """
        if not plan.changes:
            raise NothingToDo(f"the plan for {plan.target_sha[:7]} changes no files")
        head = revert_branch_name(plan, idempotency_key)
        marker = _marker(idempotency_key)
        short = plan.target_sha[:7]
        with _calling(f"opening the revert PR for {short} in {plan.repo}"):
            gh_repo = self._repo(plan.repo)
            existing = self._find_open_pull(gh_repo, plan.repo, head, plan.branch)
            if existing is not None:
                return _pull_ref(plan.repo, existing, created=False)
            tip = self._branch_tip(gh_repo, plan.repo, plan.branch)
            if tip != plan.tip_sha:
                raise TargetChanged(
                    f"{plan.branch} moved from {plan.tip_sha[:7]} to {tip[:7]} since the revert of {short} "
                    "was planned; plan it again",
                    details={"planned_tip": plan.tip_sha, "current_tip": tip},
                )
            elements = _tree_elements(plan)
            if self.dry_run:
                log.info(
                    "dry run: would commit %r on %s (%s), create refs/heads/%s and open a PR %r into %s",
                    revert_message(plan),
                    plan.tip_sha,
                    plan.changes,
                    head,
                    title,
                    plan.branch,
                )
                return PullRef(plan.repo, 0, DRY_RUN_URL, "", created=False)
            tip_commit = gh_repo.get_git_commit(plan.tip_sha)
            # Trees are content-addressed: writing the same one again yields the same sha and changes nothing.
            tree = gh_repo.create_git_tree(elements, base_tree=tip_commit.tree)
            commit_sha = self._reusable_revert_commit(gh_repo, plan, head, tree.sha)
        if commit_sha is None:
            with _calling(f"committing the revert of {short} in {plan.repo}"):
                commit = gh_repo.create_git_commit(revert_message(plan), tree, [tip_commit])
            try:
                with _calling(f"creating branch {head} in {plan.repo}"):
                    gh_repo.create_git_ref(f"refs/heads/{head}", commit.sha)
            except IntegrationError:
                # Lost response or a concurrent click that created it first: fine if it holds this revert.
                reused = self._look_again(lambda: self._reusable_revert_commit(gh_repo, plan, head, tree.sha))
                if reused is None:
                    raise
        payload: dict[str, Any] = {
            "base": plan.branch,
            "head": head,
            "title": title,
            "body": _with_marker(body, marker),
        }
        try:
            with _calling(f"opening the revert PR for {short} in {plan.repo}"):
                pull = gh_repo.create_pull(**payload)
        except IntegrationError as error:
            # A lost response means our PR exists; a 422 may mean a concurrent click opened it first.
            recovered = self._look_again(lambda: self._find_open_pull(gh_repo, plan.repo, head, plan.branch))
            if recovered is None:
                raise
            return _pull_ref(plan.repo, recovered, created=_maybe_applied(error))
        return _pull_ref(plan.repo, pull, created=True)

    def _reusable_revert_commit(
        self, gh_repo: Repository, plan: RevertPlan, head: str, tree: str
    ) -> str | None:
        """The commit on an existing ``head`` branch if it is exactly this revert; None if there is no branch."""
        try:
            # Lazy: the ref is only fetched (and found missing) when its target is read.
            ref_sha = gh_repo.get_git_ref(f"heads/{head}").object.sha
        except UnknownObjectException:
            return None
        commit = gh_repo.get_git_commit(ref_sha)
        if commit.tree.sha == tree and [p.sha for p in commit.parents] == [plan.tip_sha]:
            return commit.sha
        raise IntegrationError(
            f"branch {head} already exists in {plan.repo} with a different change; delete it or revert "
            "with a new request",
            details={"branch": head, "sha": commit.sha},
        )

    def _find_open_pull(self, gh_repo: Repository, repo: str, head: str, base: str) -> PullRequest | None:
        owner = repo.split("/", 1)[0]
        return next(iter(gh_repo.get_pulls(state="open", head=f"{owner}:{head}", base=base)), None)

    def _branch_tip(self, gh_repo: Repository, repo: str, branch: str) -> str:
        try:
            return gh_repo.get_git_ref(f"heads/{branch}").object.sha
        except UnknownObjectException as error:
            raise IntegrationError(f"branch {branch!r} not found in {repo}", status=404) from error

    def _resolve_commit(self, gh_repo: Repository, commit_sha: str) -> str:
        if len(commit_sha) == 40:
            return commit_sha.lower()
        # A lazy Commit reports the ref it was asked for as its sha; completing it yields the full sha.
        return gh_repo.get_commit(commit_sha).complete().sha

    def _first_parent_chain(
        self,
        gh_repo: Repository,
        tip: str,
        target: str,
        known: dict[str, _CommitInfo],
        repo: str,
        branch: str,
    ) -> list[_CommitInfo]:
        """Commits from ``tip`` to ``target`` following first parents, newest first.

        The history listing returns 100 commits per request with their parents, so walking it costs a request
        per 100 commits instead of one per commit.
        """
        listing = iter(gh_repo.get_commits(sha=tip))
        chain: list[_CommitInfo] = []
        current = tip
        while True:
            while current not in known:
                entry = next(listing, None)
                if entry is None or len(known) >= _HISTORY_LIMIT:
                    raise IntegrationError(
                        f"{target[:7]} is not on {branch}'s history in {repo} (searched "
                        f"{len(known)} commits back from {tip[:7]})"
                    )
                known[entry.sha] = _CommitInfo(
                    entry.sha,
                    tuple(p.sha for p in entry.parents),
                    entry.commit.tree.sha,
                    entry.commit.message,
                )
            info = known[current]
            chain.append(info)
            if info.sha == target:
                return chain
            if not info.parents:
                break
            current = info.parents[0]
        if target in known:
            raise IntegrationError(
                f"{target[:7]} reached {branch} through a merge, not as one of its own commits; revert "
                "the merge by hand (reverting merge commits is not supported)"
            )
        raise IntegrationError(f"{target[:7]} is not on {branch}'s history in {repo}")

    def _tree_of(self, gh_repo: Repository, commit_sha: str) -> str:
        return gh_repo.get_git_commit(commit_sha).tree.sha

    def _flat_tree(self, gh_repo: Repository, tree_sha: str) -> _Flat:
        tree = gh_repo.get_git_tree(tree_sha, recursive=True)
        if tree.truncated:
            raise IntegrationError(f"tree {tree_sha[:7]} is too large for GitHub to list; revert it by hand")
        return {e.path: (e.mode, e.type, e.sha) for e in tree.tree if e.type != "tree"}

    def _commits_touching(
        self, gh_repo: Repository, tip: str, target: str, paths: list[str], later: set[str]
    ) -> dict[str, list[tuple[str, str]]]:
        """path -> (sha, subject) of commits after ``target`` that changed it, for the conflict message."""
        found: dict[str, list[tuple[str, str]]] = {}
        for path in paths[:5]:  # enough to explain the conflict, bounded in requests
            candidates: list[tuple[str, str]] = []
            reached_target = False
            for entry in islice(gh_repo.get_commits(sha=tip, path=path), 100):
                if entry.sha == target:
                    reached_target = True
                    break
                candidates.append((entry.sha, entry.commit.message.split("\n", 1)[0]))
            # Without reaching the target the listing's order proves nothing; keep only the branch's own commits.
            if not reached_target:
                candidates = [c for c in candidates if c[0] in later]
            found[path] = candidates[:3]
        return found

    # -- CI and reviews -----------------------------------------------------------------------------------------

    def checks(self, repo: str, sha: str) -> ChecksState:
        """Commit statuses and check runs of ``sha``; no CI at all is "pending", never "success"."""
        _check_repo(repo)
        passing: list[str] = []
        pending: list[str] = []
        failing: list[str] = []
        with _calling(f"reading CI results of {sha[:7]} in {repo}"):
            commit = self._repo(repo).get_commit(sha)
            combined = commit.get_combined_status()
            for status in combined.statuses:
                if status.state == "success":
                    passing.append(status.context)
                elif status.state == "pending":
                    pending.append(status.context)
                else:  # failure, error
                    failing.append(status.context)
            for run in commit.get_check_runs():
                if run.status != "completed":
                    pending.append(run.name)
                elif run.conclusion in _PASSING_CONCLUSIONS:
                    passing.append(run.name)
                elif run.conclusion in _FAILING_CONCLUSIONS:
                    failing.append(run.name)
                else:  # a conclusion GitHub adds later must not count as green
                    pending.append(run.name)
        # The combined state covers statuses beyond the first page, which the lists above may not show.
        if combined.state in ("failure", "error") and not failing:
            failing.append("commit status (combined)")
        if failing:
            state = "failure"
        elif pending:
            state = "pending"
        elif passing:
            state = "success"
        else:
            state, pending = "pending", [NO_CHECKS]
        return ChecksState(state, passing, pending, failing)

    def approvals(self, repo: str, number: int, *, head_sha: str | None = None) -> list[str]:
        """Logins whose latest review decision on the PR is an approval, in the order they approved.

        As on GitHub, a later plain comment does not withdraw an approval; a request for changes or a dismissal
        does. With ``head_sha``, only approvals given on that commit count, so an approval is bound to the exact
        change the engineer looked at.
        """
        _check_repo(repo)
        latest: dict[str, tuple[str, str]] = {}
        with _calling(f"reading reviews of {repo}#{number}"):
            for review in self._repo(repo).get_pull(number).get_reviews():
                if review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED") and review.user is not None:
                    login = review.user.login
                    latest.pop(login, None)  # re-insert so the order is that of the latest decisions
                    latest[login] = (review.state, review.commit_id)
        return [
            login
            for login, (state, commit_id) in latest.items()
            if state == "APPROVED" and (head_sha is None or commit_id == head_sha)
        ]

    def merge_pull(
        self,
        repo: str,
        number: int,
        *,
        expected_head_sha: str,
        required_approvals: int,
        method: str = "merge",
    ) -> ActionResult:
        """Merge the PR if, and only if, the runbook allows it; otherwise raise before sending anything.

        Already merged → ok with summary "already merged" (a double click is not an error). Head moved →
        TargetChanged. CI not green, or fewer approvals on the head commit than required → IntegrationError
        saying which checks and who approved.
        """
        _check_repo(repo)
        if method not in MERGE_METHODS:
            raise ValueError(f"merge method must be one of {sorted(MERGE_METHODS)}, not {method!r}")
        if required_approvals < 1:
            # The runbook has an engineer approve every merge; zero would let the bot merge its own PR.
            raise ValueError("required_approvals must be at least 1")
        label = f"{repo}#{number}"
        request = {
            "method": "PUT",
            "path": f"/repos/{repo}/pulls/{number}/merge",
            "body": {"merge_method": method, "sha": expected_head_sha},
        }
        with _calling(f"checking {label} before merging"):
            pull = self._repo(repo).get_pull(number)
            if pull.merged:
                return _already_merged(label, pull, request)
            if pull.state != "open":
                raise IntegrationError(f"{label} is closed without being merged; reopen it first")
            if pull.head.sha != expected_head_sha:
                raise TargetChanged(
                    f"{label} changed since it was approved: head is {pull.head.sha[:7]}, "
                    f"expected {expected_head_sha[:7]}; review it again",
                    details={"expected_head_sha": expected_head_sha, "head_sha": pull.head.sha},
                )
        ci = self.checks(repo, expected_head_sha)
        if ci.state != "success":
            raise IntegrationError(
                f"not merging {label}: CI has not passed ({ci.summary()})",
                details={"pending": ci.pending, "failing": ci.failing},
            )
        approved = self.approvals(repo, number, head_sha=expected_head_sha)
        if len(approved) < required_approvals:
            who = f"approved by {', '.join(approved)}" if approved else "no approvals"
            raise IntegrationError(
                f"not merging {label}: needs {required_approvals} approval(s) of {expected_head_sha[:7]}, "
                f"has {len(approved)} ({who})",
                details={"approvals": approved, "required": required_approvals},
            )
        details: dict[str, Any] = {"approvals": approved, "checks": ci.summary()}
        if self.dry_run:
            log.info("dry run: would %s %s", request["method"], request)
            return ActionResult(
                ok=True,
                summary=f"{label}: would merge {expected_head_sha[:7]} into {pull.base.ref} ({method})",
                dry_run=True,
                request=request,
                details=details,
            )
        try:
            with _calling(f"merging {label}"):
                status = pull.merge(merge_method=method, sha=expected_head_sha)
        except IntegrationError as error:
            if error.status == 409:  # GitHub: "Head branch was modified"
                raise TargetChanged(f"{label} changed while merging; review it again", status=409) from error
            if not _maybe_applied(error):
                raise
            # The merge may have happened with only its response lost; asking is safe, merging again is not.
            merged = self._look_again(lambda: self._merged_pull(repo, number))
            if merged is None:
                raise
            log.warning("merge of %s failed (%s) but it was applied", label, error)
            merge_commit_sha = merged.merge_commit_sha
        else:
            merge_commit_sha = status.sha
        details["merge_commit_sha"] = merge_commit_sha
        return ActionResult(
            ok=True,
            summary=f"{label}: merged {expected_head_sha[:7]} into {pull.base.ref} ({method})",
            request=request,
            details=details,
        )

    def _merged_pull(self, repo: str, number: int) -> PullRequest | None:
        pull = self._repo(repo).get_pull(number)
        return pull if pull.merged else None

    # -- urls ---------------------------------------------------------------------------------------------------

    def issue_url(self, repo: str, number: int) -> str:
        with _calling(f"reading {repo}#{number}"):
            return self._repo(repo).get_issue(number).html_url

    def pull_url(self, repo: str, number: int) -> str:
        with _calling(f"reading {repo}#{number}"):
            return self._repo(repo).get_pull(number).html_url

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _repo(self, repo: str) -> Repository:
        _check_repo(repo)
        return self._github.get_repo(repo)

    @staticmethod
    def _look_again(lookup: Callable[[], _T]) -> _T | None:
        """Run a recovery lookup once; its own failure must not hide the error that prompted it."""
        try:
            with _calling("looking for the result of a failed write"):
                return lookup()
        except IntegrationError as error:
            log.warning("lookup after a failed GitHub write failed too: %s", error)
            return None


# --------------------------------------------------------------------------------------------------------------
# helpers


def _read_only_retry() -> GithubRetry:
    """Retry reads (and GitHub's rate-limit answers to them) but never a write.

    urllib3 retries a failed *connect* for any method (the request never left), but retries on a status or a
    read error only for allowed_methods: a POST/PATCH/PUT whose response was lost is not repeated, since GitHub
    may have applied it. The caller looks for its result instead.
    """
    return GithubRetry(
        total=3,
        backoff_factor=0.5,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,  # the last 5xx reaches PyGithub and becomes a GithubException with its status
        # A primary rate limit can reset in up to an hour; an incident channel must hear about it instead.
        max_rate_limit_wait=60,
    )


@contextmanager
def _calling(action: str) -> Iterator[None]:
    """Turn PyGithub and transport exceptions into IntegrationError ("GitHub <status>: <message>")."""
    try:
        yield
    except GithubException as error:
        message = _github_message(error)
        raise IntegrationError(
            f"GitHub {error.status}: {message} ({action})",
            status=error.status,
            details={"action": action, "response": error.data},
        ) from error
    except requests.RequestException as error:
        raise IntegrationError(
            f"GitHub unreachable: {type(error).__name__} ({action})", details={"action": action}
        ) from error


def _github_message(error: GithubException) -> str:
    data = error.data
    if isinstance(data, dict):
        message = str(data.get("message") or error.message or "error")
        reasons = []
        for item in data.get("errors") or []:
            if isinstance(item, dict):
                reasons.append(str(item.get("message") or item.get("code") or item))
            else:
                reasons.append(str(item))
        return f"{message}: {'; '.join(reasons)}" if reasons else message
    if isinstance(data, (str, bytes)) and data:
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        return text[:200]
    return error.message or "error"


def _maybe_applied(error: IntegrationError) -> bool:
    """Whether a failed write may nevertheless have taken effect: a 5xx or no response at all."""
    return error.status is None or error.status >= 500


def _check_repo(repo: str) -> None:
    if not _REPO_RE.fullmatch(repo):
        raise IntegrationError(f"{repo!r} is not a repository name (expected owner/name)")


def _check_key(key: str) -> None:
    if not _KEY_RE.fullmatch(key):
        raise ValueError(
            f"idempotency key {key!r} must be 1-200 characters of letters, digits and . _ : / # = + @ -"
        )


def _key_suffix(key: str) -> str:
    # A hash, not the key itself: keys may hold characters git forbids in branch names (":" for one).
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def _marker(key: str) -> str:
    return f"<!-- tars:{key} -->"


def _with_marker(body: str, marker: str) -> str:
    room = _BODY_LIMIT - len(marker) - 2
    if len(body) > room:
        # Cut the body rather than lose the marker, which is what makes a retried click idempotent.
        cut = "\n\n(truncated)"
        body = body[: room - len(cut)] + cut
    return f"{body}\n\n{marker}"


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", +{len(names) - limit} more" if len(names) > limit else "")


def _pull_ref(repo: str, pull: PullRequest, *, created: bool) -> PullRef:
    return PullRef(repo, pull.number, pull.html_url, pull.head.sha, created)


def _already_merged(label: str, pull: PullRequest, request: dict[str, Any]) -> ActionResult:
    sha = pull.merge_commit_sha
    return ActionResult(
        ok=True,
        summary=f"{label}: already merged" + (f" ({sha[:7]})" if sha else ""),
        request=request,
        details={"merge_commit_sha": sha, "already_merged": True},
    )


def _revert_changes(
    parent: _Flat, target: _Flat, tip: _Flat
) -> tuple[dict[str, str | None], dict[str, str], list[str]]:
    """File-level three-way revert: (changes, modes, conflicting paths).

    For every path the target commit changed: if the tip still has the target's version, restore the parent's;
    if the tip already has the parent's version, leave it; anything else is a conflict, because someone changed
    the file since. When the tip is the target, this restores exactly the parent's tree.
    """
    changes: dict[str, str | None] = {}
    modes: dict[str, str] = {}
    conflicts: list[str] = []
    for path in sorted(parent.keys() | target.keys()):
        before, after, now = parent.get(path), target.get(path), tip.get(path)
        if before == after:
            continue
        if now == after:
            changes[path] = before[2] if before else None
            # A deletion still needs a valid mode; use the entry being deleted.
            modes[path] = (before or now or ("100644", "blob", ""))[0]
        elif now != before:
            conflicts.append(path)
    # A restored file where a later commit put a directory (or the reverse) is a conflict git reports too. The
    # tip itself is consistent, so any file/directory clash in the result involves a change of the revert.
    result = set(tip)
    for path, sha in changes.items():
        if sha is None:
            result.discard(path)
        else:
            result.add(path)
    for path in result:
        parts = path.split("/")
        clashes = ["/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) in result]
        if clashes:
            conflicts.extend([path, *clashes])
    return changes, modes, sorted(set(conflicts))


def _tree_elements(plan: RevertPlan) -> list[InputGitTreeElement]:
    # Deletions first: when a directory is replaced by a file of the same name, the directory's entries must go
    # before the file is written, or deleting them would remove the new file again.
    ordered = sorted(plan.changes.items(), key=lambda item: (item[1] is not None, item[0]))
    elements = []
    for path, sha in ordered:
        mode = plan.modes.get(path, "100644")
        kind = "commit" if mode == _SUBMODULE_MODE else "blob"
        elements.append(InputGitTreeElement(path, mode, kind, sha=sha))
    return elements


def _conflict(
    repo: str, branch: str, short: str, paths: list[str], touched: dict[str, list[tuple[str, str]]]
) -> RevertConflict:
    explained = []
    for path in paths:
        commits = touched.get(path) or []
        by = ", ".join(f"{sha[:7]} ({subject})" for sha, subject in commits)
        explained.append(f"{path} (changed since by {by})" if by else path)
    return RevertConflict(
        f"cannot revert {short} cleanly on {branch} in {repo}: later commits changed the same files: "
        + "; ".join(explained),
        details={
            "paths": paths,
            "commits": {path: [sha for sha, _ in commits] for path, commits in touched.items()},
        },
    )
