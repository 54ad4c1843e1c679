"""The people of the sandbox's workspace: who you can act as, at the prompt and on the page."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Persona:
    """Someone in the sandbox's workspace, to act as (`as <name>`) and to add to the Slack emulator."""

    slack_id: str
    name: str  # the Slack handle
    real_name: str
    role: str  # what they are there for, for the help text and the page's switcher
