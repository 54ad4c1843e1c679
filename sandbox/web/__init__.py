"""The sandbox in a browser: a Slack-like page for #incidents, served on loopback by `SandboxPage`."""

from sandbox.web.page_server import PageControl, SandboxPage

__all__ = ["PageControl", "SandboxPage"]
