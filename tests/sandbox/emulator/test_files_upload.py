"""files upload v2 (getUploadURLExternal, upload POST, completeUploadExternal) through slack_sdk."""

from __future__ import annotations

import urllib.request

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.emulator import SlackEmulator, UploadedFile
from tests.sandbox.emulator.conftest import CHANNEL

TIMELINE = b"14:02 paged\n14:05 acknowledged\n"


def test_files_upload_v2_shares_into_the_channel(emulator: SlackEmulator, client: WebClient) -> None:
    done = client.files_upload_v2(
        channel=CHANNEL,
        content=TIMELINE,
        filename="timeline.txt",
        title="INC-1 timeline",
        initial_comment="Timeline attached",
    )
    file_id = done["file"]["id"]

    [upload] = emulator.uploaded_files()
    assert upload == UploadedFile(file_id, "timeline.txt", "INC-1 timeline", TIMELINE, CHANNEL, None)
    [message] = emulator.channel_messages(CHANNEL)
    assert message.text == "Timeline attached"
    assert [(f["id"], f["name"], f["title"], f["size"]) for f in message.files] == [
        (file_id, "timeline.txt", "INC-1 timeline", len(TIMELINE))
    ]
    [listed] = client.conversations_history(channel=CHANNEL)["messages"]
    assert listed["files"][0]["id"] == file_id and listed["upload"] is True
    assert [c.method for c in emulator.calls][:3] == [
        "files.getUploadURLExternal",
        "file_upload",
        "files.completeUploadExternal",
    ]


def test_upload_into_a_thread_and_several_files(emulator: SlackEmulator, client: WebClient) -> None:
    parent = client.chat_postMessage(channel=CHANNEL, text="INC-1")["ts"]
    client.files_upload_v2(
        channel=CHANNEL,
        thread_ts=parent,
        file_uploads=[
            {"content": "pod logs", "filename": "pods.log"},
            {"content": b"\x89PNG graph", "filename": "latency.png", "title": "p99 latency"},
        ],
    )
    uploads = emulator.uploaded_files()
    assert [(u.filename, u.title, u.content, u.channel, u.thread_ts) for u in uploads] == [
        ("pods.log", "pods.log", b"pod logs", CHANNEL, parent),
        ("latency.png", "p99 latency", b"\x89PNG graph", CHANNEL, parent),
    ]
    [reply] = emulator.thread_replies(CHANNEL, parent)
    assert [f["name"] for f in reply.files] == ["pods.log", "latency.png"]
    assert reply.files[1]["mimetype"] == "image/png"
    assert [m.text for m in emulator.channel_messages(CHANNEL)] == ["INC-1"]


def test_complete_refuses_unknown_unuploaded_and_finished_files(
    emulator: SlackEmulator, bare_client: WebClient
) -> None:
    with pytest.raises(SlackApiError, match="file_not_found"):
        bare_client.files_completeUploadExternal(files=[{"id": "F404", "title": "x"}], channel_id=CHANNEL)

    started = bare_client.files_getUploadURLExternal(filename="notes.txt", length=5)
    with pytest.raises(SlackApiError, match="file_not_found"):  # nothing was uploaded yet
        bare_client.files_completeUploadExternal(files=[{"id": started["file_id"]}], channel_id=CHANNEL)

    request = urllib.request.Request(started["upload_url"], data=b"notes", method="POST")
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert (resp.status, resp.read()) == (200, b"OK - 5")
    bare_client.files_completeUploadExternal(files=[{"id": started["file_id"]}], channel_id=CHANNEL)
    with pytest.raises(SlackApiError, match="file_not_found"):  # a second completion would share twice
        bare_client.files_completeUploadExternal(files=[{"id": started["file_id"]}], channel_id=CHANNEL)
    assert len(emulator.channel_messages(CHANNEL)) == 1

    with pytest.raises(SlackApiError, match="missing_argument"):
        bare_client.files_getUploadURLExternal(filename="empty.txt", length=0)


def test_upload_completed_without_a_channel_is_kept_but_not_shared(
    emulator: SlackEmulator, client: WebClient
) -> None:
    client.files_upload_v2(content="private", filename="draft.md")
    [upload] = emulator.uploaded_files()
    assert (upload.content, upload.channel, upload.thread_ts) == (b"private", None, None)
    assert emulator.channel_messages(CHANNEL) == []
