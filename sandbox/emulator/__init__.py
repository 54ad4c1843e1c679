"""Local Slack stand-ins: a Web API emulator and a client that signs requests into the app like Slack."""

from sandbox.emulator.slack_api import ArrivedCall, Message, RecordedCall, SlackEmulator, UploadedFile, View
from sandbox.emulator.slack_client import SignedSlackClient, SlackHttpResponse

__all__ = [
    "ArrivedCall",
    "Message",
    "RecordedCall",
    "SignedSlackClient",
    "SlackEmulator",
    "SlackHttpResponse",
    "UploadedFile",
    "View",
]
