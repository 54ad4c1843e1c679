"""In-process fake of the GitHub REST API (GitHub Enterprise flavour) for PyGithub-driven tests.

TARS talks to GitHub only through PyGithub, so this fake speaks the wire protocol closely enough that an
unmodified ``github.Github(base_url=fake.base_url, auth=github.Auth.Token(...))`` works against it:

* every object carries a ``url`` pointing back at this server, because PyGithub follows it to lazily
  complete partially-loaded objects;
* lists honour ``per_page``/``page`` and send a ``Link`` header, because PyGithub's ``PaginatedList`` only
  fetches another page when it sees ``rel="next"``;
* errors use GitHub's status codes and bodies, so PyGithub raises the same exception classes
  (``UnknownObjectException``, ``BadCredentialsException``, ...) it raises in production.

Git objects are hashed exactly the way git hashes them, so shas are content-addressed and stable: writing the
same tree twice yields the same sha, as with the real Git Data API.

Usage::

    with FakeGitHub(token="t") as fake:
        fake.create_repo("acme/payments")
        sha = fake.commit("acme/payments", {"app.py": "print(1)\\n"}, message="init")
        gh = github.Github(base_url=fake.base_url, auth=github.Auth.Token("t"))
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import heapq
import itertools
import json
import re
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

_API_PREFIX = "/api/v3"
_DOCS_URL = "https://docs.github.com/enterprise-server@3.14/rest"
# The identity behind any accepted token; TARS authenticates as a bot account.
_BOT_LOGIN = "tars-bot"
_BLOB_MODES = frozenset({"100644", "100755", "120000"})
_STATUS_STATES = frozenset({"success", "failure", "pending", "error"})
_CHECK_STATUSES = frozenset({"queued", "in_progress", "completed"})
_FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure"})
_REVIEW_EVENTS = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
_REVIEW_STATES = frozenset({"APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"})
_MERGE_METHODS = frozenset({"merge", "squash", "rebase"})
# Fixture commits get deterministic dates (one minute apart) so their shas are identical on every run.
_FIXTURE_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_LOGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*(\[bot\])?")


# --------------------------------------------------------------------------------------------------------------
# small helpers


def _git_hash(kind: str, payload: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(payload)}\0".encode() + payload, usedforsecurity=False).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return _iso(datetime.now(UTC))


def _parse_iso(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _b64(data: bytes) -> str:
    # GitHub wraps base64 payloads at 60 columns; clients must cope with the embedded newlines.
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def _node_id(kind: str, ident: int | str) -> str:
    return base64.b64encode(f"{kind}:{ident}".encode()).decode().rstrip("=")


def _patch(old: bytes | None, new: bytes | None) -> tuple[str | None, int, int]:
    try:
        old_text = (old or b"").decode()
        new_text = (new or b"").decode()
    except UnicodeDecodeError:
        return None, 0, 0  # GitHub omits the patch of binary files
    # GitHub's `patch` field is a unified diff without the ---/+++ file headers.
    lines = list(difflib.unified_diff(old_text.splitlines(), new_text.splitlines(), lineterm="", n=3))[2:]
    additions = sum(1 for line in lines if line.startswith("+"))
    deletions = sum(1 for line in lines if line.startswith("-"))
    return "\n".join(lines), additions, deletions


def _paths_consistent(paths: Iterable[str]) -> bool:
    """False when some path is also used as a directory by another path (git cannot represent that)."""
    present = set(paths)
    for path in present:
        parts = path.split("/")
        if any("/".join(parts[:i]) in present for i in range(1, len(parts))):
            return False
    return True


def _valid_path(path: Any) -> bool:
    if not isinstance(path, str) or not path:
        return False
    return all(part not in ("", ".", "..", ".git") for part in path.split("/"))


class _ApiError(Exception):
    """Raised by handlers; rendered as GitHub's JSON error body with the given status."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload: dict[str, Any] = {"message": message, **extra, "documentation_url": _DOCS_URL}


def _not_found() -> _ApiError:
    return _ApiError(404, "Not Found")


def _invalid(*errors: dict[str, Any]) -> _ApiError:
    return _ApiError(422, "Validation Failed", errors=list(errors))


def _unprocessable(message: str) -> _ApiError:
    return _ApiError(422, message)


# --------------------------------------------------------------------------------------------------------------
# state


class _TreeEntry(NamedTuple):
    name: str
    mode: str  # as the API shows it: "100644", "040000", ...
    type: str  # blob | tree | commit
    sha: str


# A tree flattened to "full path -> (mode, type, sha)" of its non-tree entries. Tree edits are done on this
# form and re-hashed, which makes nested paths, deletions and grafts uniform.
_Leaf = tuple[str, str, str]
_Flat = dict[str, _Leaf]


@dataclass
class _GitCommit:
    sha: str
    tree: str
    parents: list[str]
    message: str
    author: dict[str, str]  # name, email, date (ISO-8601 keeping the original offset, which git hashes)
    committer: dict[str, str]
    seq: int  # creation order; tie-breaker when ordering history


@dataclass
class _Issue:
    number: int
    id: int
    title: str
    body: str | None
    user: str
    created_at: str
    updated_at: str
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    state: str = "open"
    state_reason: str | None = None
    closed_at: str | None = None
    closed_by: str | None = None
    comment_ids: list[int] = field(default_factory=list)
    is_pull: bool = False


@dataclass
class _Pull:
    number: int
    id: int
    head_ref: str
    base_ref: str
    head_sha: str
    base_sha: str
    draft: bool = False
    maintainer_can_modify: bool = False
    merged: bool = False
    merged_at: str | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None


class _Repo:
    def __init__(self, owner: str, name: str, repo_id: int, default_branch: str, created_at: str) -> None:
        self.owner = owner
        self.name = name
        self.id = repo_id
        self.default_branch = default_branch
        self.created_at = created_at
        self.pushed_at = created_at
        self.blobs: dict[str, bytes] = {}
        self.trees: dict[str, list[_TreeEntry]] = {}
        self.commits: dict[str, _GitCommit] = {}
        self.refs: dict[str, str] = {}  # "refs/heads/main" -> commit sha
        self.issues: dict[int, _Issue] = {}  # pulls have an issue record too, as on GitHub
        self.pulls: dict[int, _Pull] = {}
        self.labels: dict[
            str, dict[str, Any]
        ] = {}  # lower-cased name -> label; GitHub matches labels caselessly
        self.comments: dict[int, dict[str, Any]] = {}
        self.statuses: dict[str, list[dict[str, Any]]] = {}  # commit sha -> statuses, oldest first
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.next_number = 1  # issues and pulls share one sequence
        self._seq = itertools.count()

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    # -- object store -------------------------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        sha = _git_hash("blob", data)
        self.blobs[sha] = data
        return sha

    def put_tree(self, entries: list[_TreeEntry]) -> str:
        # git sorts tree entries bytewise, comparing directory names as if they ended in "/".
        ordered = sorted(entries, key=lambda e: e.name.encode() + (b"/" if e.type == "tree" else b""))
        payload = b"".join(
            f"{e.mode.lstrip('0')} {e.name}".encode() + b"\0" + bytes.fromhex(e.sha) for e in ordered
        )
        sha = _git_hash("tree", payload)
        self.trees[sha] = ordered
        return sha

    def write_flat(self, flat: _Flat) -> str:
        nested: dict[str, Any] = {}
        for path, leaf in flat.items():
            *dirs, base = path.split("/")
            node = nested
            for part in dirs:
                node = node.setdefault(part, {})
            node[base] = leaf
        return self._write_nested(nested)

    def _write_nested(self, node: dict[str, Any]) -> str:
        entries = []
        for name, child in node.items():
            if isinstance(child, dict):
                entries.append(_TreeEntry(name, "040000", "tree", self._write_nested(child)))
            else:
                mode, kind, sha = child
                entries.append(_TreeEntry(name, mode, kind, sha))
        return self.put_tree(entries)

    def flatten(self, tree_sha: str | None, prefix: str = "") -> _Flat:
        out: _Flat = {}
        if tree_sha is None:
            return out
        for entry in self.trees[tree_sha]:
            path = prefix + entry.name
            if entry.type == "tree":
                out.update(self.flatten(entry.sha, path + "/"))
            else:
                out[path] = (entry.mode, entry.type, entry.sha)
        return out

    def walk(self, tree_sha: str, prefix: str = "") -> list[tuple[str, _TreeEntry]]:
        """Pre-order listing including sub-tree entries, the order ``git ls-tree -r -t`` and the API use."""
        out: list[tuple[str, _TreeEntry]] = []
        for entry in self.trees[tree_sha]:
            path = prefix + entry.name
            out.append((path, entry))
            if entry.type == "tree":
                out.extend(self.walk(entry.sha, path + "/"))
        return out

    def put_commit(
        self, tree: str, parents: list[str], message: str, author: dict[str, str], committer: dict[str, str]
    ) -> str:
        def signature(who: dict[str, str]) -> str:
            # git records the author's own UTC offset, and it is part of the hashed bytes.
            moment = _parse_iso(who["date"])
            minutes = int((moment.utcoffset() or timedelta()).total_seconds() // 60)
            offset = f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
            return f"{who['name']} <{who['email']}> {int(moment.timestamp())} {offset}"

        header = [f"tree {tree}", *(f"parent {p}" for p in parents)]
        header += [f"author {signature(author)}", f"committer {signature(committer)}"]
        sha = _git_hash("commit", ("\n".join(header) + "\n\n" + message).encode())
        if sha not in self.commits:
            self.commits[sha] = _GitCommit(
                sha, tree, list(parents), message, dict(author), dict(committer), next(self._seq)
            )
        return sha

    # -- ref / history queries ----------------------------------------------------------------------------------

    def branch_tip(self, branch: str) -> str | None:
        return self.refs.get(f"refs/heads/{branch}")

    def resolve_commit(self, ref: str) -> str | None:
        if ref in self.commits:
            return ref
        for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/{ref}", ref):
            if candidate in self.refs:
                return self.refs[candidate]
        if re.fullmatch(r"[0-9a-f]{7,39}", ref):
            matches = [sha for sha in self.commits if sha.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
        return None

    def resolve_tree(self, ref: str) -> str | None:
        if ref in self.trees:
            return ref
        commit = self.resolve_commit(ref)
        return self.commits[commit].tree if commit else None

    def ancestors(self, sha: str) -> set[str]:
        seen = {sha}
        todo = deque([sha])
        while todo:
            for parent in self.commits[todo.popleft()].parents:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    def merge_base(self, a: str, b: str) -> str | None:
        of_a = self.ancestors(a)
        seen = {b}
        todo = deque([b])
        while todo:  # breadth-first from b, so the nearest common ancestor wins
            sha = todo.popleft()
            if sha in of_a:
                return sha
            for parent in self.commits[sha].parents:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return None

    def history(self, head: str) -> list[str]:
        """Commits reachable from head, newest first, never listing a parent before its child."""
        reachable = self.ancestors(head)
        pending_children = dict.fromkeys(reachable, 0)
        for sha in reachable:
            for parent in self.commits[sha].parents:
                pending_children[parent] += 1

        def key(sha: str) -> tuple[float, int, str]:
            commit = self.commits[sha]
            return (-_parse_iso(commit.committer["date"]).timestamp(), -commit.seq, sha)

        heap = [key(head)]
        order: list[str] = []
        while heap:
            sha = heapq.heappop(heap)[2]
            order.append(sha)
            for parent in self.commits[sha].parents:
                pending_children[parent] -= 1
                if pending_children[parent] == 0:
                    heapq.heappush(heap, key(parent))
        return order

    def commits_between(self, base: str, head: str) -> list[str]:
        """Commits in head but not in base, oldest first (the order compare and PR commit lists use)."""
        excluded = self.ancestors(base)
        return [sha for sha in reversed(self.history(head)) if sha not in excluded]

    def diff(
        self, old_tree: str | None, new_tree: str | None
    ) -> list[tuple[str, str, _Leaf | None, _Leaf | None]]:
        old, new = self.flatten(old_tree), self.flatten(new_tree)
        changes = []
        for path in sorted(old.keys() | new.keys()):
            before, after = old.get(path), new.get(path)
            if before == after:
                continue
            status = "added" if before is None else "removed" if after is None else "modified"
            changes.append((path, status, before, after))
        return changes

    def three_way(self, base: str, head: str) -> _Flat | None:
        """File-level merge of head into base; None on conflict (both sides changed a path differently)."""
        merge_base = self.merge_base(base, head)
        head_flat = self.flatten(self.commits[head].tree)
        if merge_base == base:
            return head_flat
        base_flat = self.flatten(self.commits[base].tree)
        origin = self.flatten(self.commits[merge_base].tree) if merge_base else {}
        ours = {p for p in origin.keys() | base_flat.keys() if origin.get(p) != base_flat.get(p)}
        theirs = {p for p in origin.keys() | head_flat.keys() if origin.get(p) != head_flat.get(p)}
        if any(base_flat.get(p) != head_flat.get(p) for p in ours & theirs):
            return None
        merged = dict(base_flat)
        for path in theirs:
            leaf = head_flat.get(path)
            if leaf is None:
                merged.pop(path, None)
            else:
                merged[path] = leaf
        return merged if _paths_consistent(merged) else None


def _set_path(flat: _Flat, path: str, leaf: _Leaf | None) -> None:
    """Set (or with None delete) one path, dropping whatever the new entry shadows or is shadowed by."""
    prefix = path + "/"
    for existing in [p for p in flat if p.startswith(prefix)]:
        del flat[existing]
    parts = path.split("/")
    for i in range(1, len(parts)):
        flat.pop("/".join(parts[:i]), None)
    if leaf is None:
        flat.pop(path, None)
    else:
        flat[path] = leaf


# --------------------------------------------------------------------------------------------------------------
# HTTP plumbing


@dataclass
class _Request:
    method: str
    raw_path: str  # as sent (still percent-encoded); used to build Link headers
    query: dict[str, str]
    body: Any


@dataclass
class _Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Failure:
    method: str
    path_suffix: str
    status: int
    remaining: int
    after_apply: bool


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., _Response]
    repo_scoped: bool


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # keep-alive connections left open by clients must not block stop()

    def __init__(self, address: tuple[str, int], fake: FakeGitHub) -> None:
        self.fake = fake
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so requests' connection pooling (keep-alive) is exercised as against real GitHub.
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; with Nagle on, delayed ACKs stall each keep-alive request ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        status, headers, payload = self.server.fake._handle(
            self.command, self.path, self.headers.get("Authorization"), raw_body
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean; FakeGitHub.requests is the log


# --------------------------------------------------------------------------------------------------------------
# the fake


class FakeGitHub:
    """A GitHub REST server on loopback, with fixture helpers for seeding state and asserting on it."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        self._host = host
        self._port = port
        self._token = token
        # One lock around all state: handlers run on server threads while tests seed/inspect from the main one.
        self._lock = threading.RLock()
        self._repos: dict[str, _Repo] = {}
        self._requests: list[tuple[str, str, Any]] = []
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)
        self._user_ids: dict[str, int] = {}
        self._fixture_clock = _FIXTURE_EPOCH
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._build_routes()

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        if self._server is not None:
            return self
        self._server = _Server((self._host, self._port), self)
        self._port = self._server.server_address[1]
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-github", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def _origin(self) -> str:
        if self._server is None and self._port == 0:
            raise RuntimeError("FakeGitHub has no port yet; call start() first")
        return f"http://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        return self._origin + _API_PREFIX

    def _api(self, path: str) -> str:
        return self.base_url + path

    def _html(self, path: str) -> str:
        return self._origin + path

    # -- fixture API --------------------------------------------------------------------------------------------

    def create_repo(self, full_name: str, *, default_branch: str = "main") -> None:
        """An empty repository (no commits); the first ``commit()`` creates its default branch."""
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"expected owner/name, got {full_name!r}")
        with self._lock:
            if full_name.lower() in self._repos:
                raise ValueError(f"repository {full_name} already exists")
            self._repos[full_name.lower()] = _Repo(owner, name, next(self._ids), default_branch, _now())

    def commit(
        self,
        full_name: str,
        files: dict[str, str | None],
        *,
        message: str,
        branch: str = "main",
        author: str = "dev",
        date: str | None = None,
    ) -> str:
        """Commit on top of ``branch`` (created from the default branch if missing); None deletes a path."""
        with self._lock:
            repo = self._repo(full_name)
            tip = repo.branch_tip(branch)
            if tip is None and branch != repo.default_branch:
                tip = repo.branch_tip(repo.default_branch)
            flat = repo.flatten(repo.commits[tip].tree) if tip else {}
            for path, content in files.items():
                if not _valid_path(path):
                    raise ValueError(f"invalid path {path!r}")
                leaf = None if content is None else ("100644", "blob", repo.put_blob(content.encode()))
                _set_path(flat, path, leaf)
            if date is None:
                self._fixture_clock += timedelta(minutes=1)
                date = _iso(self._fixture_clock)
            who = {"name": author, "email": f"{author}@example.com", "date": _parse_iso(date).isoformat()}
            sha = repo.put_commit(repo.write_flat(flat), [tip] if tip else [], message, who, who)
            repo.refs[f"refs/heads/{branch}"] = sha
            repo.pushed_at = _now()
            return sha

    def branch_sha(self, full_name: str, branch: str) -> str | None:
        """Current tip of a branch (None if it does not exist)."""
        with self._lock:
            return self._repo(full_name).branch_tip(branch)

    def tree_files(self, full_name: str, ref_or_sha: str) -> dict[str, str]:
        """path -> content of every file in a commit's tree (branch, ref, commit sha or tree sha)."""
        with self._lock:
            repo = self._repo(full_name)
            tree = repo.resolve_tree(ref_or_sha)
            if tree is None:
                raise KeyError(f"{ref_or_sha!r} does not name a commit or tree in {full_name}")
            return {
                path: repo.blobs[sha].decode(errors="replace")
                for path, (_mode, kind, sha) in sorted(repo.flatten(tree).items())
                if kind == "blob"
            }

    def set_status(
        self, full_name: str, sha: str, *, state: str, context: str, description: str = ""
    ) -> None:
        with self._lock:
            repo = self._repo(full_name)
            commit = self._commit_or_raise(repo, sha)
            if state not in _STATUS_STATES:
                raise ValueError(f"state must be one of {sorted(_STATUS_STATES)}")
            self._add_status(repo, commit, state, context, description, None, creator="ci-bot")

    def set_check_run(
        self,
        full_name: str,
        sha: str,
        *,
        name: str,
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> None:
        """Adds a run; listing shows only the latest run per name (GitHub's default ``filter=latest``)."""
        with self._lock:
            repo = self._repo(full_name)
            commit = self._commit_or_raise(repo, sha)
            if status not in _CHECK_STATUSES:
                raise ValueError(f"status must be one of {sorted(_CHECK_STATUSES)}")
            run_id = next(self._ids)
            now = _now()
            repo.check_runs[run_id] = {
                "id": run_id,
                "name": name,
                "head_sha": commit,
                "status": status,
                "conclusion": conclusion if status == "completed" else None,
                "started_at": now,
                "completed_at": now if status == "completed" else None,
            }

    def add_review(self, full_name: str, number: int, *, user: str, state: str = "APPROVED") -> None:
        with self._lock:
            repo = self._repo(full_name)
            if number not in repo.pulls:
                raise KeyError(f"no pull request #{number} in {full_name}")
            if state not in _REVIEW_STATES:
                raise ValueError(f"state must be one of {sorted(_REVIEW_STATES)}")
            self._add_review(repo, repo.pulls[number], user, state, "")

    def issues(self, full_name: str) -> list[dict[str, Any]]:
        """Issues (not pull requests) as the API would render them, by number."""
        with self._lock:
            repo = self._repo(full_name)
            return [self._issue_json(repo, i) for _, i in sorted(repo.issues.items()) if not i.is_pull]

    def pulls(self, full_name: str) -> list[dict[str, Any]]:
        with self._lock:
            repo = self._repo(full_name)
            return [self._pull_json(repo, p) for _, p in sorted(repo.pulls.items())]

    @property
    def requests(self) -> list[tuple[str, str, Any]]:
        """(method, decoded path incl. /api/v3 without query, parsed JSON body or None) of every request."""
        with self._lock:
            return list(self._requests)

    def fail_next(
        self, method: str, path_suffix: str, *, status: int = 502, times: int = 1, after_apply: bool = False
    ) -> None:
        """Fail the next ``times`` requests whose path ends with ``path_suffix``.

        With ``after_apply`` the request takes effect and only the response is replaced by the error — a lost
        response, the case where blindly retrying a POST creates a duplicate.
        """
        with self._lock:
            self._failures.append(_Failure(method.upper(), path_suffix, status, times, after_apply))

    # -- request handling ---------------------------------------------------------------------------------------

    def _handle(
        self, method: str, target: str, authorization: str | None, raw_body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(target)
        path = unquote(split.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        parse_error = False
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body, parse_error = raw_body.decode(errors="replace"), True
        with self._lock:
            self._requests.append((method, path, body))
            failure = self._take_failure(method, path)
            if failure is not None and not failure.after_apply:
                return self._failure_response(failure)
            if not self._authorized(authorization):
                response = _Response(401, {"message": "Bad credentials", "documentation_url": _DOCS_URL})
            elif parse_error:
                response = _Response(
                    400, {"message": "Problems parsing JSON", "documentation_url": _DOCS_URL}
                )
            else:
                request = _Request(method, split.path, query, body)
                try:
                    response = self._dispatch(request)
                except _ApiError as error:
                    response = _Response(error.status, error.payload)
                except Exception as error:
                    # A bug in the fake must reach the test as a readable failure, not a dropped connection.
                    message = f"FakeGitHub internal error: {error!r}"
                    response = _Response(500, {"message": message, "traceback": traceback.format_exc()})
            if failure is not None:
                return self._failure_response(failure)
            return self._encode(response)

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.method == method and path.endswith(failure.path_suffix):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _failure_response(self, failure: _Failure) -> tuple[int, dict[str, str], bytes]:
        try:
            reason = HTTPStatus(failure.status).phrase
        except ValueError:
            reason = "Injected failure"
        return self._encode(_Response(failure.status, {"message": reason, "documentation_url": _DOCS_URL}))

    def _authorized(self, authorization: str | None) -> bool:
        if self._token is None:
            return True
        scheme, _, credential = (authorization or "").partition(" ")
        return scheme.lower() in ("token", "bearer") and credential.strip() == self._token

    def _encode(self, response: _Response) -> tuple[int, dict[str, str], bytes]:
        headers = {
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": str(int(datetime.now(UTC).timestamp()) + 3600),
            "X-RateLimit-Resource": "core",
            **response.headers,
        }
        if response.status == 204 or response.body is None:
            return response.status, headers, b""
        headers["Content-Type"] = "application/json; charset=utf-8"
        return response.status, headers, json.dumps(response.body).encode()

    def _dispatch(self, req: _Request) -> _Response:
        if not req.raw_path.startswith(_API_PREFIX + "/"):
            raise _not_found()
        relative = req.raw_path[len(_API_PREFIX) :].rstrip("/") or "/"
        for route in self._routes:
            if route.method != req.method:
                continue
            match = route.pattern.fullmatch(relative)
            if match is None:
                continue
            # Match on the encoded path so "%2F" inside a segment (PyGithub quotes refs) stays in that segment.
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            if route.repo_scoped:
                repo = self._repo_or_404(params.pop("owner"), params.pop("repo"))
                return route.handler(req, repo, **params)
            return route.handler(req, **params)
        raise _not_found()

    def _build_routes(self) -> list[_Route]:
        repo_routes: list[tuple[str, str, Callable[..., _Response]]] = [
            ("GET", "", self._get_repo),
            ("GET", "/branches", self._list_branches),
            ("GET", "/branches/(?P<branch>.+)", self._get_branch),
            # issues and labels
            ("GET", "/issues", self._list_issues),
            ("POST", "/issues", self._create_issue),
            ("GET", r"/issues/comments/(?P<comment_id>\d+)", self._get_comment),
            ("PATCH", r"/issues/comments/(?P<comment_id>\d+)", self._edit_comment),
            ("DELETE", r"/issues/comments/(?P<comment_id>\d+)", self._delete_comment),
            ("GET", r"/issues/(?P<number>\d+)", self._get_issue),
            ("PATCH", r"/issues/(?P<number>\d+)", self._edit_issue),
            ("GET", r"/issues/(?P<number>\d+)/comments", self._list_comments),
            ("POST", r"/issues/(?P<number>\d+)/comments", self._create_comment),
            ("GET", r"/issues/(?P<number>\d+)/labels", self._list_issue_labels),
            ("POST", r"/issues/(?P<number>\d+)/labels", self._add_issue_labels),
            ("PUT", r"/issues/(?P<number>\d+)/labels", self._set_issue_labels),
            ("DELETE", r"/issues/(?P<number>\d+)/labels", self._clear_issue_labels),
            ("DELETE", r"/issues/(?P<number>\d+)/labels/(?P<name>[^/]+)", self._remove_issue_label),
            ("GET", "/labels", self._list_labels),
            ("POST", "/labels", self._create_label),
            ("GET", "/labels/(?P<name>[^/]+)", self._get_label),
            # git data
            ("GET", "/git/refs", self._list_refs),
            ("GET", "/git/ref/(?P<ref>.+)", self._get_ref),
            ("GET", "/git/refs/(?P<ref>.+)", self._get_refs_prefix),
            ("GET", "/git/matching-refs/(?P<ref>.*)", self._matching_refs),
            ("POST", "/git/refs", self._create_ref),
            # GitHub documents PATCH/DELETE under git/refs/; git/ref/ is accepted too because a GitRef that
            # PyGithub has not completed yet still carries the git/ref/ url it was fetched from.
            ("PATCH", "/git/refs?/(?P<ref>.+)", self._update_ref),
            ("DELETE", "/git/refs?/(?P<ref>.+)", self._delete_ref),
            ("GET", "/git/commits/(?P<sha>[^/]+)", self._get_git_commit),
            ("POST", "/git/commits", self._create_git_commit),
            ("GET", "/git/trees/(?P<sha>[^/]+)", self._get_tree),
            ("POST", "/git/trees", self._create_tree),
            ("GET", "/git/blobs/(?P<sha>[^/]+)", self._get_blob),
            ("POST", "/git/blobs", self._create_blob),
            # commits, contents, statuses, checks
            ("GET", "/commits", self._list_commits),
            ("GET", "/commits/(?P<ref>[^/]+)", self._get_commit),
            ("GET", "/commits/(?P<ref>[^/]+)/status", self._combined_status),
            ("GET", "/commits/(?P<ref>[^/]+)/statuses", self._list_statuses),
            ("GET", "/statuses/(?P<ref>[^/]+)", self._list_statuses),
            ("POST", "/statuses/(?P<sha>[^/]+)", self._create_status),
            ("GET", "/commits/(?P<ref>[^/]+)/check-runs", self._list_check_runs),
            ("GET", r"/check-runs/(?P<run_id>\d+)", self._get_check_run),
            ("GET", "/compare/(?P<spec>.+)", self._compare),
            ("GET", "/contents", self._get_contents),
            ("GET", "/contents/(?P<path>.*)", self._get_contents),
            # pulls
            ("GET", "/pulls", self._list_pulls),
            ("POST", "/pulls", self._create_pull),
            ("GET", r"/pulls/(?P<number>\d+)", self._get_pull),
            ("PATCH", r"/pulls/(?P<number>\d+)", self._edit_pull),
            ("GET", r"/pulls/(?P<number>\d+)/commits", self._list_pull_commits),
            ("GET", r"/pulls/(?P<number>\d+)/files", self._list_pull_files),
            ("GET", r"/pulls/(?P<number>\d+)/reviews", self._list_reviews),
            ("POST", r"/pulls/(?P<number>\d+)/reviews", self._create_review),
            ("GET", r"/pulls/(?P<number>\d+)/reviews/(?P<review_id>\d+)", self._get_review),
            ("GET", r"/pulls/(?P<number>\d+)/merge", self._is_merged),
            ("PUT", r"/pulls/(?P<number>\d+)/merge", self._merge_pull),
        ]
        routes = [
            _Route("GET", re.compile("/user"), self._get_authenticated_user, False),
            _Route("GET", re.compile("/users/(?P<login>[^/]+)"), self._get_user, False),
            _Route("GET", re.compile(r"/repositories/(?P<repo_id>\d+)"), self._get_repo_by_id, False),
        ]
        prefix = "/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        routes += [_Route(m, re.compile(prefix + p), h, True) for m, p, h in repo_routes]
        return routes

    # -- shared lookups -----------------------------------------------------------------------------------------

    def _repo(self, full_name: str) -> _Repo:
        repo = self._repos.get(full_name.lower())
        if repo is None:
            raise KeyError(f"no repository {full_name}; call create_repo() first")
        return repo

    def _repo_or_404(self, owner: str, name: str) -> _Repo:
        repo = self._repos.get(f"{owner}/{name}".lower())
        if repo is None:
            raise _not_found()
        return repo

    @staticmethod
    def _commit_or_raise(repo: _Repo, ref: str) -> str:
        sha = repo.resolve_commit(ref)
        if sha is None:
            raise KeyError(f"{ref!r} does not name a commit in {repo.full_name}")
        return sha

    @staticmethod
    def _issue_or_404(repo: _Repo, number: str | int) -> _Issue:
        issue = repo.issues.get(int(number))
        if issue is None:
            raise _not_found()
        return issue

    @staticmethod
    def _pull_or_404(repo: _Repo, number: str | int) -> _Pull:
        pull = repo.pulls.get(int(number))
        if pull is None:
            raise _not_found()
        return pull

    @staticmethod
    def _object_body(req: _Request) -> dict[str, Any]:
        if req.body is None:
            return {}
        if not isinstance(req.body, dict):
            raise _ApiError(400, "Problems parsing JSON")
        return req.body

    def _page(
        self, req: _Request, items: list[Any], *, default: int = 30, maximum: int = 100
    ) -> tuple[list[Any], dict[str, str]]:
        def as_int(name: str, fallback: int) -> int:
            try:
                return int(req.query.get(name, fallback))
            except ValueError:
                return fallback

        per_page = min(max(as_int("per_page", default), 1), maximum)
        page = max(as_int("page", 1), 1)
        last = max(1, -(-len(items) // per_page))

        def link(number: int) -> str:
            query = {**req.query, "page": str(number), "per_page": str(per_page)}
            return f"{self._origin}{req.raw_path}?{urlencode(query)}"

        links = []
        if page > 1:
            links.append(f'<{link(page - 1)}>; rel="prev"')
        if page < last:
            links += [f'<{link(page + 1)}>; rel="next"', f'<{link(last)}>; rel="last"']
        if page > 1:
            links.append(f'<{link(1)}>; rel="first"')
        start = (page - 1) * per_page
        return items[start : start + per_page], ({"Link": ", ".join(links)} if links else {})

    # -- renderers ----------------------------------------------------------------------------------------------

    def _user_id(self, login: str) -> int:
        if login not in self._user_ids:
            self._user_ids[login] = next(self._ids)
        return self._user_ids[login]

    def _user_json(self, login: str) -> dict[str, Any]:
        user_id = self._user_id(login)
        return {
            "login": login,
            "id": user_id,
            "node_id": _node_id("User", user_id),
            "avatar_url": self._html(f"/avatars/u/{user_id}"),
            "gravatar_id": "",
            "url": self._api(f"/users/{quote(login)}"),
            "html_url": self._html(f"/{quote(login)}"),
            "type": "Bot" if login.endswith("[bot]") else "User",
            "site_admin": False,
        }

    def _login_for(self, who: dict[str, str]) -> str | None:
        # GitHub links commit identities to accounts by email; here a login-shaped name is enough.
        if who.get("email") == "noreply@github.com":
            return "web-flow"
        return who["name"] if _LOGIN_RE.fullmatch(who["name"]) else None

    def _repo_json(self, repo: _Repo) -> dict[str, Any]:
        api = self._api(f"/repos/{repo.full_name}")
        return {
            "id": repo.id,
            "node_id": _node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": True,
            "owner": self._user_json(repo.owner),
            "html_url": self._html(f"/{repo.full_name}"),
            "description": None,
            "fork": False,
            "url": api,
            "issues_url": api + "/issues{/number}",
            "pulls_url": api + "/pulls{/number}",
            "labels_url": api + "/labels{/name}",
            "git_refs_url": api + "/git/refs{/sha}",
            "commits_url": api + "/commits{/sha}",
            "statuses_url": api + "/statuses/{sha}",
            "contents_url": api + "/contents/{+path}",
            "compare_url": api + "/compare/{base}...{head}",
            "clone_url": self._html(f"/{repo.full_name}.git"),
            "created_at": repo.created_at,
            "updated_at": repo.pushed_at,
            "pushed_at": repo.pushed_at,
            "default_branch": repo.default_branch,
            "visibility": "private",
            "archived": False,
            "disabled": False,
            "has_issues": True,
            "open_issues_count": sum(1 for i in repo.issues.values() if i.state == "open"),
            "allow_merge_commit": True,
            "allow_squash_merge": True,
            "allow_rebase_merge": True,
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
        }

    def _label_json(self, repo: _Repo, name: str) -> dict[str, Any]:
        label = repo.labels[name.lower()]
        return {
            "id": label["id"],
            "node_id": _node_id("Label", label["id"]),
            "url": self._api(f"/repos/{repo.full_name}/labels/{quote(label['name'], safe='')}"),
            "name": label["name"],
            "color": label["color"],
            "default": False,
            "description": label["description"],
        }

    def _issue_json(self, repo: _Repo, issue: _Issue) -> dict[str, Any]:
        url = self._api(f"/repos/{repo.full_name}/issues/{issue.number}")
        kind = "pull" if issue.is_pull else "issues"
        data: dict[str, Any] = {
            "id": issue.id,
            "node_id": _node_id("Issue", issue.id),
            "url": url,
            "repository_url": self._api(f"/repos/{repo.full_name}"),
            "labels_url": url + "/labels{/name}",
            "comments_url": url + "/comments",
            "events_url": url + "/events",
            "html_url": self._html(f"/{repo.full_name}/{kind}/{issue.number}"),
            "number": issue.number,
            "state": issue.state,
            "state_reason": issue.state_reason,
            "title": issue.title,
            "body": issue.body,
            "user": self._user_json(issue.user),
            "labels": [self._label_json(repo, name) for name in issue.labels],
            "assignee": self._user_json(issue.assignees[0]) if issue.assignees else None,
            "assignees": [self._user_json(login) for login in issue.assignees],
            "milestone": None,
            "locked": False,
            "comments": len(issue.comment_ids),
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "closed_at": issue.closed_at,
            "closed_by": self._user_json(issue.closed_by) if issue.closed_by else None,
            "author_association": "MEMBER",
        }
        if issue.is_pull:
            pull_url = self._api(f"/repos/{repo.full_name}/pulls/{issue.number}")
            html = self._html(f"/{repo.full_name}/pull/{issue.number}")
            data["pull_request"] = {
                "url": pull_url,
                "html_url": html,
                "diff_url": html + ".diff",
                "patch_url": html + ".patch",
                "merged_at": repo.pulls[issue.number].merged_at,
            }
        return data

    def _comment_json(self, repo: _Repo, comment: dict[str, Any]) -> dict[str, Any]:
        number = comment["issue"]
        return {
            "id": comment["id"],
            "node_id": _node_id("IssueComment", comment["id"]),
            "url": self._api(f"/repos/{repo.full_name}/issues/comments/{comment['id']}"),
            "html_url": self._html(f"/{repo.full_name}/issues/{number}#issuecomment-{comment['id']}"),
            "issue_url": self._api(f"/repos/{repo.full_name}/issues/{number}"),
            "body": comment["body"],
            "user": self._user_json(comment["user"]),
            "created_at": comment["created_at"],
            "updated_at": comment["updated_at"],
            "author_association": "MEMBER",
        }

    def _ref_json(self, repo: _Repo, name: str) -> dict[str, Any]:
        sha = repo.refs[name]
        return {
            "ref": name,
            "node_id": _node_id("Ref", f"{repo.id}:{name}"),
            "url": self._api(f"/repos/{repo.full_name}/git/{quote(name)}"),
            "object": {
                "sha": sha,
                "type": "commit",
                "url": self._api(f"/repos/{repo.full_name}/git/commits/{sha}"),
            },
        }

    def _parents_json(self, repo: _Repo, commit: _GitCommit, *, git: bool) -> list[dict[str, Any]]:
        kind = "git/commits" if git else "commits"
        return [
            {
                "sha": parent,
                "url": self._api(f"/repos/{repo.full_name}/{kind}/{parent}"),
                "html_url": self._html(f"/{repo.full_name}/commit/{parent}"),
            }
            for parent in commit.parents
        ]

    def _git_commit_json(self, repo: _Repo, sha: str) -> dict[str, Any]:
        commit = repo.commits[sha]
        return {
            "sha": sha,
            "node_id": _node_id("Commit", sha),
            "url": self._api(f"/repos/{repo.full_name}/git/commits/{sha}"),
            "html_url": self._html(f"/{repo.full_name}/commit/{sha}"),
            "author": {**commit.author, "date": _iso(_parse_iso(commit.author["date"]))},
            "committer": {**commit.committer, "date": _iso(_parse_iso(commit.committer["date"]))},
            "message": commit.message,
            "tree": {
                "sha": commit.tree,
                "url": self._api(f"/repos/{repo.full_name}/git/trees/{commit.tree}"),
            },
            "parents": self._parents_json(repo, commit, git=True),
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
        }

    def _commit_json(self, repo: _Repo, sha: str) -> dict[str, Any]:
        commit = repo.commits[sha]
        author, committer = self._login_for(commit.author), self._login_for(commit.committer)
        git = self._git_commit_json(repo, sha)
        return {
            "sha": sha,
            "node_id": git["node_id"],
            "url": self._api(f"/repos/{repo.full_name}/commits/{sha}"),
            "html_url": git["html_url"],
            "comments_url": self._api(f"/repos/{repo.full_name}/commits/{sha}/comments"),
            "commit": {
                "url": git["url"],
                "author": git["author"],
                "committer": git["committer"],
                "message": git["message"],
                "tree": git["tree"],
                "comment_count": 0,
                "verification": git["verification"],
            },
            "author": self._user_json(author) if author else None,
            "committer": self._user_json(committer) if committer else None,
            "parents": self._parents_json(repo, commit, git=False),
        }

    def _files_json(self, repo: _Repo, old_tree: str | None, new_tree: str, ref: str) -> list[dict[str, Any]]:
        files = []
        for path, status, before, after in repo.diff(old_tree, new_tree):
            old_data = repo.blobs.get(before[2]) if before and before[1] == "blob" else None
            new_data = repo.blobs.get(after[2]) if after and after[1] == "blob" else None
            patch, additions, deletions = _patch(old_data, new_data)
            entry: dict[str, Any] = {
                "sha": (after or before or ("", "", ""))[2],
                "filename": path,
                "status": status,
                "additions": additions,
                "deletions": deletions,
                "changes": additions + deletions,
                "blob_url": self._html(f"/{repo.full_name}/blob/{ref}/{quote(path)}"),
                "raw_url": self._html(f"/{repo.full_name}/raw/{ref}/{quote(path)}"),
                "contents_url": self._api(f"/repos/{repo.full_name}/contents/{quote(path)}?ref={ref}"),
            }
            if patch is not None:
                entry["patch"] = patch
            files.append(entry)
        return files

    def _tree_json(self, repo: _Repo, sha: str, *, recursive: bool) -> dict[str, Any]:
        listing = repo.walk(sha) if recursive else [(e.name, e) for e in repo.trees[sha]]
        entries = []
        for path, entry in listing:
            item: dict[str, Any] = {"path": path, "mode": entry.mode, "type": entry.type, "sha": entry.sha}
            if entry.type == "blob":
                item["size"] = len(repo.blobs[entry.sha])
                item["url"] = self._api(f"/repos/{repo.full_name}/git/blobs/{entry.sha}")
            elif entry.type == "tree":
                item["url"] = self._api(f"/repos/{repo.full_name}/git/trees/{entry.sha}")
            entries.append(item)
        return {
            "sha": sha,
            "url": self._api(f"/repos/{repo.full_name}/git/trees/{sha}"),
            "tree": entries,
            "truncated": False,
        }

    def _status_json(self, repo: _Repo, status: dict[str, Any]) -> dict[str, Any]:
        creator = self._user_json(status["creator"])
        return {
            "url": self._api(f"/repos/{repo.full_name}/statuses/{status['sha']}"),
            "avatar_url": creator["avatar_url"],
            "id": status["id"],
            "node_id": _node_id("StatusContext", status["id"]),
            "state": status["state"],
            "description": status["description"],
            "target_url": status["target_url"],
            "context": status["context"],
            "created_at": status["created_at"],
            "updated_at": status["created_at"],
            "creator": creator,
        }

    def _check_run_json(self, repo: _Repo, run: dict[str, Any]) -> dict[str, Any]:
        url = self._api(f"/repos/{repo.full_name}/check-runs/{run['id']}")
        html = self._html(f"/{repo.full_name}/runs/{run['id']}")
        return {
            "id": run["id"],
            "node_id": _node_id("CheckRun", run["id"]),
            "name": run["name"],
            "head_sha": run["head_sha"],
            "external_id": "",
            "url": url,
            "html_url": html,
            "details_url": html,
            "status": run["status"],
            "conclusion": run["conclusion"],
            "started_at": run["started_at"],
            "completed_at": run["completed_at"],
            "output": {
                "title": None,
                "summary": None,
                "text": None,
                "annotations_count": 0,
                "annotations_url": url + "/annotations",
            },
            "check_suite": {"id": run["id"]},
            "app": {"id": 1, "slug": "ci", "name": "CI", "owner": self._user_json("ci-bot")},
            "pull_requests": [],
        }

    def _review_json(self, repo: _Repo, review: dict[str, Any]) -> dict[str, Any]:
        number = review["pull"]
        html = self._html(f"/{repo.full_name}/pull/{number}")
        pull_url = self._api(f"/repos/{repo.full_name}/pulls/{number}")
        return {
            "id": review["id"],
            "node_id": _node_id("PullRequestReview", review["id"]),
            "url": f"{pull_url}/reviews/{review['id']}",
            "user": self._user_json(review["user"]),
            "body": review["body"],
            "state": review["state"],
            "html_url": f"{html}#pullrequestreview-{review['id']}",
            "pull_request_url": pull_url,
            "commit_id": review["commit_id"],
            "submitted_at": review["submitted_at"],
            "author_association": "MEMBER",
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
        }

    def _sync_pull(self, repo: _Repo, pull: _Pull) -> None:
        # While open, a PR's head/base shas follow the branches, as on GitHub; once closed or merged they stay
        # frozen, so files/commits keep describing what was proposed.
        if repo.issues[pull.number].state != "open":
            return
        head, base = repo.branch_tip(pull.head_ref), repo.branch_tip(pull.base_ref)
        if head:
            pull.head_sha = head
        if base:
            pull.base_sha = base

    def _pull_json(self, repo: _Repo, pull: _Pull) -> dict[str, Any]:
        self._sync_pull(repo, pull)
        issue = repo.issues[pull.number]
        full = repo.full_name
        url = self._api(f"/repos/{full}/pulls/{pull.number}")
        html = self._html(f"/{full}/pull/{pull.number}")
        issue_url = self._api(f"/repos/{full}/issues/{pull.number}")
        files = self._pull_files(repo, pull)
        if pull.merged:
            mergeable: bool | None = None
            mergeable_state = "unknown"
        elif issue.state != "open":
            mergeable, mergeable_state = None, "unknown"
        else:
            mergeable = repo.three_way(pull.base_sha, pull.head_sha) is not None
            if not mergeable:
                mergeable_state = "dirty"
            elif pull.draft:
                mergeable_state = "draft"
            elif self._head_failing(repo, pull.head_sha):
                mergeable_state = "unstable"
            else:
                mergeable_state = "clean"

        def part(ref: str, sha: str) -> dict[str, Any]:
            return {
                "label": f"{repo.owner}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": self._user_json(repo.owner),
                "repo": self._repo_json(repo),
            }

        return {
            "id": pull.id,
            "node_id": _node_id("PullRequest", pull.id),
            "url": url,
            "html_url": html,
            "diff_url": html + ".diff",
            "patch_url": html + ".patch",
            "issue_url": issue_url,
            "commits_url": url + "/commits",
            "review_comments_url": url + "/comments",
            "review_comment_url": self._api(f"/repos/{full}/pulls/comments{{/number}}"),
            "comments_url": issue_url + "/comments",
            "statuses_url": self._api(f"/repos/{full}/statuses/{pull.head_sha}"),
            "number": pull.number,
            "state": issue.state,
            "locked": False,
            "title": issue.title,
            "body": issue.body,
            "user": self._user_json(issue.user),
            "labels": [self._label_json(repo, name) for name in issue.labels],
            "milestone": None,
            "assignee": self._user_json(issue.assignees[0]) if issue.assignees else None,
            "assignees": [self._user_json(login) for login in issue.assignees],
            "requested_reviewers": [],
            "requested_teams": [],
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "closed_at": issue.closed_at,
            "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha,
            "head": part(pull.head_ref, pull.head_sha),
            "base": part(pull.base_ref, pull.base_sha),
            "draft": pull.draft,
            "merged": pull.merged,
            "mergeable": mergeable,
            "rebaseable": mergeable,
            "mergeable_state": mergeable_state,
            "merged_by": self._user_json(pull.merged_by) if pull.merged_by else None,
            "comments": len(issue.comment_ids),
            "review_comments": 0,
            "maintainer_can_modify": pull.maintainer_can_modify,
            "commits": len(repo.commits_between(pull.base_sha, pull.head_sha)),
            "additions": sum(f["additions"] for f in files),
            "deletions": sum(f["deletions"] for f in files),
            "changed_files": len(files),
            "author_association": "MEMBER",
            "_links": {
                "self": {"href": url},
                "html": {"href": html},
                "issue": {"href": issue_url},
                "comments": {"href": issue_url + "/comments"},
                "commits": {"href": url + "/commits"},
                "statuses": {"href": self._api(f"/repos/{full}/statuses/{pull.head_sha}")},
            },
        }

    def _head_failing(self, repo: _Repo, sha: str) -> bool:
        if self._combined_state(repo, sha)[0] in ("failure", "error"):
            return True
        return any(run["conclusion"] in _FAILED_CONCLUSIONS for run in self._latest_runs(repo, sha))

    # -- users and repos ----------------------------------------------------------------------------------------

    def _get_authenticated_user(self, req: _Request) -> _Response:
        return _Response(200, {**self._user_json(_BOT_LOGIN), "name": "TARS", "email": None})

    def _get_user(self, req: _Request, login: str) -> _Response:
        return _Response(200, self._user_json(login))

    def _get_repo_by_id(self, req: _Request, repo_id: str) -> _Response:
        for repo in self._repos.values():
            if repo.id == int(repo_id):
                return _Response(200, self._repo_json(repo))
        raise _not_found()

    def _get_repo(self, req: _Request, repo: _Repo) -> _Response:
        return _Response(200, self._repo_json(repo))

    def _branch_json(self, repo: _Repo, name: str) -> dict[str, Any]:
        url = self._api(f"/repos/{repo.full_name}/branches/{quote(name)}")
        return {
            "name": name,
            "commit": self._commit_json(repo, repo.refs[f"refs/heads/{name}"]),
            "protected": False,
            "protection_url": url + "/protection",
            "_links": {"self": url, "html": self._html(f"/{repo.full_name}/tree/{quote(name)}")},
        }

    def _list_branches(self, req: _Request, repo: _Repo) -> _Response:
        names = sorted(r.removeprefix("refs/heads/") for r in repo.refs if r.startswith("refs/heads/"))
        page, headers = self._page(req, names)
        return _Response(200, [self._branch_json(repo, name) for name in page], headers)

    def _get_branch(self, req: _Request, repo: _Repo, branch: str) -> _Response:
        if repo.branch_tip(branch) is None:
            raise _ApiError(404, "Branch not found")
        return _Response(200, self._branch_json(repo, branch))

    # -- issues, comments, labels -------------------------------------------------------------------------------

    def _ensure_labels(self, repo: _Repo, raw: Any) -> list[str]:
        """Canonical names for the given labels, creating missing ones as GitHub does for pushers."""
        if not isinstance(raw, list):
            raise _invalid({"resource": "Issue", "code": "invalid", "field": "labels"})
        names: list[str] = []
        for item in raw:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not name.strip():
                raise _invalid({"resource": "Label", "code": "invalid", "field": "name"})
            if name.lower() not in repo.labels:
                self._new_label(repo, name, "ededed", None)
            canonical = repo.labels[name.lower()]["name"]
            if canonical not in names:
                names.append(canonical)
        return names

    def _new_label(self, repo: _Repo, name: str, color: str, description: str | None) -> dict[str, Any]:
        label = {"id": next(self._ids), "name": name, "color": color, "description": description}
        repo.labels[name.lower()] = label
        return label

    @staticmethod
    def _assignees(body: dict[str, Any]) -> list[str] | None:
        if "assignees" in body:
            raw = body["assignees"] or []
        elif "assignee" in body:
            raw = [body["assignee"]] if body["assignee"] else []
        else:
            return None
        if not all(isinstance(login, str) for login in raw):
            raise _invalid({"resource": "Issue", "code": "invalid", "field": "assignees"})
        return list(dict.fromkeys(raw))

    def _new_issue(self, repo: _Repo, title: str, body: str | None, *, is_pull: bool = False) -> _Issue:
        now = _now()
        issue = _Issue(repo.next_number, next(self._ids), title, body, _BOT_LOGIN, now, now, is_pull=is_pull)
        repo.issues[issue.number] = issue
        repo.next_number += 1
        return issue

    def _list_issues(self, req: _Request, repo: _Repo) -> _Response:
        state = req.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _invalid({"resource": "Issue", "code": "invalid", "field": "state"})
        items = [i for i in repo.issues.values() if state == "all" or i.state == state]
        if labels := req.query.get("labels"):
            wanted = {name.strip().lower() for name in labels.split(",") if name.strip()}
            items = [i for i in items if wanted <= {name.lower() for name in i.labels}]
        if creator := req.query.get("creator"):
            items = [i for i in items if i.user == creator]
        assignee = req.query.get("assignee")
        if assignee == "none":
            items = [i for i in items if not i.assignees]
        elif assignee == "*":
            items = [i for i in items if i.assignees]
        elif assignee:
            items = [i for i in items if assignee in i.assignees]
        if since := req.query.get("since"):
            items = [i for i in items if _parse_iso(i.updated_at) >= _parse_iso(since)]
        sort = req.query.get("sort", "created")
        sort_keys: dict[str, Callable[[_Issue], Any]] = {
            "created": lambda i: i.number,
            "updated": lambda i: (i.updated_at, i.number),
            "comments": lambda i: (len(i.comment_ids), i.number),
        }
        if sort not in sort_keys:
            raise _invalid({"resource": "Issue", "code": "invalid", "field": "sort"})
        items.sort(key=sort_keys[sort], reverse=req.query.get("direction", "desc") != "asc")
        page, headers = self._page(req, items)
        return _Response(200, [self._issue_json(repo, i) for i in page], headers)

    def _create_issue(self, req: _Request, repo: _Repo) -> _Response:
        body = self._object_body(req)
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _invalid({"resource": "Issue", "code": "missing_field", "field": "title"})
        if body.get("milestone") is not None:
            raise _invalid({"resource": "Issue", "code": "invalid", "field": "milestone"})
        labels = self._ensure_labels(repo, body.get("labels") or [])
        assignees = self._assignees(body) or []
        issue = self._new_issue(repo, title, body.get("body"))
        issue.labels, issue.assignees = labels, assignees
        data = self._issue_json(repo, issue)
        return _Response(201, data, {"Location": data["url"]})

    def _get_issue(self, req: _Request, repo: _Repo, number: str) -> _Response:
        return _Response(200, self._issue_json(repo, self._issue_or_404(repo, number)))

    def _close_or_reopen(self, repo: _Repo, issue: _Issue, state: str, reason: str | None) -> None:
        if state == issue.state:
            return
        if issue.is_pull:
            pull = repo.pulls[issue.number]
            if pull.merged:
                raise _unprocessable("Cannot reopen a merged pull request")
            if state == "open" and repo.branch_tip(pull.head_ref) is None:
                raise _unprocessable("Cannot reopen: the head branch no longer exists")
            self._sync_pull(repo, pull)  # last chance before the shas freeze
        now = _now()
        issue.state = state
        if state == "closed":
            issue.closed_at, issue.closed_by = now, _BOT_LOGIN
            issue.state_reason = None if issue.is_pull else (reason or "completed")
        else:
            issue.closed_at = issue.closed_by = None
            issue.state_reason = None if issue.is_pull else "reopened"

    def _edit_issue(self, req: _Request, repo: _Repo, number: str) -> _Response:
        issue = self._issue_or_404(repo, number)
        body = self._object_body(req)
        if "title" in body:
            if not isinstance(body["title"], str) or not body["title"].strip():
                raise _invalid({"resource": "Issue", "code": "missing_field", "field": "title"})
            issue.title = body["title"]
        if "body" in body:
            issue.body = body["body"]
        if "labels" in body:
            issue.labels = self._ensure_labels(repo, body["labels"] or [])
        assignees = self._assignees(body)
        if assignees is not None:
            issue.assignees = assignees
        if "state" in body:
            if body["state"] not in ("open", "closed"):
                raise _invalid({"resource": "Issue", "code": "invalid", "field": "state"})
            self._close_or_reopen(repo, issue, body["state"], body.get("state_reason"))
        issue.updated_at = _now()
        return _Response(200, self._issue_json(repo, issue))

    def _list_comments(self, req: _Request, repo: _Repo, number: str) -> _Response:
        issue = self._issue_or_404(repo, number)
        page, headers = self._page(req, [repo.comments[c] for c in issue.comment_ids])
        return _Response(200, [self._comment_json(repo, c) for c in page], headers)

    def _create_comment(self, req: _Request, repo: _Repo, number: str) -> _Response:
        issue = self._issue_or_404(repo, number)
        text = self._object_body(req).get("body")
        if not isinstance(text, str) or not text:
            raise _invalid({"resource": "IssueComment", "code": "missing_field", "field": "body"})
        now = _now()
        comment = {"id": next(self._ids), "issue": issue.number, "body": text, "user": _BOT_LOGIN}
        comment.update(created_at=now, updated_at=now)
        repo.comments[comment["id"]] = comment
        issue.comment_ids.append(comment["id"])
        issue.updated_at = now
        data = self._comment_json(repo, comment)
        return _Response(201, data, {"Location": data["url"]})

    def _comment_or_404(self, repo: _Repo, comment_id: str) -> dict[str, Any]:
        comment = repo.comments.get(int(comment_id))
        if comment is None:
            raise _not_found()
        return comment

    def _get_comment(self, req: _Request, repo: _Repo, comment_id: str) -> _Response:
        return _Response(200, self._comment_json(repo, self._comment_or_404(repo, comment_id)))

    def _edit_comment(self, req: _Request, repo: _Repo, comment_id: str) -> _Response:
        comment = self._comment_or_404(repo, comment_id)
        text = self._object_body(req).get("body")
        if not isinstance(text, str) or not text:
            raise _invalid({"resource": "IssueComment", "code": "missing_field", "field": "body"})
        comment.update(body=text, updated_at=_now())
        return _Response(200, self._comment_json(repo, comment))

    def _delete_comment(self, req: _Request, repo: _Repo, comment_id: str) -> _Response:
        comment = self._comment_or_404(repo, comment_id)
        del repo.comments[comment["id"]]
        repo.issues[comment["issue"]].comment_ids.remove(comment["id"])
        return _Response(204)

    def _issue_labels_response(self, repo: _Repo, issue: _Issue) -> _Response:
        return _Response(200, [self._label_json(repo, name) for name in issue.labels])

    @staticmethod
    def _labels_payload(req: _Request) -> Any:
        # Both a bare list and {"labels": [...]} are accepted by GitHub; PyGithub sends the bare list.
        return req.body.get("labels", []) if isinstance(req.body, dict) else (req.body or [])

    def _list_issue_labels(self, req: _Request, repo: _Repo, number: str) -> _Response:
        return self._issue_labels_response(repo, self._issue_or_404(repo, number))

    def _add_issue_labels(self, req: _Request, repo: _Repo, number: str) -> _Response:
        issue = self._issue_or_404(repo, number)
        for name in self._ensure_labels(repo, self._labels_payload(req)):
            if name not in issue.labels:
                issue.labels.append(name)
        issue.updated_at = _now()
        return self._issue_labels_response(repo, issue)

    def _set_issue_labels(self, req: _Request, repo: _Repo, number: str) -> _Response:
        issue = self._issue_or_404(repo, number)
        issue.labels = self._ensure_labels(repo, self._labels_payload(req))
        issue.updated_at = _now()
        return self._issue_labels_response(repo, issue)

    def _clear_issue_labels(self, req: _Request, repo: _Repo, number: str) -> _Response:
        issue = self._issue_or_404(repo, number)
        issue.labels = []
        issue.updated_at = _now()
        return _Response(204)

    def _remove_issue_label(self, req: _Request, repo: _Repo, number: str, name: str) -> _Response:
        issue = self._issue_or_404(repo, number)
        remaining = [n for n in issue.labels if n.lower() != name.lower()]
        if len(remaining) == len(issue.labels):
            raise _ApiError(404, "Label does not exist")
        issue.labels = remaining
        issue.updated_at = _now()
        return self._issue_labels_response(repo, issue)

    def _list_labels(self, req: _Request, repo: _Repo) -> _Response:
        page, headers = self._page(req, [label["name"] for label in repo.labels.values()])
        return _Response(200, [self._label_json(repo, name) for name in page], headers)

    def _create_label(self, req: _Request, repo: _Repo) -> _Response:
        body = self._object_body(req)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _invalid({"resource": "Label", "code": "missing_field", "field": "name"})
        if name.lower() in repo.labels:
            raise _invalid({"resource": "Label", "code": "already_exists", "field": "name"})
        color = str(body.get("color") or "ededed").lstrip("#")
        if not re.fullmatch(r"[0-9a-fA-F]{6}", color):
            raise _invalid({"resource": "Label", "code": "invalid", "field": "color"})
        self._new_label(repo, name, color.lower(), body.get("description"))
        return _Response(201, self._label_json(repo, name))

    def _get_label(self, req: _Request, repo: _Repo, name: str) -> _Response:
        if name.lower() not in repo.labels:
            raise _not_found()
        return _Response(200, self._label_json(repo, name))

    # -- git data -----------------------------------------------------------------------------------------------

    def _list_refs(self, req: _Request, repo: _Repo) -> _Response:
        page, headers = self._page(req, sorted(repo.refs))
        return _Response(200, [self._ref_json(repo, name) for name in page], headers)

    def _get_ref(self, req: _Request, repo: _Repo, ref: str) -> _Response:
        name = f"refs/{ref}"
        if name not in repo.refs:
            raise _not_found()
        return _Response(200, self._ref_json(repo, name))

    def _get_refs_prefix(self, req: _Request, repo: _Repo, ref: str) -> _Response:
        # Legacy endpoint: an exact match returns the ref, otherwise GitHub lists refs under that prefix.
        name = f"refs/{ref}"
        if name in repo.refs:
            return _Response(200, self._ref_json(repo, name))
        matches = sorted(r for r in repo.refs if r.startswith(name.rstrip("/") + "/"))
        if not matches:
            raise _not_found()
        return _Response(200, [self._ref_json(repo, r) for r in matches])

    def _matching_refs(self, req: _Request, repo: _Repo, ref: str) -> _Response:
        matches = sorted(r for r in repo.refs if r.startswith(f"refs/{ref}"))
        page, headers = self._page(req, matches)
        return _Response(200, [self._ref_json(repo, r) for r in page], headers)

    def _create_ref(self, req: _Request, repo: _Repo) -> _Response:
        body = self._object_body(req)
        name, sha = body.get("ref"), body.get("sha")
        if not isinstance(name, str) or not name.startswith("refs/") or name.count("/") < 2:
            raise _unprocessable("Reference name is invalid")
        if name.endswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
            raise _unprocessable("Reference name is invalid")
        if not isinstance(sha, str) or sha not in repo.commits:
            raise _unprocessable("Object does not exist")
        if name in repo.refs:
            raise _unprocessable("Reference already exists")
        repo.refs[name] = sha
        repo.pushed_at = _now()
        data = self._ref_json(repo, name)
        return _Response(201, data, {"Location": data["url"]})

    def _update_ref(self, req: _Request, repo: _Repo, ref: str) -> _Response:
        name = f"refs/{ref}"
        if name not in repo.refs:
            raise _unprocessable("Reference does not exist")
        body = self._object_body(req)
        sha = body.get("sha")
        if not isinstance(sha, str) or sha not in repo.commits:
            raise _unprocessable("Object does not exist")
        if not body.get("force") and repo.refs[name] not in repo.ancestors(sha):
            raise _unprocessable("Update is not a fast forward")
        repo.refs[name] = sha
        repo.pushed_at = _now()
        return _Response(200, self._ref_json(repo, name))

    def _delete_ref(self, req: _Request, repo: _Repo, ref: str) -> _Response:
        name = f"refs/{ref}"
        if name not in repo.refs:
            raise _unprocessable("Reference does not exist")
        del repo.refs[name]
        return _Response(204)

    def _get_git_commit(self, req: _Request, repo: _Repo, sha: str) -> _Response:
        if sha not in repo.commits:
            raise _not_found()
        return _Response(200, self._git_commit_json(repo, sha))

    @staticmethod
    def _identity(raw: Any, fallback: dict[str, str], field_name: str) -> dict[str, str]:
        if raw is None:
            return dict(fallback)
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("name"), str)
            or not isinstance(raw.get("email"), str)
        ):
            raise _invalid({"resource": "Commit", "code": "invalid", "field": field_name})
        try:
            date = _parse_iso(raw["date"]).isoformat() if raw.get("date") else fallback["date"]
        except (TypeError, ValueError) as error:
            raise _invalid(
                {"resource": "Commit", "code": "invalid", "field": f"{field_name}.date"}
            ) from error
        return {"name": raw["name"], "email": raw["email"], "date": date}

    def _create_git_commit(self, req: _Request, repo: _Repo) -> _Response:
        body = self._object_body(req)
        message, tree, parents = body.get("message"), body.get("tree"), body.get("parents", [])
        if not isinstance(message, str):
            raise _invalid({"resource": "Commit", "code": "missing_field", "field": "message"})
        if not isinstance(tree, str) or tree not in repo.trees:
            raise _unprocessable("Tree SHA does not exist")
        if not isinstance(parents, list) or not all(
            isinstance(p, str) and p in repo.commits for p in parents
        ):
            raise _unprocessable("Parent SHA does not exist or is not a commit object")
        default = {"name": _BOT_LOGIN, "email": f"{_BOT_LOGIN}@users.noreply.github.com", "date": _now()}
        author = self._identity(body.get("author"), default, "author")
        committer = self._identity(body.get("committer"), author, "committer")
        sha = repo.put_commit(tree, parents, message, author, committer)
        data = self._git_commit_json(repo, sha)
        return _Response(201, data, {"Location": data["url"]})

    def _get_tree(self, req: _Request, repo: _Repo, sha: str) -> _Response:
        tree = repo.resolve_tree(sha)
        if tree is None:
            raise _not_found()
        # GitHub documents that *any* value of `recursive` enables recursion, even "false".
        return _Response(200, self._tree_json(repo, tree, recursive="recursive" in req.query))

    def _create_tree(self, req: _Request, repo: _Repo) -> _Response:
        body = self._object_body(req)
        entries, base_tree = body.get("tree"), body.get("base_tree")
        if not isinstance(entries, list):
            raise _invalid({"resource": "Tree", "code": "missing_field", "field": "tree"})
        if base_tree is not None and (not isinstance(base_tree, str) or base_tree not in repo.trees):
            raise _unprocessable("base_tree is not a valid tree oid")
        flat = repo.flatten(base_tree) if base_tree else {}
        for entry in entries:
            if not isinstance(entry, dict) or not _valid_path(entry.get("path")):
                raise _unprocessable("tree.path contains a malformed path component")
            path, mode, kind = entry["path"], entry.get("mode"), entry.get("type")
            expected_kind = (
                "blob" if mode in _BLOB_MODES else {"040000": "tree", "160000": "commit"}.get(mode)
            )
            if expected_kind is None or kind != expected_kind:
                raise _unprocessable(f"Invalid tree info: mode {mode!r} / type {kind!r} for {path}")
            if ("sha" in entry) == ("content" in entry):
                raise _unprocessable("Must supply either tree.sha or tree.content")
            if "content" in entry:
                if kind != "blob" or not isinstance(entry["content"], str):
                    raise _unprocessable("tree.content can only be used for blobs")
                _set_path(flat, path, (mode, kind, repo.put_blob(entry["content"].encode())))
            elif entry["sha"] is None:
                _set_path(flat, path, None)
            elif kind == "blob":
                if entry["sha"] not in repo.blobs:
                    raise _unprocessable(f"tree.sha {entry['sha']} is not a valid blob")
                _set_path(flat, path, (mode, kind, entry["sha"]))
            elif kind == "tree":
                if entry["sha"] not in repo.trees:
                    raise _unprocessable(f"tree.sha {entry['sha']} is not a valid tree")
                _set_path(flat, path, None)
                for sub_path, leaf in repo.flatten(entry["sha"], path + "/").items():
                    flat[sub_path] = leaf
            else:  # submodule: a commit sha in another repository, not checked
                _set_path(flat, path, (mode, kind, str(entry["sha"])))
        sha = repo.write_flat(flat)
        data = self._tree_json(repo, sha, recursive=False)
        return _Response(201, data, {"Location": data["url"]})

    def _get_blob(self, req: _Request, repo: _Repo, sha: str) -> _Response:
        if sha not in repo.blobs:
            raise _not_found()
        data = repo.blobs[sha]
        return _Response(
            200,
            {
                "sha": sha,
                "node_id": _node_id("Blob", sha),
                "size": len(data),
                "url": self._api(f"/repos/{repo.full_name}/git/blobs/{sha}"),
                "content": _b64(data),
                "encoding": "base64",
            },
        )

    def _create_blob(self, req: _Request, repo: _Repo) -> _Response:
        body = self._object_body(req)
        content, encoding = body.get("content"), body.get("encoding", "utf-8")
        if not isinstance(content, str):
            raise _invalid({"resource": "Blob", "code": "missing_field", "field": "content"})
        if encoding in ("utf-8", "utf8"):
            data = content.encode()
        elif encoding == "base64":
            try:
                data = base64.b64decode(content, validate=False)
            except (binascii.Error, ValueError) as error:
                raise _unprocessable("content is not valid Base64") from error
        else:
            raise _unprocessable(f"encoding must be utf-8 or base64, not {encoding!r}")
        sha = repo.put_blob(data)
        url = self._api(f"/repos/{repo.full_name}/git/blobs/{sha}")
        return _Response(201, {"url": url, "sha": sha}, {"Location": url})

    # -- commits, compare, contents -----------------------------------------------------------------------------

    def _resolve_or_422(self, repo: _Repo, ref: str) -> str:
        if not repo.refs and not repo.commits:
            raise _ApiError(409, "Git Repository is empty.")
        sha = repo.resolve_commit(ref)
        if sha is None:
            raise _unprocessable(f"No commit found for SHA: {ref}")
        return sha

    def _list_commits(self, req: _Request, repo: _Repo) -> _Response:
        head = self._resolve_or_422(repo, req.query.get("sha") or repo.default_branch)
        shas = repo.history(head)
        if path := req.query.get("path", "").strip("/"):

            def touches(sha: str) -> bool:
                commit = repo.commits[sha]
                parent_tree = repo.commits[commit.parents[0]].tree if commit.parents else None
                changed = (p for p, *_ in repo.diff(parent_tree, commit.tree))
                return any(p == path or p.startswith(path + "/") for p in changed)

            shas = [sha for sha in shas if touches(sha)]
        if author := req.query.get("author"):
            shas = [
                sha
                for sha in shas
                if author in (repo.commits[sha].author["email"], self._login_for(repo.commits[sha].author))
            ]
        if since := req.query.get("since"):
            shas = [s for s in shas if _parse_iso(repo.commits[s].committer["date"]) >= _parse_iso(since)]
        if until := req.query.get("until"):
            shas = [s for s in shas if _parse_iso(repo.commits[s].committer["date"]) <= _parse_iso(until)]
        page, headers = self._page(req, shas)
        return _Response(200, [self._commit_json(repo, sha) for sha in page], headers)

    def _get_commit(self, req: _Request, repo: _Repo, ref: str) -> _Response:
        sha = self._resolve_or_422(repo, ref)
        commit = repo.commits[sha]
        parent_tree = repo.commits[commit.parents[0]].tree if commit.parents else None
        files = self._files_json(repo, parent_tree, commit.tree, sha)
        page, headers = self._page(req, files, default=300, maximum=300)
        data = self._commit_json(repo, sha)
        additions, deletions = sum(f["additions"] for f in files), sum(f["deletions"] for f in files)
        data["stats"] = {"total": additions + deletions, "additions": additions, "deletions": deletions}
        data["files"] = page
        return _Response(200, data, headers)

    def _compare(self, req: _Request, repo: _Repo, spec: str) -> _Response:
        base_ref, sep, head_ref = spec.partition("...")
        if not sep:
            base_ref, sep, head_ref = spec.partition("..")
        if not sep or not base_ref or not head_ref:
            raise _not_found()
        # "owner:branch" names a branch in a fork; only this repository is modelled.
        base_sha = repo.resolve_commit(base_ref.rpartition(":")[2])
        head_sha = repo.resolve_commit(head_ref.rpartition(":")[2])
        if base_sha is None or head_sha is None:
            raise _not_found()
        merge_base = repo.merge_base(base_sha, head_sha)
        if merge_base is None:
            raise _ApiError(404, "No common ancestor between the base and head")
        ahead = repo.commits_between(base_sha, head_sha)
        behind = repo.commits_between(head_sha, base_sha)
        if base_sha == head_sha:
            status = "identical"
        elif not behind:
            status = "ahead"
        elif not ahead:
            status = "behind"
        else:
            status = "diverged"
        page, headers = self._page(req, ahead, default=250, maximum=1000)
        html = self._html(f"/{repo.full_name}/compare/{quote(spec)}")
        data = {
            "url": self._api(f"/repos/{repo.full_name}/compare/{quote(spec)}"),
            "html_url": html,
            "permalink_url": self._html(f"/{repo.full_name}/compare/{base_sha}...{head_sha}"),
            "diff_url": html + ".diff",
            "patch_url": html + ".patch",
            "base_commit": self._commit_json(repo, base_sha),
            "merge_base_commit": self._commit_json(repo, merge_base),
            "status": status,
            "ahead_by": len(ahead),
            "behind_by": len(behind),
            "total_commits": len(ahead),
            "commits": [self._commit_json(repo, sha) for sha in page],
            "files": self._files_json(
                repo, repo.commits[merge_base].tree, repo.commits[head_sha].tree, head_sha
            ),
        }
        return _Response(200, data, headers)

    def _get_contents(self, req: _Request, repo: _Repo, path: str = "") -> _Response:
        ref = req.query.get("ref") or repo.default_branch
        commit = repo.resolve_commit(ref)
        if commit is None:
            raise _ApiError(404, f"No commit found for the ref {ref}")
        path = path.strip("/")
        tree = repo.commits[commit].tree
        listing = {p: e for p, e in repo.walk(tree)}

        def item(item_path: str, entry: _TreeEntry) -> dict[str, Any]:
            kind = {"blob": "file", "tree": "dir", "commit": "submodule"}[entry.type]
            url = self._api(f"/repos/{repo.full_name}/contents/{quote(item_path)}?ref={quote(ref)}")
            git_kind = "blobs" if entry.type == "blob" else "trees"
            html = self._html(f"/{repo.full_name}/{'blob' if kind == 'file' else 'tree'}/{ref}/{item_path}")
            data: dict[str, Any] = {
                "type": kind,
                "name": item_path.rsplit("/", 1)[-1],
                "path": item_path,
                "sha": entry.sha,
                "size": len(repo.blobs[entry.sha]) if entry.type == "blob" else 0,
                "url": url,
                "git_url": self._api(f"/repos/{repo.full_name}/git/{git_kind}/{entry.sha}"),
                "html_url": html,
                "download_url": self._html(f"/{repo.full_name}/raw/{ref}/{item_path}")
                if kind == "file"
                else None,
                "_links": {"self": url, "git": None, "html": html},
            }
            return data

        if path:
            entry = listing.get(path)
            if entry is None:
                raise _not_found()
            if entry.type != "tree":
                data = item(path, entry)
                if entry.type == "blob":
                    data.update(content=_b64(repo.blobs[entry.sha]), encoding="base64")
                return _Response(200, data)
            tree = entry.sha
        prefix = f"{path}/" if path else ""
        return _Response(200, [item(prefix + e.name, e) for e in repo.trees[tree]])

    # -- statuses and checks ------------------------------------------------------------------------------------

    def _add_status(
        self,
        repo: _Repo,
        sha: str,
        state: str,
        context: str,
        description: str | None,
        target_url: str | None,
        *,
        creator: str,
    ) -> dict[str, Any]:
        status = {
            "id": next(self._ids),
            "sha": sha,
            "state": state,
            "context": context,
            "description": description,
            "target_url": target_url,
            "created_at": _now(),
            "creator": creator,
        }
        repo.statuses.setdefault(sha, []).append(status)
        return status

    def _combined_state(self, repo: _Repo, sha: str) -> tuple[str, list[dict[str, Any]]]:
        latest: dict[str, dict[str, Any]] = {}
        for status in repo.statuses.get(sha, []):
            latest[status["context"]] = status  # later statuses for a context supersede earlier ones
        states = {s["state"] for s in latest.values()}
        if states & {"failure", "error"}:
            state = "failure"
        elif not states or "pending" in states:
            state = "pending"
        else:
            state = "success"
        return state, list(latest.values())

    def _combined_status(self, req: _Request, repo: _Repo, ref: str) -> _Response:
        sha = repo.resolve_commit(ref)
        if sha is None:
            raise _not_found()
        state, latest = self._combined_state(repo, sha)
        page, headers = self._page(req, latest, maximum=100)
        data = {
            "state": state,
            "statuses": [self._status_json(repo, s) for s in page],
            "sha": sha,
            "total_count": len(latest),
            "repository": self._repo_json(repo),
            "commit_url": self._api(f"/repos/{repo.full_name}/commits/{sha}"),
            "url": self._api(f"/repos/{repo.full_name}/commits/{sha}/status"),
        }
        return _Response(200, data, headers)

    def _list_statuses(self, req: _Request, repo: _Repo, ref: str) -> _Response:
        sha = repo.resolve_commit(ref)
        if sha is None:
            raise _not_found()
        statuses = list(reversed(repo.statuses.get(sha, [])))  # newest first, as GitHub lists them
        page, headers = self._page(req, statuses)
        return _Response(200, [self._status_json(repo, s) for s in page], headers)

    def _create_status(self, req: _Request, repo: _Repo, sha: str) -> _Response:
        if sha not in repo.commits:
            raise _unprocessable(f"No commit found for SHA: {sha}")
        body = self._object_body(req)
        state = body.get("state")
        if state not in _STATUS_STATES:
            raise _invalid(
                {"resource": "Status", "code": "custom", "field": "state", "message": f"state is {state}"}
            )
        status = self._add_status(
            repo,
            sha,
            state,
            body.get("context") or "default",
            body.get("description"),
            body.get("target_url"),
            creator=_BOT_LOGIN,
        )
        data = self._status_json(repo, status)
        return _Response(201, data, {"Location": data["url"]})

    def _latest_runs(self, repo: _Repo, sha: str) -> list[dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for run in sorted(repo.check_runs.values(), key=lambda r: r["id"]):
            if run["head_sha"] == sha:
                latest[run["name"]] = run
        return list(latest.values())

    def _list_check_runs(self, req: _Request, repo: _Repo, ref: str) -> _Response:
        sha = repo.resolve_commit(ref)
        if sha is None:
            raise _not_found()
        if req.query.get("filter", "latest") == "all":
            runs = [
                r for r in sorted(repo.check_runs.values(), key=lambda r: r["id"]) if r["head_sha"] == sha
            ]
        else:
            runs = self._latest_runs(repo, sha)
        if name := req.query.get("check_name"):
            runs = [r for r in runs if r["name"] == name]
        if status := req.query.get("status"):
            runs = [r for r in runs if r["status"] == status]
        page, headers = self._page(req, runs)
        data = {"total_count": len(runs), "check_runs": [self._check_run_json(repo, r) for r in page]}
        return _Response(200, data, headers)

    def _get_check_run(self, req: _Request, repo: _Repo, run_id: str) -> _Response:
        run = repo.check_runs.get(int(run_id))
        if run is None:
            raise _not_found()
        return _Response(200, self._check_run_json(repo, run))

    # -- pulls --------------------------------------------------------------------------------------------------

    def _list_pulls(self, req: _Request, repo: _Repo) -> _Response:
        state = req.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _invalid({"resource": "PullRequest", "code": "invalid", "field": "state"})
        pulls = [p for p in repo.pulls.values() if state == "all" or repo.issues[p.number].state == state]
        if head := req.query.get("head"):
            owner, _, branch = head.rpartition(":")
            if owner and owner.lower() != repo.owner.lower():
                pulls = []
            pulls = [p for p in pulls if p.head_ref == branch]
        if base := req.query.get("base"):
            pulls = [p for p in pulls if p.base_ref == base]
        sort = req.query.get("sort", "created")
        if sort == "updated":
            pulls.sort(key=lambda p: (repo.issues[p.number].updated_at, p.number))
        else:
            pulls.sort(key=lambda p: p.number)
        if req.query.get("direction", "desc") != "asc":
            pulls.reverse()
        page, headers = self._page(req, pulls)
        return _Response(200, [self._pull_json(repo, p) for p in page], headers)

    def _create_pull(self, req: _Request, repo: _Repo) -> _Response:
        body = self._object_body(req)

        def required(name: str) -> str:
            value = body.get(name)
            if not isinstance(value, str) or not value:
                raise _invalid({"resource": "PullRequest", "code": "missing_field", "field": name})
            return value

        head, base, title = required("head"), required("base"), required("title")
        head_owner, _, head_ref = head.rpartition(":")
        if head_owner and head_owner.lower() != repo.owner.lower():
            raise _invalid({"resource": "PullRequest", "code": "invalid", "field": "head"})
        head_sha, base_sha = repo.branch_tip(head_ref), repo.branch_tip(base)
        if head_sha is None:
            raise _invalid({"resource": "PullRequest", "code": "invalid", "field": "head"})
        if base_sha is None:
            raise _invalid({"resource": "PullRequest", "code": "invalid", "field": "base"})
        if head_ref == base or head_sha in repo.ancestors(base_sha):
            raise _invalid(
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"No commits between {base} and {head_ref}",
                }
            )
        for other in repo.pulls.values():
            if repo.issues[other.number].state == "open" and (other.head_ref, other.base_ref) == (
                head_ref,
                base,
            ):
                raise _invalid(
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {repo.owner}:{head_ref}.",
                    }
                )
        issue = self._new_issue(repo, title, body.get("body"), is_pull=True)
        pull = _Pull(issue.number, next(self._ids), head_ref, base, head_sha, base_sha)
        pull.draft = bool(body.get("draft", False))
        pull.maintainer_can_modify = bool(body.get("maintainer_can_modify", False))
        repo.pulls[pull.number] = pull
        data = self._pull_json(repo, pull)
        return _Response(201, data, {"Location": data["url"]})

    def _get_pull(self, req: _Request, repo: _Repo, number: str) -> _Response:
        return _Response(200, self._pull_json(repo, self._pull_or_404(repo, number)))

    def _edit_pull(self, req: _Request, repo: _Repo, number: str) -> _Response:
        pull = self._pull_or_404(repo, number)
        issue = repo.issues[pull.number]
        body = self._object_body(req)
        if "title" in body:
            if not isinstance(body["title"], str) or not body["title"]:
                raise _invalid({"resource": "PullRequest", "code": "missing_field", "field": "title"})
            issue.title = body["title"]
        if "body" in body:
            issue.body = body["body"]
        if "base" in body:
            if repo.branch_tip(str(body["base"])) is None:
                raise _invalid({"resource": "PullRequest", "code": "invalid", "field": "base"})
            pull.base_ref = str(body["base"])
        if "state" in body:
            if body["state"] not in ("open", "closed"):
                raise _invalid({"resource": "PullRequest", "code": "invalid", "field": "state"})
            self._close_or_reopen(repo, issue, body["state"], None)
        issue.updated_at = _now()
        return _Response(200, self._pull_json(repo, pull))

    def _list_pull_commits(self, req: _Request, repo: _Repo, number: str) -> _Response:
        pull = self._pull_or_404(repo, number)
        self._sync_pull(repo, pull)
        shas = repo.commits_between(pull.base_sha, pull.head_sha)
        page, headers = self._page(req, shas, maximum=250)
        return _Response(200, [self._commit_json(repo, sha) for sha in page], headers)

    def _list_pull_files(self, req: _Request, repo: _Repo, number: str) -> _Response:
        pull = self._pull_or_404(repo, number)
        self._sync_pull(repo, pull)
        page, headers = self._page(req, self._pull_files(repo, pull))
        return _Response(200, page, headers)

    def _pull_files(self, repo: _Repo, pull: _Pull) -> list[dict[str, Any]]:
        # Three-dot semantics, like GitHub: changes on head since it forked from base.
        merge_base = repo.merge_base(pull.base_sha, pull.head_sha)
        base_tree = repo.commits[merge_base].tree if merge_base else None
        return self._files_json(repo, base_tree, repo.commits[pull.head_sha].tree, pull.head_sha)

    def _add_review(self, repo: _Repo, pull: _Pull, user: str, state: str, body: str) -> dict[str, Any]:
        self._sync_pull(repo, pull)
        review = {
            "id": next(self._ids),
            "pull": pull.number,
            "user": user,
            "state": state,
            "body": body,
            "commit_id": pull.head_sha,
            "submitted_at": None if state == "PENDING" else _now(),
        }
        repo.reviews.setdefault(pull.number, []).append(review)
        return review

    def _list_reviews(self, req: _Request, repo: _Repo, number: str) -> _Response:
        pull = self._pull_or_404(repo, number)
        page, headers = self._page(req, repo.reviews.get(pull.number, []))
        return _Response(200, [self._review_json(repo, r) for r in page], headers)

    def _create_review(self, req: _Request, repo: _Repo, number: str) -> _Response:
        pull = self._pull_or_404(repo, number)
        body = self._object_body(req)
        event = body.get("event")
        text = body.get("body") or ""
        if event is not None and event not in _REVIEW_EVENTS:
            raise _invalid({"resource": "PullRequestReview", "code": "invalid", "field": "event"})
        if event in ("REQUEST_CHANGES", "COMMENT") and not text:
            raise _ApiError(422, "Unprocessable Entity", errors=[f"Review body is required for {event}"])
        # GitHub refuses self-approval; the bot opens the PRs it would be approving.
        if event in ("APPROVE", "REQUEST_CHANGES") and repo.issues[pull.number].user == _BOT_LOGIN:
            verb = "approve" if event == "APPROVE" else "request changes on"
            raise _ApiError(422, "Unprocessable Entity", errors=[f"Can not {verb} your own pull request"])
        state = _REVIEW_EVENTS[event] if event else "PENDING"
        review = self._add_review(repo, pull, _BOT_LOGIN, state, text)
        return _Response(200, self._review_json(repo, review))

    def _get_review(self, req: _Request, repo: _Repo, number: str, review_id: str) -> _Response:
        for review in repo.reviews.get(int(number), []):
            if review["id"] == int(review_id):
                return _Response(200, self._review_json(repo, review))
        raise _not_found()

    def _is_merged(self, req: _Request, repo: _Repo, number: str) -> _Response:
        if self._pull_or_404(repo, number).merged:
            return _Response(204)
        raise _not_found()

    def _merge_pull(self, req: _Request, repo: _Repo, number: str) -> _Response:
        pull = self._pull_or_404(repo, number)
        issue = repo.issues[pull.number]
        body = self._object_body(req)
        if pull.merged or issue.state != "open":
            raise _ApiError(405, "Pull Request is not mergeable")
        self._sync_pull(repo, pull)
        method = body.get("merge_method", "merge")
        if method not in _MERGE_METHODS:
            raise _invalid({"resource": "PullRequest", "code": "invalid", "field": "merge_method"})
        if body.get("sha") is not None and body["sha"] != pull.head_sha:
            raise _ApiError(409, "Head branch was modified. Review and try the merge again.")
        merged_flat = repo.three_way(pull.base_sha, pull.head_sha)
        if merged_flat is None:
            raise _ApiError(405, "Pull Request is not mergeable")
        now = _now()
        merger = {"name": _BOT_LOGIN, "email": f"{_BOT_LOGIN}@users.noreply.github.com", "date": now}
        web_flow = {"name": "GitHub", "email": "noreply@github.com", "date": now}
        ahead = repo.commits_between(pull.base_sha, pull.head_sha)
        title = body.get("commit_title")
        message = body.get("commit_message")
        if method == "merge":
            title = title or f"Merge pull request #{pull.number} from {repo.owner}/{pull.head_ref}"
            text = f"{title}\n\n{message if message is not None else issue.title}"
            sha = repo.put_commit(
                repo.write_flat(merged_flat), [pull.base_sha, pull.head_sha], text, merger, web_flow
            )
        elif method == "squash":
            title = title or f"{issue.title} (#{pull.number})"
            details = (
                message if message is not None else "\n\n".join(f"* {repo.commits[s].message}" for s in ahead)
            )
            text = f"{title}\n\n{details}" if details else title
            sha = repo.put_commit(repo.write_flat(merged_flat), [pull.base_sha], text, merger, web_flow)
        else:
            # Rebase replays each commit's own changes onto the base, re-committed by GitHub.
            sha, flat = pull.base_sha, repo.flatten(repo.commits[pull.base_sha].tree)
            for original in ahead:
                commit = repo.commits[original]
                parent_tree = repo.commits[commit.parents[0]].tree if commit.parents else None
                for path, _status, _before, after in repo.diff(parent_tree, commit.tree):
                    _set_path(flat, path, after)
                sha = repo.put_commit(repo.write_flat(flat), [sha], commit.message, commit.author, web_flow)
        repo.refs[f"refs/heads/{pull.base_ref}"] = sha
        repo.pushed_at = now
        pull.merged, pull.merged_at, pull.merged_by, pull.merge_commit_sha = True, now, _BOT_LOGIN, sha
        issue.state, issue.closed_at, issue.closed_by, issue.updated_at = "closed", now, _BOT_LOGIN, now
        return _Response(200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"})
