"""The Slack app manifests ask for exactly the bot scopes that the Web API calls in the code need.

The calls are read from the code (every slack_sdk WebClient method called in bot/ and handlers/), resolved to
Web API methods through slack_sdk's own source (files_upload_v2 is two methods), and mapped to scopes with
Slack's method reference below. A new call whose method is not in the table fails here until its scope is
looked up; a manifest scope no call needs fails too.
"""

from __future__ import annotations

import ast
import inspect
import re
from functools import cache
from pathlib import Path

import pytest
import yaml
from slack_sdk import WebClient

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "slack").glob("manifest.*.yaml"))

# From each method's page on api.slack.com/methods ("Bot token scopes"), for the conversations TARS uses:
# public and private channels (#incidents) and DMs (pages).
SCOPES_BY_METHOD: dict[str, set[str]] = {
    # chat:write.public: TARS posts in #incidents without having to be invited first.
    "chat.postMessage": {"chat:write", "chat:write.public"},
    "chat.postEphemeral": {"chat:write"},
    "chat.update": {"chat:write"},
    "conversations.open": {"im:write"},
    "conversations.history": {"channels:history", "groups:history", "im:history"},
    "conversations.replies": {"channels:history", "groups:history", "im:history"},
    "files.getUploadURLExternal": {"files:write"},
    "files.completeUploadExternal": {"files:write"},
    "usergroups.users.list": {"usergroups:read"},
    "views.open": set(),  # needs only the trigger_id of the click or command
}
# The /incident slash command itself.
FEATURE_SCOPES = {"commands"}


@cache
def _api_methods(client_method: str) -> frozenset[str]:
    """The Web API methods a WebClient method calls, following its calls to other WebClient methods."""
    source = inspect.getsource(getattr(WebClient, client_method))
    found = set(re.findall(r'api_call\(\s*"([\w.]+)"', source))
    for called in re.findall(r"self\.(\w+)\(", source):
        if called != client_method and not called.startswith("_") and hasattr(WebClient, called):
            found |= _api_methods(called)
    return frozenset(found)


def web_api_methods_called() -> set[str]:
    methods: set[str] = set()
    for path in [*ROOT.joinpath("bot").rglob("*.py"), *ROOT.joinpath("handlers").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                if "_" in name and not name.startswith("_") and callable(getattr(WebClient, name, None)):
                    methods |= _api_methods(name)
    return methods


def test_the_code_calls_the_methods_this_table_knows() -> None:
    called = web_api_methods_called()
    assert {"chat.postMessage", "chat.update", "conversations.replies", "views.open"} <= called
    unknown = called - SCOPES_BY_METHOD.keys()
    assert not unknown, f"look up the bot scopes of {sorted(unknown)} and add them to SCOPES_BY_METHOD"


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda path: path.name)
def test_a_manifest_asks_for_exactly_the_scopes_the_code_needs(manifest: Path) -> None:
    needed = FEATURE_SCOPES.union(*(SCOPES_BY_METHOD[method] for method in web_api_methods_called()))
    asked = set(yaml.safe_load(manifest.read_text())["oauth_config"]["scopes"]["bot"])
    assert not needed - asked, f"missing from {manifest.name}: {sorted(needed - asked)}"
    assert not asked - needed, f"unused in {manifest.name}: {sorted(asked - needed)}"


def test_both_ways_of_connecting_are_shipped() -> None:
    documents = {path.name: yaml.safe_load(path.read_text()) for path in MANIFESTS}
    http, socket = documents["manifest.http.yaml"], documents["manifest.socket.yaml"]
    assert http["settings"]["socket_mode_enabled"] is False
    assert http["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert http["features"]["slash_commands"][0]["url"].endswith("/slack/events")
    assert socket["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in socket["settings"]["interactivity"]
    for document in (http, socket):
        assert document["features"]["slash_commands"][0]["command"] == "/incident"
        assert document["settings"]["interactivity"]["is_enabled"] is True
