"""Drives FakeGitHub with unmodified PyGithub only, proving the fake is wire-compatible for TARS's needs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import github
import pytest
from github import Auth, Github, GithubException, InputGitAuthor, InputGitTreeElement
from github.GithubException import BadCredentialsException, UnknownObjectException
from github.Repository import Repository

from sandbox.fakes.github_api import FakeGitHub

TOKEN = "test-token"
REPO = "acme/payments"


def _client(fake: FakeGitHub, *, token: str = TOKEN, **options: Any) -> Github:
    # PyGithub throttles to 0.25 s between requests and 1 s between writes by default; disabling that keeps the
    # suite fast. retry=None so an injected 5xx surfaces instead of being silently retried.
    settings: dict[str, Any] = {
        "seconds_between_requests": None,
        "seconds_between_writes": None,
        "retry": None,
    }
    settings.update(options)
    return Github(base_url=fake.base_url, auth=Auth.Token(token), timeout=5, **settings)


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as server:
        server.create_repo(REPO)
        server.commit(
            REPO,
            {"README.md": "# payments\n", "src/app/api.py": "VERSION = 1\n", "src/app/db.py": "POOL = 5\n"},
            message="initial import",
        )
        yield server


@pytest.fixture
def gh(fake: FakeGitHub) -> Iterator[Github]:
    client = _client(fake)
    yield client
    client.close()


@pytest.fixture
def repo(gh: Github) -> Repository:
    return gh.get_repo(REPO)


def _posts_to(fake: FakeGitHub, suffix: str) -> list[tuple[str, str, Any]]:
    return [r for r in fake.requests if r[0] == "POST" and r[1].endswith(suffix)]


def test_repo_and_authenticated_user(fake: FakeGitHub, gh: Github, repo: Repository) -> None:
    assert fake.base_url.startswith("http://127.0.0.1:") and fake.base_url.endswith("/api/v3")
    assert repo.full_name == REPO
    assert repo.default_branch == "main"
    assert gh.get_user().login == "tars-bot"


def test_create_issue_with_labels_and_read_back(fake: FakeGitHub, repo: Repository) -> None:
    created = repo.create_issue(
        "Roll back payments v42", body="error rate 12%", labels=["type: rollback", "P1-hotfix"]
    )

    fetched = repo.get_issue(created.number)
    assert fetched.title == "Roll back payments v42"
    assert fetched.body == "error rate 12%"
    assert [label.name for label in fetched.labels] == ["type: rollback", "P1-hotfix"]
    assert fetched.user.login == "tars-bot"
    assert fetched.html_url.endswith(f"/{REPO}/issues/{created.number}")
    # Labels were created implicitly, as GitHub does for users with push access.
    assert {label.name for label in repo.get_labels()} == {"type: rollback", "P1-hotfix"}
    assert repo.get_label("type: rollback").color == "ededed"
    assert [i.number for i in repo.get_issues(labels=["P1-hotfix"])] == [created.number]

    fetched.add_to_labels("post-mortem")
    fetched.edit(state="closed")
    reread = repo.get_issue(created.number)
    assert reread.state == "closed"
    assert [label.name for label in reread.labels] == ["type: rollback", "P1-hotfix", "post-mortem"]
    assert fake.issues(REPO)[0]["labels"][2]["name"] == "post-mortem"

    with pytest.raises(UnknownObjectException):
        repo.get_issue(999)
    with pytest.raises(GithubException) as missing_title:
        repo.create_issue("")
    assert missing_title.value.status == 422


def test_issue_comments(repo: Repository) -> None:
    issue = repo.create_issue("P2: elevated latency", labels=["P2-fix"])
    issue.create_comment("Rollback started")
    issue.create_comment("Rollback finished")

    assert [c.body for c in issue.get_comments()] == ["Rollback started", "Rollback finished"]
    assert repo.get_issue(issue.number).comments == 2
    first = issue.get_comments()[0]
    first.edit("Rollback started by @oncall")
    assert issue.get_comment(first.id).body == "Rollback started by @oncall"


def test_git_data_round_trip(fake: FakeGitHub, repo: Repository) -> None:
    bad = fake.commit(
        REPO, {"src/app/api.py": "VERSION = 2\n", "src/app/cache.py": "TTL = 0\n"}, message="bad"
    )

    ref = repo.get_git_ref("heads/main")
    assert ref.ref == "refs/heads/main"
    assert ref.object.sha == bad
    head = repo.get_git_commit(ref.object.sha)
    assert head.message == "bad"
    parent = repo.get_git_commit(head.parents[0].sha)

    tree = repo.get_git_tree(head.tree.sha, recursive=True)
    listing = {(e.path, e.type, e.mode) for e in tree.tree}
    assert ("src", "tree", "040000") in listing
    assert ("src/app", "tree", "040000") in listing
    assert ("src/app/cache.py", "blob", "100644") in listing
    sizes = {e.path: e.size for e in tree.tree if e.type == "blob"}
    assert sizes["README.md"] == len("# payments\n")

    # Build the revert by hand, the way TARS does: restore api.py, delete cache.py, add a note.
    old_api = next(
        e for e in repo.get_git_tree(parent.tree.sha, recursive=True).tree if e.path == "src/app/api.py"
    )
    assert repo.get_git_blob(old_api.sha).content.replace("\n", "") == "VkVSU0lPTiA9IDEK"
    blob = repo.create_git_blob("VERSION = 1\n", "utf-8")
    assert blob.sha == old_api.sha  # content-addressed, like git
    new_tree = repo.create_git_tree(
        [
            InputGitTreeElement("src/app/api.py", "100644", "blob", sha=blob.sha),
            InputGitTreeElement("src/app/cache.py", "100644", "blob", sha=None),
            InputGitTreeElement("docs/REVERTS.md", "100644", "blob", content="reverted bad\n"),
        ],
        base_tree=repo.get_git_tree(head.tree.sha),
    )
    revert = repo.create_git_commit(f'Revert "bad"\n\nThis reverts commit {bad}.', new_tree, [head])
    assert [p.sha for p in revert.parents] == [bad]
    new_ref = repo.create_git_ref("refs/heads/revert-bad", revert.sha)
    assert new_ref.object.sha == revert.sha

    assert fake.tree_files(REPO, "revert-bad") == {
        "README.md": "# payments\n",
        "docs/REVERTS.md": "reverted bad\n",
        "src/app/api.py": "VERSION = 1\n",
        "src/app/db.py": "POOL = 5\n",
    }
    assert repo.get_contents("docs/REVERTS.md", ref="revert-bad").decoded_content == b"reverted bad\n"

    with pytest.raises(GithubException) as duplicate:
        repo.create_git_ref("refs/heads/revert-bad", revert.sha)
    assert duplicate.value.status == 422
    assert duplicate.value.data["message"] == "Reference already exists"

    # Moving a branch backwards is not a fast-forward, so GitHub demands force=True.
    branch_ref = repo.get_git_ref("heads/revert-bad")
    with pytest.raises(GithubException) as not_ff:
        branch_ref.edit(parent.sha)
    assert not_ff.value.status == 422
    branch_ref.edit(parent.sha, force=True)
    assert fake.branch_sha(REPO, "revert-bad") == parent.sha
    branch_ref.delete()
    assert fake.branch_sha(REPO, "revert-bad") is None


def test_object_hashes_match_git() -> None:
    # Reference shas from git itself: `echo hello | git hash-object --stdin`, the empty tree, and the
    # blob/tree/commit walk-through in Pro Git's "Git Internals - Git Objects" chapter.
    with FakeGitHub() as server:
        server.create_repo("acme/hash")
        client = _client(server)
        try:
            hashed = client.get_repo("acme/hash")
            assert (
                hashed.create_git_blob("hello\n", "utf-8").sha == "ce013625030ba8dba906f756967f9e9ca394464a"
            )
            assert (
                hashed.create_git_blob("aGVsbG8K", "base64").sha == "ce013625030ba8dba906f756967f9e9ca394464a"
            )
            assert hashed.create_git_tree([]).sha == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

            v1 = hashed.create_git_tree(
                [InputGitTreeElement("test.txt", "100644", "blob", content="version 1\n")]
            )
            assert v1.sha == "d8329fc1cc938780ffdd9f94e0d364e0ea74f579"
            v2 = hashed.create_git_tree(
                [
                    InputGitTreeElement("new.txt", "100644", "blob", content="new file\n"),
                    InputGitTreeElement("test.txt", "100644", "blob", content="version 2\n"),
                ]
            )
            assert v2.sha == "0155eb4229851634a0f03eb265b69f5a2d56f341"
            v3 = hashed.create_git_tree(
                [InputGitTreeElement("bak", "040000", "tree", sha=v1.sha)], base_tree=v2
            )
            assert v3.sha == "3c4e9cd789d88d8d89c1073707c3585e41b0e614"

            scott = InputGitAuthor("Scott Chacon", "schacon@gmail.com", "2009-05-22T18:09:34-07:00")
            first = hashed.create_git_commit("first commit\n", v1, [], author=scott)
            assert first.sha == "fdf4fc3344e67ab068f836878b6c4951e3b15f3d"
            assert first.author.date == datetime(2009, 5, 23, 1, 9, 34, tzinfo=UTC)
        finally:
            client.close()


def test_commit_files_history_and_compare(fake: FakeGitHub, repo: Repository) -> None:
    sha = fake.commit(
        REPO,
        {"src/app/api.py": "VERSION = 2\n", "src/app/db.py": None, "src/app/new.py": "x = 1\n"},
        message="m",
    )

    commit = repo.get_commit(sha)
    assert commit.commit.message == "m"
    files = {f.filename: f for f in commit.files}
    assert {name: f.status for name, f in files.items()} == {
        "src/app/api.py": "modified",
        "src/app/db.py": "removed",
        "src/app/new.py": "added",
    }
    assert files["src/app/api.py"].patch == "@@ -1 +1 @@\n-VERSION = 1\n+VERSION = 2"
    assert (files["src/app/api.py"].additions, files["src/app/api.py"].deletions) == (1, 1)
    assert repo.get_commit("main").sha == sha

    history = repo.get_commits(sha="main")
    assert [c.commit.message for c in history] == ["m", "initial import"]
    assert [c.sha for c in repo.get_commits(path="src/app/db.py")] == [sha, history[1].sha]

    fix = fake.commit(REPO, {"src/app/api.py": "VERSION = 3\n"}, message="fix", branch="hotfix")
    comparison = repo.compare("main", "hotfix")
    assert (comparison.status, comparison.ahead_by, comparison.behind_by) == ("ahead", 1, 0)
    assert [c.sha for c in comparison.commits] == [fix]
    assert [f.filename for f in comparison.files] == ["src/app/api.py"]
    assert repo.compare("hotfix", "main").status == "behind"


def test_pull_request_reviews_statuses_checks_and_merge(fake: FakeGitHub, repo: Repository) -> None:
    incident = repo.create_issue("Incident 7 post-mortem")
    head = fake.commit(REPO, {"src/app/api.py": "VERSION = 0\n"}, message="revert v1", branch="revert-v1")

    pr = repo.create_pull(base="main", head="revert-v1", title="Revert v1", body="automated revert")
    assert pr.number == incident.number + 1  # issues and pulls share one sequence
    assert (pr.head.ref, pr.head.sha, pr.base.ref) == ("revert-v1", head, "main")
    assert pr.state == "open" and pr.merged is False
    assert pr.mergeable is True and pr.mergeable_state == "clean"
    assert [f.filename for f in pr.get_files()] == ["src/app/api.py"]
    assert repo.get_issue(pr.number).pull_request is not None

    fake.add_review(REPO, pr.number, user="alice")
    fake.add_review(REPO, pr.number, user="bob", state="CHANGES_REQUESTED")
    assert [(r.user.login, r.state) for r in pr.get_reviews()] == [
        ("alice", "APPROVED"),
        ("bob", "CHANGES_REQUESTED"),
    ]
    with pytest.raises(GithubException) as own_approval:
        pr.create_review(event="APPROVE")
    assert own_approval.value.status == 422

    head_commit = repo.get_commit(pr.head.sha)
    combined = head_commit.get_combined_status()
    assert (combined.state, combined.total_count) == ("pending", 0)
    fake.set_status(REPO, head, state="success", context="ci/build")
    assert head_commit.get_combined_status().state == "success"
    head_commit.create_status("failure", context="ci/deploy-check", description="smoke test failed")
    combined = head_commit.get_combined_status()
    assert combined.state == "failure"
    assert {s.context: s.state for s in combined.statuses} == {
        "ci/build": "success",
        "ci/deploy-check": "failure",
    }
    assert repo.get_pull(pr.number).mergeable_state == "unstable"

    fake.set_check_run(REPO, head, name="lint")
    fake.set_check_run(REPO, head, name="tests", status="in_progress", conclusion=None)
    runs = {run.name: (run.status, run.conclusion) for run in head_commit.get_check_runs()}
    assert runs == {"lint": ("completed", "success"), "tests": ("in_progress", None)}
    fake.set_check_run(REPO, head, name="tests", conclusion="failure")
    runs = {run.name: run.conclusion for run in head_commit.get_check_runs()}
    assert runs == {"lint": "success", "tests": "failure"}  # latest run per name, like GitHub
    assert head_commit.get_check_runs().totalCount == 2

    with pytest.raises(GithubException) as stale:
        pr.merge(sha="0" * 40)
    assert stale.value.status == 409

    status = pr.merge(merge_method="merge", sha=head)
    assert status.merged is True
    merged = repo.get_pull(pr.number)
    assert merged.merged is True and merged.state == "closed"
    assert merged.merge_commit_sha == status.sha
    assert merged.is_merged()
    merge_commit = repo.get_git_commit(status.sha)
    assert [p.sha for p in merge_commit.parents] == [merged.base.sha, head]
    assert fake.branch_sha(REPO, "main") == status.sha
    assert fake.tree_files(REPO, "main") == fake.tree_files(REPO, head)
    assert fake.pulls(REPO)[0]["merged"] is True

    with pytest.raises(GithubException) as again:
        pr.merge()
    assert again.value.status == 405
    assert again.value.data["message"] == "Pull Request is not mergeable"


def test_open_pull_is_not_merged_and_squash_merges(fake: FakeGitHub, repo: Repository) -> None:
    fake.commit(REPO, {"CHANGELOG.md": "fix\n"}, message="one", branch="fix")
    head = fake.commit(REPO, {"CHANGELOG.md": "fix\nmore\n"}, message="two", branch="fix")
    pr = repo.create_pull(base="main", head="fix", title="Fix")
    assert not pr.is_merged()
    assert pr.commits == 2

    status = pr.merge(merge_method="squash")
    squashed = repo.get_git_commit(status.sha)
    assert len(squashed.parents) == 1
    assert squashed.message.startswith("Fix (#1)")
    assert fake.tree_files(REPO, "main")["CHANGELOG.md"] == "fix\nmore\n"
    assert fake.tree_files(REPO, status.sha) == fake.tree_files(REPO, head)


def test_pull_validation(fake: FakeGitHub, repo: Repository) -> None:
    with pytest.raises(GithubException) as same_branch:
        repo.create_pull(base="main", head="main", title="noop")
    assert same_branch.value.status == 422
    assert "No commits between" in same_branch.value.data["errors"][0]["message"]

    fake.commit(REPO, {"a.txt": "a\n"}, message="a", branch="feature")
    repo.create_pull(base="main", head="feature", title="first")
    with pytest.raises(GithubException) as duplicate:
        repo.create_pull(base="main", head="acme:feature", title="second")
    assert duplicate.value.status == 422
    assert duplicate.value.data["errors"][0]["message"].startswith("A pull request already exists")

    with pytest.raises(GithubException) as missing_head:
        repo.create_pull(base="main", head="nope", title="x")
    assert missing_head.value.status == 422


def test_merge_after_base_moved(fake: FakeGitHub, repo: Repository) -> None:
    fake.commit(REPO, {"src/app/api.py": "VERSION = 9\n"}, message="conflicting", branch="conflict")
    fake.commit(REPO, {"docs/a.md": "a\n"}, message="clean", branch="clean")
    conflicting = repo.create_pull(base="main", head="conflict", title="conflict")
    clean = repo.create_pull(base="main", head="clean", title="clean")
    fake.commit(REPO, {"src/app/api.py": "VERSION = 5\n"}, message="base moved")

    assert repo.get_pull(conflicting.number).mergeable is False
    with pytest.raises(GithubException) as not_mergeable:
        conflicting.merge()
    assert not_mergeable.value.status == 405

    clean.merge()
    files = fake.tree_files(REPO, "main")
    assert files["src/app/api.py"] == "VERSION = 5\n"
    assert files["docs/a.md"] == "a\n"


def test_pagination_over_35_issues(fake: FakeGitHub) -> None:
    client = _client(fake, per_page=10)
    try:
        paged_repo = client.get_repo(REPO)
        for n in range(35):
            paged_repo.create_issue(f"issue {n}")
        before = len(fake.requests)

        issues = list(paged_repo.get_issues())
        assert [i.number for i in issues] == list(range(35, 0, -1))  # newest first, like GitHub
        pages = [r for r in fake.requests[before:] if r[0] == "GET" and r[1].endswith("/issues")]
        assert len(pages) == 4
        assert paged_repo.get_issues().totalCount == 35
        assert paged_repo.get_issues(state="closed").totalCount == 0
    finally:
        client.close()


def test_bad_token_is_rejected(fake: FakeGitHub) -> None:
    client = _client(fake, token="wrong")
    try:
        with pytest.raises(BadCredentialsException) as rejected:
            client.get_repo(REPO)
        assert rejected.value.status == 401
    finally:
        client.close()


def test_lost_response_does_not_duplicate_without_retry(fake: FakeGitHub, repo: Repository) -> None:
    fake.fail_next("POST", "/issues", after_apply=True)

    with pytest.raises(GithubException) as lost:
        repo.create_issue("Roll back payments v43", labels=["type: rollback"])
    assert lost.value.status == 502
    assert [i["title"] for i in fake.issues(REPO)] == ["Roll back payments v43"]
    assert len(_posts_to(fake, f"/repos/{REPO}/issues")) == 1


def test_failure_before_apply_changes_nothing(fake: FakeGitHub, repo: Repository) -> None:
    fake.fail_next("POST", "/issues", status=503, times=2)
    for _ in range(2):
        with pytest.raises(GithubException):
            repo.create_issue("flaky")
    assert fake.issues(REPO) == []
    repo.create_issue("third time lucky")
    assert [i["title"] for i in fake.issues(REPO)] == ["third time lucky"]


def test_pygithub_default_retry_duplicates_posts_on_lost_response(fake: FakeGitHub) -> None:
    # Documents a hazard for TARS: PyGithub's default GithubRetry retries POST on 5xx, so a response lost
    # after GitHub applied the write creates the issue twice.
    client = _client(fake, retry=github.GithubRetry())
    try:
        fake.fail_next("POST", "/issues", after_apply=True)
        client.get_repo(REPO).create_issue("Roll back payments v44")
    finally:
        client.close()
    assert [i["title"] for i in fake.issues(REPO)] == ["Roll back payments v44"] * 2
    assert len(_posts_to(fake, "/issues")) == 2
