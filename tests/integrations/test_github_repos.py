"""GitHubClient against FakeGitHub: idempotent writes, exact reverts, and the runbook's merge gate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from github import Auth, Github
from github.Repository import Repository

from integrations.github_repos import (
    NO_CHECKS,
    ChecksState,
    GitHubClient,
    RevertConflict,
    RevertPlan,
    required_approvals,
    revert_branch_name,
)
from integrations.plans import IntegrationError, NothingToDo, TargetChanged
from sandbox.fakes.github_api import FakeGitHub

TOKEN = "t"
REPO = "acme/payments"
BASE_FILES: dict[str, str | None] = {
    "README.md": "# payments\n",
    "src/app/api.py": "VERSION = 1\n",
    "src/app/db.py": "POOL = 5\n",
    "src/app/processors/legacy.py": "LEGACY = True\n",
}


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as server:
        server.create_repo(REPO)
        server.commit(REPO, BASE_FILES, message="initial import")
        yield server


def _client(fake: FakeGitHub, *, token: str = TOKEN, dry_run: bool = False) -> GitHubClient:
    return GitHubClient(
        token=token,
        base_url=fake.base_url,
        dry_run=dry_run,
        seconds_between_requests=None,
        seconds_between_writes=None,
        timeout=5,
    )


@pytest.fixture
def client(fake: FakeGitHub) -> Iterator[GitHubClient]:
    with _client(fake) as github_client:
        yield github_client


@pytest.fixture
def raw_repo(fake: FakeGitHub) -> Iterator[Repository]:
    """Plain PyGithub, for setting up and inspecting what TARS itself does not do (closing, merging by hand)."""
    github = Github(
        base_url=fake.base_url,
        auth=Auth.Token(TOKEN),
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    yield github.get_repo(REPO)
    github.close()


def _writes(fake: FakeGitHub, suffix: str = "") -> list[tuple[str, str, Any]]:
    return [r for r in fake.requests if r[0] in ("POST", "PATCH", "PUT", "DELETE") and r[1].endswith(suffix)]


def _rollback_issue(client: GitHubClient, key: str = "incident-7/rollback") -> Any:
    return client.find_or_create_issue(
        REPO,
        title="Roll back payments to 1a2b3c4",
        body="Error rate 12% since deploy of 9f8e7d6 (0.05% before).",
        labels=["type: rollback", "P1-hotfix"],
        idempotency_key=key,
    )


def _bad_commit(fake: FakeGitHub) -> str:
    """A deploy that edits, adds (nested) and deletes files: what the revert has to undo."""
    return fake.commit(
        REPO,
        {
            "src/app/api.py": "VERSION = 2\n",
            "src/app/processors/new/processor.py": "NEW = True\n",
            "src/app/processors/legacy.py": None,
        },
        message="Add new processor\n\nReplaces the legacy processor.",
    )


def _open_revert(client: GitHubClient, plan: RevertPlan, key: str = "incident-7/revert") -> Any:
    return client.open_revert_pr(
        plan, title=f"Revert {plan.target_sha[:7]}", body="Rollback for incident 7", idempotency_key=key
    )


# -- issues ----------------------------------------------------------------------------------------------------


def test_issue_is_created_with_labels_and_hidden_marker(fake: FakeGitHub, client: GitHubClient) -> None:
    ref = _rollback_issue(client)

    assert ref.created is True and ref.repo == REPO
    [issue] = fake.issues(REPO)
    assert ref.number == issue["number"] and ref.url == issue["html_url"]
    assert [label["name"] for label in issue["labels"]] == ["type: rollback", "P1-hotfix"]
    assert issue["body"].startswith("Error rate 12%")
    assert issue["body"].endswith("<!-- tars:incident-7/rollback -->")


def test_same_idempotency_key_finds_the_existing_issue(fake: FakeGitHub, client: GitHubClient) -> None:
    first = _rollback_issue(client)
    fake.commit(REPO, {"x.txt": "x\n"}, message="unrelated")  # a busy repo: other activity in between
    second = _rollback_issue(client)
    other = _rollback_issue(client, key="incident-8/rollback")

    assert (second.number, second.url, second.created) == (first.number, first.url, False)
    assert other.created is True and other.number != first.number
    assert len(_writes(fake, f"/repos/{REPO}/issues")) == 2
    assert len(fake.issues(REPO)) == 2


def test_existing_issue_is_found_even_when_closed(
    fake: FakeGitHub, client: GitHubClient, raw_repo: Repository
) -> None:
    first = _rollback_issue(client)
    raw_repo.get_issue(first.number).edit(state="closed")

    assert _rollback_issue(client).number == first.number
    assert len(fake.issues(REPO)) == 1


def test_lost_response_returns_the_issue_instead_of_duplicating(
    fake: FakeGitHub, client: GitHubClient
) -> None:
    fake.fail_next("POST", "/issues", after_apply=True)

    ref = _rollback_issue(client)

    [issue] = fake.issues(REPO)
    assert (ref.number, ref.created) == (issue["number"], True)
    assert len(_writes(fake, "/issues")) == 1  # looked the issue up, never re-POSTed
    assert _rollback_issue(client).created is False
    assert len(fake.issues(REPO)) == 1


def test_failure_before_apply_is_reported(fake: FakeGitHub, client: GitHubClient) -> None:
    fake.fail_next("POST", "/issues", status=503)

    with pytest.raises(IntegrationError) as failed:
        _rollback_issue(client)

    assert failed.value.status == 503
    assert failed.value.message.startswith("GitHub 503: Service Unavailable")
    assert fake.issues(REPO) == []
    assert len(_writes(fake)) == 1  # the POST was not retried


def test_reads_are_retried_but_writes_are_not(fake: FakeGitHub, client: GitHubClient) -> None:
    fake.fail_next("GET", "/issues", status=502)  # a hiccup while looking for an existing issue
    fake.fail_next("POST", "/issues", status=502)  # the create itself fails before GitHub applies it

    with pytest.raises(IntegrationError) as failed:
        _rollback_issue(client)

    assert failed.value.status == 502
    lookups = [r for r in fake.requests if r[0] == "GET" and r[1].endswith("/issues")]
    assert len(lookups) == 3  # the failed read retried, plus one look after the failed create
    assert len(_writes(fake)) == 1
    assert fake.issues(REPO) == []


def test_bad_token_and_missing_repo_are_integration_errors(fake: FakeGitHub) -> None:
    with _client(fake, token="wrong") as intruder, pytest.raises(IntegrationError) as rejected:
        _rollback_issue(intruder)
    assert rejected.value.status == 401
    assert rejected.value.message.startswith("GitHub 401: Bad credentials")

    with _client(fake) as client, pytest.raises(IntegrationError) as missing:
        client.checks("acme/nope", "0" * 40)
    assert missing.value.status == 404
    assert _writes(fake) == []


# -- reverts ---------------------------------------------------------------------------------------------------


def test_revert_of_the_tip_restores_the_parent_tree_exactly(
    fake: FakeGitHub, client: GitHubClient, raw_repo: Repository
) -> None:
    parent = fake.branch_sha(REPO, "main")
    bad = _bad_commit(fake)

    plan = client.plan_revert(REPO, bad)

    assert (plan.branch, plan.tip_sha, plan.target_sha, plan.parent_sha) == ("main", bad, bad, parent)
    assert plan.describe() == f"{REPO}: revert {bad[:7]} (Add new processor) on main, 3 files"
    assert plan.changes["src/app/processors/new/processor.py"] is None
    pull = _open_revert(client, plan)

    assert pull.created is True and pull.head_sha
    assert fake.tree_files(REPO, pull.head_sha) == fake.tree_files(REPO, parent)
    [listed] = fake.pulls(REPO)
    assert (listed["number"], listed["base"]["ref"]) == (pull.number, "main")
    assert listed["head"]["ref"] == revert_branch_name(plan, "incident-7/revert")
    assert listed["head"]["ref"].startswith(f"tars/revert-{bad[:7]}-")
    git_commit = raw_repo.get_git_commit(pull.head_sha)
    assert git_commit.message == f'Revert "Add new processor"\n\nThis reverts commit {bad}.'
    assert [p.sha for p in git_commit.parents] == [bad]
    assert git_commit.tree.sha == raw_repo.get_git_commit(str(parent)).tree.sha  # the very same tree object
    assert fake.branch_sha(REPO, "main") == bad  # nothing merged by opening the PR


def test_revert_of_an_older_commit_keeps_later_changes_to_other_files(
    fake: FakeGitHub, client: GitHubClient
) -> None:
    bad = _bad_commit(fake)
    fake.commit(REPO, {"README.md": "# payments v2\n", "docs/runbook.md": "steps\n"}, message="docs")
    fake.commit(REPO, {"src/app/db.py": "POOL = 10\n"}, message="Tune pool")
    tip = fake.branch_sha(REPO, "main")

    plan = client.plan_revert(REPO, bad[:7], branch="main")  # a short sha, as pasted from a deploy log

    assert (plan.target_sha, plan.tip_sha) == (bad, tip)
    pull = _open_revert(client, plan)
    # What `git revert <bad>` produces: the tip with only <bad>'s three changes undone.
    expected = fake.tree_files(REPO, tip)
    expected["src/app/api.py"] = "VERSION = 1\n"
    expected["src/app/processors/legacy.py"] = "LEGACY = True\n"
    del expected["src/app/processors/new/processor.py"]
    assert fake.tree_files(REPO, pull.head_sha) == expected
    assert expected["docs/runbook.md"] == "steps\n" and expected["src/app/db.py"] == "POOL = 10\n"


def test_conflicting_later_change_is_refused_before_anything_is_written(
    fake: FakeGitHub, client: GitHubClient
) -> None:
    bad = _bad_commit(fake)
    fake.commit(REPO, {"docs/runbook.md": "steps\n"}, message="docs")
    hotfix = fake.commit(REPO, {"src/app/api.py": "VERSION = 3\n"}, message="Hotfix api version")

    with pytest.raises(RevertConflict) as conflict:
        client.plan_revert(REPO, bad)

    message = conflict.value.message
    assert "src/app/api.py" in message and hotfix[:7] in message and "Hotfix api version" in message
    assert "docs/runbook.md" not in message
    assert conflict.value.details["paths"] == ["src/app/api.py"]
    assert conflict.value.details["commits"] == {"src/app/api.py": [hotfix]}
    assert _writes(fake) == []
    assert fake.pulls(REPO) == []


def test_file_replaced_by_a_directory_later_is_a_conflict(fake: FakeGitHub, client: GitHubClient) -> None:
    bad = fake.commit(REPO, {"src/app/db.py": None}, message="Drop db module")
    fake.commit(REPO, {"src/app/db.py/__init__.py": "POOL = 7\n"}, message="db becomes a package")

    with pytest.raises(RevertConflict) as conflict:
        client.plan_revert(REPO, bad)

    assert "src/app/db.py" in conflict.value.message


def test_already_undone_commit_is_nothing_to_do(fake: FakeGitHub, client: GitHubClient) -> None:
    bad = fake.commit(REPO, {"src/app/api.py": "VERSION = 2\n"}, message="bump")
    fake.commit(REPO, {"src/app/api.py": "VERSION = 1\n"}, message="manual revert")

    with pytest.raises(NothingToDo):
        client.plan_revert(REPO, bad)


def test_branch_moving_between_plan_and_open_is_target_changed(
    fake: FakeGitHub, client: GitHubClient
) -> None:
    bad = _bad_commit(fake)
    plan = client.plan_revert(REPO, bad)
    moved = fake.commit(REPO, {"docs/runbook.md": "steps\n"}, message="someone deployed")

    with pytest.raises(TargetChanged) as changed:
        _open_revert(client, plan)

    assert moved[:7] in changed.value.message
    assert _writes(fake) == []
    assert fake.pulls(REPO) == []


def test_opening_the_same_revert_twice_returns_the_same_pr(fake: FakeGitHub, client: GitHubClient) -> None:
    plan = client.plan_revert(REPO, _bad_commit(fake))
    first = _open_revert(client, plan)
    fake.commit(REPO, {"docs/runbook.md": "steps\n"}, message="main moves on")  # a stale plan, same key

    again = _open_revert(client, plan)

    assert (again.number, again.head_sha, again.created) == (first.number, first.head_sha, False)
    assert len(fake.pulls(REPO)) == 1
    assert len(_writes(fake, "/pulls")) == 1


def test_lost_ref_response_is_recovered_and_lost_pr_response_returns_the_pr(
    fake: FakeGitHub, client: GitHubClient
) -> None:
    plan = client.plan_revert(REPO, _bad_commit(fake))
    fake.fail_next("POST", "/git/refs", after_apply=True)
    fake.fail_next("POST", "/pulls", after_apply=True)

    pull = _open_revert(client, plan)

    [listed] = fake.pulls(REPO)
    assert (pull.number, pull.created) == (listed["number"], True)
    assert len(_writes(fake, "/git/refs")) == 1 and len(_writes(fake, "/pulls")) == 1
    assert fake.tree_files(REPO, pull.head_sha) == fake.tree_files(REPO, plan.parent_sha)


def test_existing_branch_with_the_same_revert_is_reused(fake: FakeGitHub, client: GitHubClient) -> None:
    plan = client.plan_revert(REPO, _bad_commit(fake))
    fake.fail_next("POST", "/pulls", status=503)  # first click: branch pushed, PR creation refused
    with pytest.raises(IntegrationError):
        _open_revert(client, plan)

    pull = _open_revert(client, plan)  # second click

    assert pull.created is True
    assert len(_writes(fake, "/git/refs")) == 1  # the branch from the first click was reused
    assert len(fake.pulls(REPO)) == 1


def test_existing_branch_with_other_content_is_not_overwritten(
    fake: FakeGitHub, client: GitHubClient
) -> None:
    plan = client.plan_revert(REPO, _bad_commit(fake))
    head = revert_branch_name(plan, "incident-7/revert")
    fake.commit(REPO, {"src/app/api.py": "VERSION = 99\n"}, message="human edit", branch=head)
    human = fake.branch_sha(REPO, head)

    with pytest.raises(IntegrationError) as exists:
        _open_revert(client, plan)

    assert head in exists.value.message
    assert fake.branch_sha(REPO, head) == human
    assert fake.pulls(REPO) == []


def test_merge_root_and_foreign_commits_are_refused(
    fake: FakeGitHub, client: GitHubClient, raw_repo: Repository
) -> None:
    root = fake.branch_sha(REPO, "main")
    feature = fake.commit(REPO, {"feature.txt": "f\n"}, message="feature work", branch="feature")
    fake.commit(REPO, {"docs/a.md": "a\n"}, message="main moves")  # so merging makes a true merge commit
    merge = raw_repo.create_pull(base="main", head="feature", title="Feature").merge(merge_method="merge").sha

    with pytest.raises(IntegrationError, match="reverting merge commits is not supported"):
        client.plan_revert(REPO, merge)
    with pytest.raises(IntegrationError, match="through a merge"):
        client.plan_revert(REPO, feature)
    with pytest.raises(IntegrationError, match="root commit"):
        client.plan_revert(REPO, root)
    elsewhere = fake.commit(REPO, {"h.txt": "h\n"}, message="never merged", branch="experiment")
    with pytest.raises(IntegrationError, match="not on main's history"):
        client.plan_revert(REPO, elsewhere)
    with pytest.raises(IntegrationError, match="branch 'nope' not found"):
        client.plan_revert(REPO, elsewhere, branch="nope")
    with pytest.raises(IntegrationError) as unknown:
        client.plan_revert(REPO, "deadbeef")
    assert unknown.value.status == 422
    with pytest.raises(IntegrationError, match="not a commit sha"):
        client.plan_revert(REPO, "main")


def test_plan_description_and_required_approvals() -> None:
    plan = RevertPlan(
        repo=REPO,
        branch="main",
        tip_sha="b" * 40,
        target_sha="1a2b3c4" + "0" * 33,
        parent_sha="c" * 40,
        target_message="Add new processor\n\nlong explanation",
        changes={"src/app/api.py": "d" * 40},
    )
    assert plan.describe() == f"{REPO}: revert 1a2b3c4 (Add new processor) on main, 1 file"
    assert (required_approvals("P1"), required_approvals("p2")) == (1, 2)
    with pytest.raises(ValueError):
        required_approvals("P3")


# -- CI, approvals, merge --------------------------------------------------------------------------------------


@pytest.fixture
def revert_pr(fake: FakeGitHub, client: GitHubClient) -> Any:
    return _open_revert(client, client.plan_revert(REPO, _bad_commit(fake)))


def _green(fake: FakeGitHub, sha: str) -> None:
    fake.set_status(REPO, sha, state="success", context="ci/build")
    fake.set_check_run(REPO, sha, name="tests")


def test_checks_summary(fake: FakeGitHub, client: GitHubClient) -> None:
    sha = fake.branch_sha(REPO, "main")
    assert sha is not None
    none = client.checks(REPO, sha)
    assert (none.state, none.pending, none.summary()) == ("pending", [NO_CHECKS], NO_CHECKS)

    fake.set_status(REPO, sha, state="success", context="ci/deploy-check")
    fake.set_status(REPO, sha, state="pending", context="ci/build")
    fake.set_check_run(REPO, sha, name="tests")
    fake.set_check_run(REPO, sha, name="lint", conclusion="failure")
    mixed = client.checks(REPO, sha)
    assert mixed == ChecksState(
        "failure", passing=["ci/deploy-check", "tests"], pending=["ci/build"], failing=["lint"]
    )
    assert mixed.summary() == "2 passing, 1 pending (ci/build), 1 failing (lint)"

    fake.set_check_run(REPO, sha, name="lint", status="in_progress", conclusion=None)
    fake.set_check_run(REPO, sha, name="docs", conclusion="skipped")
    assert client.checks(REPO, sha).state == "pending"
    fake.set_status(REPO, sha, state="success", context="ci/build")
    fake.set_check_run(REPO, sha, name="lint", conclusion="neutral")
    green = client.checks(REPO, sha)
    assert (green.state, green.summary()) == ("success", "5 passing")


def test_approvals_follow_each_reviewers_latest_decision(
    fake: FakeGitHub, client: GitHubClient, revert_pr: Any
) -> None:
    fake.add_review(REPO, revert_pr.number, user="alice")
    fake.add_review(REPO, revert_pr.number, user="alice", state="CHANGES_REQUESTED")
    fake.add_review(REPO, revert_pr.number, user="bob", state="CHANGES_REQUESTED")
    fake.add_review(REPO, revert_pr.number, user="bob")
    fake.add_review(REPO, revert_pr.number, user="carol")
    fake.add_review(REPO, revert_pr.number, user="carol", state="COMMENTED")

    assert client.approvals(REPO, revert_pr.number) == ["bob", "carol"]
    assert client.approvals(REPO, revert_pr.number, head_sha=revert_pr.head_sha) == ["bob", "carol"]
    assert client.approvals(REPO, revert_pr.number, head_sha="0" * 40) == []


def test_merge_refused_while_no_ci_has_reported(
    fake: FakeGitHub, client: GitHubClient, revert_pr: Any
) -> None:
    fake.add_review(REPO, revert_pr.number, user="alice")

    with pytest.raises(IntegrationError) as refused:
        client.merge_pull(REPO, revert_pr.number, expected_head_sha=revert_pr.head_sha, required_approvals=1)

    assert NO_CHECKS in refused.value.message
    assert _writes(fake, "/merge") == []


def test_merge_refused_on_failing_check_naming_it(
    fake: FakeGitHub, client: GitHubClient, revert_pr: Any
) -> None:
    _green(fake, revert_pr.head_sha)
    fake.set_check_run(REPO, revert_pr.head_sha, name="lint", conclusion="timed_out")
    fake.add_review(REPO, revert_pr.number, user="alice")

    with pytest.raises(IntegrationError) as refused:
        client.merge_pull(REPO, revert_pr.number, expected_head_sha=revert_pr.head_sha, required_approvals=1)

    assert "1 failing (lint)" in refused.value.message
    assert refused.value.details["failing"] == ["lint"]
    assert _writes(fake, "/merge") == []


def test_merge_refused_below_required_approvals(
    fake: FakeGitHub, client: GitHubClient, revert_pr: Any
) -> None:
    _green(fake, revert_pr.head_sha)
    fake.add_review(REPO, revert_pr.number, user="alice")

    with pytest.raises(IntegrationError) as refused:
        client.merge_pull(
            REPO,
            revert_pr.number,
            expected_head_sha=revert_pr.head_sha,
            required_approvals=required_approvals("P2"),
        )

    assert "needs 2 approval(s)" in refused.value.message and "alice" in refused.value.message
    assert _writes(fake, "/merge") == []


def test_merge_refused_when_head_moved(fake: FakeGitHub, client: GitHubClient, revert_pr: Any) -> None:
    head = fake.pulls(REPO)[0]["head"]["ref"]
    pushed = fake.commit(REPO, {"src/app/api.py": "VERSION = 0\n"}, message="sneaky", branch=head)
    _green(fake, pushed)
    fake.add_review(REPO, revert_pr.number, user="alice")

    with pytest.raises(TargetChanged):
        client.merge_pull(REPO, revert_pr.number, expected_head_sha=revert_pr.head_sha, required_approvals=1)
    assert _writes(fake, "/merge") == []


def test_merge_when_green_and_approved_happens_exactly_once(
    fake: FakeGitHub, client: GitHubClient, revert_pr: Any
) -> None:
    _green(fake, revert_pr.head_sha)
    fake.add_review(REPO, revert_pr.number, user="alice")
    parent_files = fake.tree_files(REPO, revert_pr.head_sha)

    result = client.merge_pull(
        REPO,
        revert_pr.number,
        expected_head_sha=revert_pr.head_sha,
        required_approvals=required_approvals("P1"),
    )
    again = client.merge_pull(
        REPO, revert_pr.number, expected_head_sha=revert_pr.head_sha, required_approvals=1
    )

    assert result.ok and not result.dry_run
    assert result.summary.startswith(f"{REPO}#{revert_pr.number}: merged")
    assert result.request["body"] == {"merge_method": "merge", "sha": revert_pr.head_sha}
    assert result.details["merge_commit_sha"] == fake.branch_sha(REPO, "main")
    assert fake.tree_files(REPO, "main") == parent_files
    assert again.ok and "already merged" in again.summary
    assert len(_writes(fake, "/merge")) == 1


def test_lost_merge_response_reports_the_merge(
    fake: FakeGitHub, client: GitHubClient, revert_pr: Any
) -> None:
    _green(fake, revert_pr.head_sha)
    fake.add_review(REPO, revert_pr.number, user="alice")
    fake.fail_next("PUT", "/merge", after_apply=True)

    result = client.merge_pull(
        REPO, revert_pr.number, expected_head_sha=revert_pr.head_sha, required_approvals=1
    )

    assert result.ok and result.details["merge_commit_sha"] == fake.branch_sha(REPO, "main")
    assert len(_writes(fake, "/merge")) == 1


# -- dry run ---------------------------------------------------------------------------------------------------


def test_dry_run_reads_but_writes_nothing(fake: FakeGitHub, client: GitHubClient) -> None:
    bad = _bad_commit(fake)
    with _client(fake, dry_run=True) as rehearsal:
        issue = _rollback_issue(rehearsal)
        plan = rehearsal.plan_revert(REPO, bad)
        pull = _open_revert(rehearsal, plan)
        assert _writes(fake) == []
        assert (issue.number, issue.url, issue.created) == (0, "(dry run)", False)
        assert (pull.number, pull.url, pull.head_sha, pull.created) == (0, "(dry run)", "", False)

        real = _open_revert(client, plan)
        _green(fake, real.head_sha)
        fake.add_review(REPO, real.number, user="alice")
        writes_so_far = len(_writes(fake))
        # Existing objects are still found in a dry run, and the merge gate is evaluated for real.
        assert _open_revert(rehearsal, plan).number == real.number
        result = rehearsal.merge_pull(
            REPO, real.number, expected_head_sha=real.head_sha, required_approvals=1
        )
        assert (
            result.ok and result.dry_run and result.summary.startswith(f"{REPO}#{real.number}: would merge")
        )
        assert len(_writes(fake)) == writes_so_far
    assert fake.issues(REPO) == []
    assert fake.branch_sha(REPO, "main") == bad
